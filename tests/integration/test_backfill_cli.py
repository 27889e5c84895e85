"""``lakehouse backfill`` end to end: a week landed, a real asset backfill the daemon runs."""

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time

import dagster as dg
import pytest

from tests.integration.dagster_env import BIN, dagster_process, lakehouse, make_env
from tests.integration.servers import ROOT

START = dt.date(2026, 10, 1)
END = START + dt.timedelta(days=6)

pytestmark = pytest.mark.dagster


def _wait_for_job_backfill(home: str, timeout: float = 400) -> dg.DagsterRun:
    """The one run of the job backfill, once it finished."""
    deadline = time.time() + timeout
    with dg.DagsterInstance.from_config(home) as instance:
        while time.time() < deadline:
            jobs = [b for b in instance.get_backfills() if not b.is_asset_backfill]
            if jobs:
                runs = instance.get_runs(dg.RunsFilter.for_backfill(jobs[0].backfill_id))
                if runs and all(r.is_finished for r in runs):
                    assert len(runs) == 1
                    return runs[0]
            time.sleep(2)
    raise TimeoutError(f"the job backfill did not finish within {timeout}s")


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
        # a partitioned job's backfill goes through Dagster's own CLI and the same daemon
        job = subprocess.run(
            [str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", "ingest_job",
             "--partitions", f"{START.isoformat()}|us", "--noprompt"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert job.returncode == 0, job.stdout + job.stderr
        job_run = _wait_for_job_backfill(env["DAGSTER_HOME"])
    assert out.returncode == 0, out.stderr + (tmp_path / "daemon.log").read_text()[-3000:]
    report = json.loads(out.stdout)
    assert report["status"] == "COMPLETED_SUCCESS"
    assert report["partitions"]["requested"] == 14  # 7 days x (bronze_events, bronze_quarantine)
    assert report["partitions"]["materialized"] == 14
    assert report["partitions"]["failed_or_downstream"] == 0
    assert report["runs"]["by_status"] == {"SUCCESS": 7}  # no backfill policy: one run each
    assert report["checks"]["failed"] == 0
    assert report["checks"]["by_check"]["bronze_events_expectations"]["passed"] == 7
    assert report["checks"]["by_check"]["bronze_quarantine_expectations"]["passed"] == 7
    assert job_run.status == dg.DagsterRunStatus.SUCCESS
    assert job_run.tags["dagster/partition"] == f"{START.isoformat()}|us"

    # the backfill is the instance's own: listed where the UI lists backfills, runs tagged with it
    env_home = env["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(env_home) as instance:
        backfills = instance.get_backfills()
        asset_backfills = [b for b in backfills if b.is_asset_backfill]
        assert [b.backfill_id for b in asset_backfills] == [report["backfill_id"]]
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
            instance, module.defs, "group:raw or group:agg", start, end, title="policies"
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
