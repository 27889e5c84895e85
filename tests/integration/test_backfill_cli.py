"""``lakehouse backfill`` end to end: real backfills the daemon runs, and the UI's view of them."""

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time

import dagster as dg
import pytest

from tests.integration.browser import (
    chromium_binary,
    chromium_page,
    dismiss_dialogs,
    save_png,
    wait_for_text,
)
from tests.integration.dagster_env import BIN, dagster_process, graphql, lakehouse, make_env
from tests.integration.servers import ROOT

START = dt.date(2026, 10, 1)
END = START + dt.timedelta(days=6)

pytestmark = pytest.mark.dagster


def test_cli_backfill_of_a_week_materializes_every_partition_and_runs_checks(tmp_path):
    env = make_env(tmp_path, START)
    landed = lakehouse(
        env, "simulate", "--from", START.isoformat(), "--to", END.isoformat(),
        "--events-per-day", "200", "--bad-rate", "0.01", "--location", "aws-us",
    )  # fmt: skip
    assert landed.returncode == 0, landed.stderr

    with dagster_process(env, "daemon", tmp_path / "daemon.log"):
        out = lakehouse(
            env, "backfill", "--assets", "group:bronze", "--from", START.isoformat(),
            "--to", END.isoformat(), "--regions", "us", "--wait", "--timeout", "800",
        )  # fmt: skip
        # a partitioned job's backfill: the same command over the job's assets, the same daemon
        job = lakehouse(
            env, "backfill", "--job", "ingest_job", "--from", START.isoformat(),
            "--to", START.isoformat(), "--regions", "us", "--wait", "--timeout", "400",
        )  # fmt: skip
    assert out.returncode == 0, out.stderr + (tmp_path / "daemon.log").read_text()[-3000:]
    assert job.returncode == 0, job.stderr + (tmp_path / "daemon.log").read_text()[-3000:]
    report = json.loads(out.stdout)
    assert report["status"] == "COMPLETED_SUCCESS"
    assert report["partitions"]["requested"] == 14  # 7 days x (bronze_events, bronze_quarantine)
    assert report["partitions"]["materialized"] == 14
    assert report["partitions"]["failed_or_downstream"] == 0
    assert report["runs"]["by_status"] == {"SUCCESS": 7}  # no backfill policy: one run each
    assert report["checks"]["failed"] == 0
    assert report["checks"]["by_check"]["bronze_events_expectations"]["passed"] == 7
    assert report["checks"]["by_check"]["bronze_quarantine_expectations"]["passed"] == 7
    assert report["dagster_instance"] == {"home": env["DAGSTER_HOME"], "source": "DAGSTER_HOME"}
    job_report = json.loads(job.stdout)
    # ingest_job's assets have no backfill policy: one run for its one (date, region)
    assert job_report["status"] == "COMPLETED_SUCCESS"
    assert job_report["runs"]["by_status"] == {"SUCCESS": 1}
    assert job_report["partitions"]["materialized"] == 2  # bronze_events, bronze_quarantine

    # the backfills are the instance's own: listed where the UI lists backfills, runs tagged
    env_home = env["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(env_home) as instance:
        backfills = instance.get_backfills()
        assert sorted(b.backfill_id for b in backfills if b.is_asset_backfill) == sorted(
            [report["backfill_id"], job_report["backfill_id"]]
        )
        (job_run,) = instance.get_runs(dg.RunsFilter.for_backfill(job_report["backfill_id"]))
        assert job_run.tags["dagster/partition"] == f"{START.isoformat()}|us"
        assert job_run.tags["lakehouse/backfill_job"] == "ingest_job"
        runs = instance.get_runs(filters=dg.RunsFilter.for_backfill(report["backfill_id"]))
        partitions = sorted(r.tags["dagster/partition"] for r in runs)
        assert partitions == [f"{(START + dt.timedelta(days=i)).isoformat()}|us" for i in range(7)]


def test_cli_backfill_rejects_a_bad_selection_and_an_unknown_region(tmp_path):
    env = make_env(tmp_path, START)
    bad = lakehouse(env, "backfill", "--assets", "group:nope", "--from", "2026-10-01",
                    "--to", "2026-10-02")  # fmt: skip
    assert bad.returncode == 1
    assert "selects no materializable asset" in bad.stderr and "bronze" in bad.stderr
    region = lakehouse(env, "backfill", "--assets", "group:bronze", "--from", "2026-10-01",
                       "--to", "2026-10-02", "--regions", "mars")  # fmt: skip
    assert region.returncode == 1
    assert "unknown region(s) mars" in region.stderr
    backwards = lakehouse(env, "backfill", "--assets", "group:bronze", "--from", "2026-10-02",
                          "--to", "2026-10-01")  # fmt: skip
    assert backwards.returncode == 1 and "before" in backwards.stderr


def test_a_backfill_launched_through_the_webserver_is_the_one_the_ui_lists(tmp_path):
    """--webserver posts launchPartitionBackfill to a running webserver; the UI lists it."""
    env = make_env(tmp_path, START)
    span = ["--from", "2026-10-01", "--to", "2026-10-02", "--regions", "us,eu"]
    with dagster_process(env, "dev", tmp_path / "dev.log") as port:
        web = f"http://127.0.0.1:{port}"
        out = lakehouse(env, "backfill", "--assets", "group:bronze", *span, "--webserver", web)
        assert out.returncode == 0, out.stderr
        backfill_id = json.loads(out.stdout)["backfill_id"]
        listed = graphql(port, BACKFILLS)["data"]["partitionBackfillsOrError"]["results"]
    assert [(b["id"], b["title"]) for b in listed] == [
        (backfill_id, "lakehouse backfill --assets group:bronze 2026-10-01..2026-10-02")
    ]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        stored = instance.get_backfill(backfill_id)
        assert stored is not None and stored.is_asset_backfill
        assert stored.tags["lakehouse/backfill_cli"] == "true"
        targets = stored.asset_backfill_data.target_subset
        days = [f"{d}|{r}" for d in ("2026-10-01", "2026-10-02") for r in ("eu", "us")]
        for name in ("bronze_events", "bronze_quarantine"):
            keys = targets.get_partitions_subset(dg.AssetKey(name)).get_partition_keys()
            assert sorted(keys) == days, name


BACKFILLS = """
query { partitionBackfillsOrError { ... on PartitionBackfills { results { id title } } } }
"""


CODE = '''
import dagster as dg

daily = dg.DailyPartitionsDefinition(start_date="2026-10-01", end_offset=1)
date_region = dg.MultiPartitionsDefinition(
    {"date": daily, "region": dg.StaticPartitionsDefinition(["us", "eu"])}
)


@dg.asset(partitions_def=date_region, group_name="raw")
def raw(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One run per (date, region): no backfill policy."""
    return dg.MaterializeResult(metadata={"partition": str(context.partition_key)})


@dg.asset(
    partitions_def=daily,
    group_name="agg",
    kinds={"spark"},
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def agg(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The whole range in one run, as the Spark assets do."""
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


defs = dg.Definitions(assets=[raw, agg])
'''


def test_backfill_honours_backfill_policies_across_partitionings(tmp_path):
    import importlib.util

    from lakehouse import backfill

    (tmp_path / "policy_defs.py").write_text(CODE)
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - python_file:\n      relative_path: {tmp_path / 'policy_defs.py'}\n"
    )
    spec = importlib.util.spec_from_file_location("policy_defs", tmp_path / "policy_defs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    env = make_env(tmp_path, START)
    start, end = dt.date(2026, 10, 1), dt.date(2026, 10, 3)

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        backfill_id = backfill.launch(
            instance,
            module.defs,
            "group:raw or group:agg",
            start,
            end,
            title="policies",
            workspace=tmp_path / "workspace.yaml",
        )
        stored = instance.get_backfill(backfill_id)
        assert stored.tags["lakehouse/spark"] == "true"  # agg is a Spark asset: one at a time
        log = tmp_path / "daemon.log"
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(tmp_path / "workspace.yaml")],
            cwd=tmp_path, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            report = backfill.wait(instance, module.defs, backfill_id, timeout=600)
        finally:
            proc.send_signal(signal.SIGINT)  # the daemon's clean shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        assert report["status"] == "COMPLETED_SUCCESS", log.read_text()[-3000:]
        assert report["partitions"]["by_asset"] == {
            "agg": {"requested": 3, "materialized": 3, "failed_or_downstream": 0},
            "raw": {"requested": 6, "materialized": 6, "failed_or_downstream": 0},
        }
        runs = instance.get_runs(dg.RunsFilter.for_backfill(backfill_id))
        singles = [r for r in runs if "dagster/partition" in r.tags]
        ranged = [r for r in runs if "dagster/partition" not in r.tags]
        # raw has no policy: one run per (date, region)
        assert len(singles) == 6
        assert {k.to_user_string() for r in singles for k in r.asset_selection} == {"raw"}
        # agg is single_run (and has no upstream to wait for): all three days in one run
        assert [
            (
                [k.to_user_string() for k in r.asset_selection],
                r.tags["dagster/asset_partition_range_start"],
                r.tags["dagster/asset_partition_range_end"],
            )
            for r in ranged
        ] == [(["agg"], "2026-10-01", "2026-10-03")]


# The queries the UI's backfill page sends (dagster-webserver 1.13: useBackfillDetailsQuery.tsx,
# BackfillFragments.tsx, BackfillAssetPartitionsTable.tsx), plus the two fields the backfills
# list reads (runStatus, partitionStatusCounts): any error in them is what the page shows.
BACKFILL_DETAILS = """
query BackfillDetailsQuery($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ...BackfillDetailsBackfillFragment
    ... on PythonError { message stack }
    ... on BackfillNotFoundError { message }
  }
}
fragment BackfillDetailsBackfillFragment on PartitionBackfill {
  id status runStatus timestamp endTimestamp numPartitions isAssetBackfill partitionSetName
  hasCancelPermission hasResumePermission partitionNames
  partitionSet { id mode name pipelineName }
  assetSelection { path }
  error { message }
  partitionStatusCounts { runStatus count }
  assetBackfillData {
    rootTargetedPartitions { partitionKeys ranges { start end } }
    assetBackfillStatuses {
      ... on AssetPartitionsStatusCounts {
        assetKey { path }
        numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed
      }
      ... on UnpartitionedAssetStatus { assetKey { path } inProgress materialized failed }
    }
  }
  partitionStatuses { results { id partitionName runId runStatus runDuration } }
}
"""
TARGETED = """
query BackfillPartitionsForAssetKey($backfillId: String!, $assetKey: AssetKeyInput!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    ... on PartitionBackfill {
      id
      partitionsTargetedForAssetKey(assetKey: $assetKey) { partitionKeys ranges { start end } }
    }
  }
}
"""
DAYS = (dt.date(2026, 10, 1), dt.date(2026, 10, 2))
SHOTS = ROOT / "docs" / "screenshots"


def _details(port: int, backfill_id: str) -> dict:
    """The backfill page's data; fails on any GraphQL error (what the page would show)."""
    answer = graphql(port, BACKFILL_DETAILS, {"backfillId": backfill_id})
    assert "errors" not in answer, json.dumps(answer)[:3000]
    backfill = answer["data"]["partitionBackfillOrError"]
    assert backfill["__typename"] == "PartitionBackfill", backfill
    # what the page draws its per-partition table from: absent is "Partition statuses unavailable"
    assert backfill["assetBackfillData"]["assetBackfillStatuses"], backfill
    for status in backfill["assetBackfillData"]["assetBackfillStatuses"]:
        targeted = graphql(
            port, TARGETED, {"backfillId": backfill_id, "assetKey": status["assetKey"]}
        )
        assert "errors" not in targeted, targeted
        keys = targeted["data"]["partitionBackfillOrError"]["partitionsTargetedForAssetKey"]
        assert keys["partitionKeys"] or keys["ranges"], targeted
    return backfill


def _counts(backfill: dict) -> dict[str, tuple[int, int, int, int]]:
    """Per asset: (targeted, in progress, materialized, failed), as the page shows them."""
    return {
        "/".join(s["assetKey"]["path"]): (
            s["numPartitionsTargeted"],
            s["numPartitionsInProgress"],
            s["numPartitionsMaterialized"],
            s["numPartitionsFailed"],
        )
        for s in backfill["assetBackfillData"]["assetBackfillStatuses"]
    }


def _follow(port: int, backfill_id: str, on_running=None, timeout: float = 600) -> tuple:
    """Poll the page's data until the backfill ends: (a snapshot while runs went on, the last)."""
    deadline = time.monotonic() + timeout
    running = None
    while time.monotonic() < deadline:
        backfill = _details(port, backfill_id)
        busy = any(c[1] for c in _counts(backfill).values())
        if running is None and backfill["status"] == "REQUESTED" and busy:
            running = backfill
            if on_running is not None:
                on_running()
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return running, backfill
        time.sleep(0.5)
    raise TimeoutError(f"backfill {backfill_id} did not end within {timeout:.0f}s")


def _page(page, port: int, backfill_id: str, *needles: str, png: str) -> str:
    page.goto(f"http://127.0.0.1:{port}/runs/b/{backfill_id}")
    wait_for_text(page, "Partition selection")
    dismiss_dialogs(page)
    text = wait_for_text(page, "Asset name", *needles)  # the per-asset partitions table
    assert "Partition statuses unavailable" not in text, text[:3000]
    assert "Something went wrong" not in text and "PythonError" not in text, text[:3000]
    page.wait_for_timeout(1500)  # the table settles
    save_png(page, SHOTS / png)
    return text


@pytest.mark.spark
@pytest.mark.ui
@pytest.mark.skipif(chromium_binary() is None, reason="chromium missing: `make setup` installs it")
def test_documented_backfills_show_per_partition_statuses_in_the_ui(tmp_path):
    env = make_env(tmp_path, DAYS[0])
    env.setdefault("LAKEHOUSE_PII_KEY", "backfill-test-key")  # silver's key, as make exports it
    span = ["--from", DAYS[0].isoformat(), "--to", DAYS[1].isoformat(), "--regions", "us"]
    landed = lakehouse(
        env, "simulate", *span[:4], "--events-per-day", "200", "--location", "aws-us"
    )
    assert landed.returncode == 0, landed.stderr
    log = tmp_path / "dev.log"

    with dagster_process(env, "dev", log) as port, chromium_page() as page:
        assert port is not None
        # 1. assets: bronze has no backfill policy, one run per (date, region)
        assets = lakehouse(env, "backfill", "--assets", "group:bronze", *span)
        assert assets.returncode == 0, assets.stderr
        assets_id = json.loads(assets.stdout)["backfill_id"]
        assert f"stored in the Dagster instance {env['DAGSTER_HOME']}" in assets.stderr
        assets_running, assets_done = _follow(port, assets_id)

        # 2. a partitioned job: spark_job's silver and gold are single-run, the range in one run;
        # launched through the running webserver's GraphQL (1. ran dagster-graphql in-process)
        web = f"http://127.0.0.1:{port}"
        job = lakehouse(env, "backfill", "--job", "spark_job", *span, "--webserver", web)
        assert job.returncode == 0, job.stderr
        job_id = json.loads(job.stdout)["backfill_id"]
        shots: list[str] = []

        def running_page() -> None:
            shots.append(
                _page(page, port, job_id, "silver_events", "In progress",
                      png="backfill-job-running.png")
            )  # fmt: skip

        job_running, job_done = _follow(port, job_id, on_running=running_page)
        _page(page, port, assets_id, "bronze_events", "Succeeded", png="backfill-assets.png")
        _page(page, port, job_id, "gold_daily_demand", "Succeeded", png="backfill-job.png")
    tail = log.read_text()[-3000:]

    # while runs went on, Dagster's own statuses said so; once they ended, they say that
    for running, done in ((assets_running, assets_done), (job_running, job_done)):
        assert running is not None, f"never saw the backfill with runs going on:\n{tail}"
        assert (running["status"], running["runStatus"]) == ("REQUESTED", "STARTED")
        assert running["endTimestamp"] is None
        assert (done["status"], done["runStatus"]) == ("COMPLETED_SUCCESS", "SUCCESS"), tail
        assert done["endTimestamp"] is not None
        assert all(c == (2, 0, 2, 0) for c in _counts(done).values()), _counts(done)
        assert done["partitionStatusCounts"] == []  # per asset instead (assetBackfillData)
    assert set(_counts(assets_done)) == {"bronze_events", "bronze_quarantine"}
    assert set(_counts(job_done)) == {"silver_events", "gold_daily_demand"}
    assert shots and "In progress" in shots[0]

    # the runs follow each asset's backfill policy
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        bronze = instance.get_runs(dg.RunsFilter.for_backfill(assets_id))
        assert sorted(r.tags["dagster/partition"] for r in bronze) == [
            f"{d.isoformat()}|us" for d in DAYS
        ]
        spark = instance.get_runs(dg.RunsFilter.for_backfill(job_id))
        ranges = {
            frozenset(k.to_user_string() for k in r.asset_selection or ()): (
                r.tags.get("dagster/asset_partition_range_start"),
                r.tags.get("dagster/asset_partition_range_end"),
            )
            for r in spark
        }
        whole = (f"{DAYS[0].isoformat()}|us", f"{DAYS[1].isoformat()}|us")
        assert set(ranges.values()) == {whole}, ranges  # every run: the whole range at once
        assert set().union(*ranges) == {"silver_events", "gold_daily_demand"}
        assert len(spark) == len(ranges) <= 2  # at most one run per asset, none per partition
        assert all(r.tags["lakehouse/backfill_job"] == "spark_job" for r in spark)
    for name in ("backfill-assets.png", "backfill-job.png", "backfill-job-running.png"):
        png = (SHOTS / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 300_000, name
