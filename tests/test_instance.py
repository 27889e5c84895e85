"""The Dagster instance the commands use: DAGSTER_HOME, else the project's .dagster/, named."""

import json
import multiprocessing
import shutil
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.cli import main
from lakehouse.instance import DAGSTER_HOME_ENV, ProjectInstance, project_instance
from pipelines.lake.config import PROJECT_ROOT

BACKFILL = ["backfill", "--job", "features_job", "--from", "2026-10-20", "--to", "2026-10-22"]


def test_dagster_home_wins_else_the_projects_dagster_folder(lake_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(lake_home / "elsewhere"))
    assert project_instance().describe() == {
        "home": str(lake_home / "elsewhere"),
        "source": "DAGSTER_HOME",
    }
    monkeypatch.delenv("DAGSTER_HOME")
    assert project_instance().describe() == {
        "home": str(lake_home / ".dagster"),
        "source": "project default",
    }


def test_backfill_without_dagster_home_uses_the_projects_instance(lake_home, monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(BACKFILL) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(lake_home / ".dagster") in err and "make setup" in err

    home = lake_home / ".dagster"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    assert main(BACKFILL) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["dagster_instance"] == {"home": str(home), "source": "project default"}
    assert f"stored in the Dagster instance {home} (DAGSTER_HOME unset)" in err
    # features_job's one asset, three days; its Spark tag and its name on the backfill
    assert report["partitions"]["by_asset"] == {
        "demand_features": {"requested": 3, "materialized": 0, "failed_or_downstream": 0}
    }
    with dg.DagsterInstance.from_config(str(home)) as instance:
        stored = instance.get_backfill(report["backfill_id"])
        assert stored is not None and stored.is_asset_backfill
        assert stored.tags["lakehouse/backfill_job"] == "features_job"
        assert stored.tags["lakehouse/spark"] == "true"


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("maintenance_job", "runs ops, not assets"),
        ("retrain_job", "is not partitioned"),
        ("nope", "is not a job here"),
    ],
)
def test_backfill_of_a_job_without_asset_partitions_says_why(
    lake_home, monkeypatch, capsys, job, message
):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (lake_home / ".dagster").mkdir()
    assert main(["backfill", "--job", job, "--from", "2026-10-20", "--to", "2026-10-20"]) == 1
    assert message in capsys.readouterr().err


def test_backfill_through_a_webserver_that_is_not_up_is_one_line(lake_home, monkeypatch, capsys):
    import socket

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (lake_home / ".dagster").mkdir()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert main([*BACKFILL, "--webserver", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the Dagster webserver at {url} did not answer" in err


def test_backfill_params_give_each_asset_its_own_partitions():
    from lakehouse.backfill import backfill_params

    targets = {
        dg.AssetKey("bronze_events"): ["2026-10-01|us", "2026-10-02|us"],
        dg.AssetKey("demand_features"): ["2026-10-01"],
        dg.AssetKey(["ml", "model"]): None,
    }
    params = backfill_params(targets, {"lakehouse/spark": "true"}, "t", "d")
    assert params["partitionsByAssets"] == [
        {
            "assetKey": {"path": ["bronze_events"]},
            "partitions": {
                "ranges": [
                    {"start": "2026-10-01|us", "end": "2026-10-01|us"},
                    {"start": "2026-10-02|us", "end": "2026-10-02|us"},
                ]
            },
        },
        {
            "assetKey": {"path": ["demand_features"]},
            "partitions": {"ranges": [{"start": "2026-10-01", "end": "2026-10-01"}]},
        },
        {"assetKey": {"path": ["ml", "model"]}},  # unpartitioned: the asset whole
    ]
    assert params["tags"] == [{"key": "lakehouse/spark", "value": "true"}]


def test_a_selection_of_part_of_a_multi_asset_brings_the_assets_made_with_it():
    from lakehouse.backfill import resolve_selection
    from lakehouse.definitions import build_definitions

    graph = build_definitions("local").resolve_asset_graph()
    keys = resolve_selection(graph, "key:bronze_events")
    # bronze_events and bronze_quarantine are one step: Dagster refuses a backfill of one
    assert keys == [dg.AssetKey("bronze_events"), dg.AssetKey("bronze_quarantine")]
    assert resolve_selection(graph, "key:gold_daily_demand") == [dg.AssetKey("gold_daily_demand")]


def test_waiting_on_an_instance_no_daemon_runs_on_says_so_first(lake_home, monkeypatch, capsys):
    home = lake_home / ".dagster"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main([*BACKFILL, "--wait", "--timeout", "1"]) == 1  # nothing runs it
    err = capsys.readouterr().err
    assert "no daemon has run on this instance in the last 60 s" in err
    assert "still REQUESTED after 1s" in err and "is the daemon running" in err


def test_a_range_without_partitions_names_the_range_there_is(lake_home, monkeypatch, capsys):
    home = lake_home / ".dagster"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    argv = ["backfill", "--job", "features_job", "--from", "2025-01-01", "--to", "2025-01-02"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "demand_features has no partition between 2025-01-01" in err
    assert "(its partitions run 2026-09-01 .. " in err, err


def _open_fresh(home: str, barrier, results) -> None:
    barrier.wait()
    try:
        with ProjectInstance(Path(home), DAGSTER_HOME_ENV).open() as instance:
            instance.get_runs(limit=1)
        results.put("ok")
    except Exception as exc:  # reported by the test
        results.put(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def test_commands_opening_a_fresh_instance_at_once_leave_it_usable(tmp_path):
    """Two workers started together on a new DAGSTER_HOME: both start, the instance works.

    Without the lock, each process created the SQLite storage and stamped its version: one
    failed ("table runs already exists") and every later open failed too ("alembic_version
    has more than one head present").
    """
    ctx = multiprocessing.get_context("fork")  # Dagster is imported already: quick children
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_open_fresh, args=(str(tmp_path), barrier, results)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [results.get(timeout=5) for _ in procs] == ["ok"] * 3
    with ProjectInstance(tmp_path, DAGSTER_HOME_ENV).open() as instance:  # later opens too
        assert instance.get_runs(limit=1) == []
