"""``lakehouse backfill`` end to end: a week landed, a real asset backfill the daemon runs."""

import datetime as dt
import json

import dagster as dg
import pytest

from tests.integration.dagster_env import dagster_process, lakehouse, make_env

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

    # the backfill is the instance's own: listed where the UI lists backfills, runs tagged with it
    env_home = env["DAGSTER_HOME"]
    with dg.DagsterInstance.from_config(env_home) as instance:
        backfills = instance.get_backfills()
        assert [b.backfill_id for b in backfills] == [report["backfill_id"]]
        assert backfills[0].is_asset_backfill
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
