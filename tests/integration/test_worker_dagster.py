"""The ingest worker against a real Dagster webserver and daemon (``dg dev``, as ``make ui``).

The worker reports through the webserver's runless-event endpoints; the test reads the
materializations and check executions back through the webserver's GraphQL, and sees the
daemon's Declarative Automation request silver for the partition the worker committed (no
ingest run launched). The Spark run itself is not awaited: silver's own tests cover it.
"""

import datetime as dt
import json
import subprocess
import sys
import time
import urllib.request

import dagster as dg
import pytest

from tests.integration.dagster_env import dagster_process, lakehouse, make_env
from tests.integration.servers import ROOT

pytestmark = pytest.mark.dagster

TODAY = dt.datetime.now(dt.UTC).date()

QUERY = """
query ($key: AssetKeyInput!, $partitions: [String!], $check: String!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 20) {
        runId partition
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 5) {
    runId status evaluation {
      success metadataEntries { label ... on TextMetadataEntry { text } }
    }
  }
}
"""


def _graphql(port: int, variables: dict) -> dict:
    body = json.dumps({"query": QUERY, "variables": variables}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        out = json.loads(resp.read())
    assert "errors" not in out, out
    return out["data"]


def _silver_requested(home: str, partition: str, timeout: float = 240) -> dg.DagsterRun:
    """The run the automation sensor requested for silver of ``partition``."""
    deadline = time.time() + timeout
    with dg.DagsterInstance.from_config(home) as instance:
        while time.time() < deadline:
            for run in instance.get_runs(limit=50):
                keys = {k.to_user_string() for k in run.asset_selection or ()}
                if "silver_events" in keys and run.tags.get("dagster/partition") == partition:
                    return run
            time.sleep(2)
    raise TimeoutError(f"no silver run requested for {partition} within {timeout}s")


def test_worker_reports_runless_events_the_ui_and_automation_see(tmp_path):
    env = make_env(tmp_path, TODAY - dt.timedelta(days=3))
    env["LAKEHOUSE_INGEST_SENSOR"] = "stopped"  # only the worker ingests here
    day = TODAY.isoformat()
    landed = lakehouse(
        env, "simulate", "--from", day, "--to", day, "--events-per-day", "300",
        "--bad-rate", "0.02", "--location", "aws-us",
    )  # fmt: skip
    assert landed.returncode == 0, landed.stderr
    partition = f"{day}|us"
    with dagster_process(env, "dev", tmp_path / "dev.log") as port:
        worker = subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", "ingest", "--follow", "--location", "aws-us",
             "--dagster-url", f"http://127.0.0.1:{port}", "--linger-seconds", "0",
             "--max-idle-seconds", "1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr[-3000:]
        variables = {
            "key": {"path": ["bronze_events"]},
            "partitions": [partition],
            "check": "bronze_events_reconciliation",
        }
        data = _graphql(port, variables)
        mats = [
            m for m in data["assetOrError"]["assetMaterializations"] if m["partition"] == partition
        ]
        assert mats
        assert mats[0]["runId"] == ""  # no run: reported by the worker
        meta = {e["label"]: e.get("intValue") for e in mats[0]["metadataEntries"]}
        assert meta["landed"] == meta["ingested"] + meta["quarantined"] + meta["duplicates_dropped"]
        assert "lag_seconds" in meta and "backlog_objects" in meta
        # the partition is in the metadata (lakehouse/worker.py says why not in partition=)
        checks = [
            c
            for c in data["assetCheckExecutions"]
            if {"label": "partition", "text": partition} in c["evaluation"]["metadataEntries"]
        ]
        assert checks and checks[0]["status"] == "SUCCEEDED" and checks[0]["runId"] == ""
        gx = _graphql(port, {**variables, "check": "bronze_events_expectations"})
        assert gx["assetCheckExecutions"][0]["evaluation"]["success"] is True
        run = _silver_requested(env["DAGSTER_HOME"], partition)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            ingest_runs = instance.get_runs(dg.RunsFilter(job_name="ingest_job"))
            assert not ingest_runs  # the worker ingested without a run
            if not run.is_finished:  # the Spark run itself is not this test's business
                instance.report_run_canceled(run)
