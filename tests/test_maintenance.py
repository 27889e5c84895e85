"""Table upkeep: VACUUM and log cleanup under the floor replicas and models set; the sync after."""

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse import cli
from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from pipelines.ml.tracking import QUICK_HTTP, Tracking
from pipelines.operations import maintenance
from pipelines.replication.deltalog import SourceBehindError, SyncError, list_log
from pipelines.replication.options import SyncOptions
from pipelines.replication.sync import sync, sync_table

TABLE = "gold_daily_demand"
GOLD = SyncOptions(table=TABLE)  # how the replica asset syncs it
DAY = dt.date(2026, 9, 1)


def gold(n: int, start: int = 0, day: dt.date = DAY) -> pa.Table:
    return pa.table(
        {
            "date": pa.array([day] * n, pa.date32()),
            "region": ["eu"] * n,
            "store_id": list(range(start, start + n)),
            "sku": [f"s{i % 5}" for i in range(start, start + n)],
            "units": [float(i) for i in range(start, start + n)],
        }
    )


def rows_at(uri: str, version: int) -> list[dict]:
    table = DeltaTable(uri, version=version).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, default=str, sort_keys=True))


def held_versions(uri: str) -> list[int]:
    listing = list_log(open_storage(uri), None)
    first = min([*listing.commits, *listing.checkpoints])
    return list(range(first, listing.latest + 1))


def assert_equal_where_held(src: str, dst: str, since: int = 0) -> list[int]:
    """Every version the replica holds (from ``since``) reads as the source's same version.

    Versions before the source's floor may be hollow at the source after its upkeep (as after
    any VACUUM); ``since`` leaves those out.
    """
    versions = [v for v in held_versions(dst) if v >= since]
    for v in versions:
        assert rows_at(dst, v) == rows_at(src, v), f"version {v} differs"
    return versions


@pytest.fixture
def cfg(lake_home):
    """The local environment with no waiting: retention 0 h for files and log entries."""
    base = load_config("local")
    return dataclasses.replace(
        base,
        maintenance=base.maintenance.model_copy(
            update={"retention_hours": 0, "log_retention_hours": 0}
        ),
    )


def eu_replica(cfg):
    return next(r for r in cfg.replicas() if r.source.name == "azure-eu" and r.table == TABLE)


def churn(uri: str, steps: int, start: int = 100) -> None:
    """Appends and partition overwrites: every other version removes files."""
    for i in range(steps):
        mode = "overwrite" if i % 2 else "append"
        write_deltalake(uri, gold(5, start + i * 5), mode=mode, partition_by=["date", "region"])


def test_vacuum_never_breaks_a_replica_lagging_by_n_versions(cfg):
    rep = eu_replica(cfg)
    churn(rep.source_uri, 3, 0)
    assert sync(cfg, rep.source_uri, rep.target_uri, GOLD).target_version_after == 2
    churn(rep.source_uri, 6)  # the replica now lags by 6 versions, 3 of them overwrites
    report = maintenance.maintain(cfg, TABLE, "azure-eu")
    assert report.retention_floor_version == 2
    assert report.floor_set_by["kind"] == "replica" and report.floor_set_by["name"] == rep.name
    assert report.vacuum["kept_for_floor"] > 0
    assert report.log_cleanup["entries_deleted"] == 0, "the replica needs commits 3.. of the log"
    after = sync(cfg, rep.source_uri, rep.target_uri, GOLD)
    assert after.versions_behind_after == 0 and after.files_missing_at_source == 0
    assert assert_equal_where_held(rep.source_uri, rep.target_uri, since=2)[0] == 2
    # Once the replica has caught up, the next upkeep reclaims what only it needed.
    again = maintenance.maintain(cfg, TABLE, "azure-eu")
    assert again.vacuum["files_deleted"] > 0 and again.vacuum["kept_for_floor"] == 0
    assert sync(cfg, rep.source_uri, rep.target_uri, GOLD).versions_behind_after == 0


def registry(tmp_path: Path) -> Tracking:
    return Tracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", model_name="forecaster")


def register(tracking: Tracking, uri: str, version: int) -> str:
    """A registered model version whose lineage names the table at ``version``."""
    with tracking.session() as client:
        if not client.search_registered_models(f"name = '{tracking.model_name}'"):
            client.create_registered_model(tracking.model_name)
        mv = client.create_model_version(
            tracking.model_name,
            source=str(Path(uri).parent / "model"),
            tags={f"lineage.{TABLE}.uri": uri, f"lineage.{TABLE}.version": str(version)},
        )
    return str(mv.version)


def test_vacuum_keeps_a_registered_models_lineage_version_and_it_still_reads(cfg, tmp_path):
    uri = cfg.location("azure-eu").table_uri(TABLE)
    churn(uri, 4, 0)
    tracking = registry(tmp_path)
    register(tracking, uri, 1)
    trained_on = delta.read_partition(uri, {}, version=1)  # what training read (assets/ml.py)
    churn(uri, 4, 50)
    pins = maintenance.registry_pins(tracking, cfg.maintenance)
    report = maintenance.maintain(cfg, TABLE, "azure-eu", model_pins_of=pins)
    assert report.retention_floor_version == 1
    assert report.floor_set_by == {
        "version": 1,
        "kind": "model",
        "name": "forecaster v1",
        "uri": uri,
    }
    assert report.vacuum["files_deleted"] > 0 and report.vacuum["kept_for_floor"] > 0
    assert report.log_cleanup["kept_from_version"] <= 1
    reread = delta.read_partition(uri, {}, version=1)  # retraining on the lineage version
    assert reread.sort_by("store_id").equals(trained_on.sort_by("store_id"))
    with tracking.session() as client:
        client.delete_model_version(tracking.model_name, "1")
    gone = maintenance.maintain(cfg, TABLE, "azure-eu", model_pins_of=pins)
    assert gone.floor_set_by["kind"] == "current_version" and gone.vacuum["files_deleted"] > 0


def test_model_pins_lapse_by_age_only_without_an_alias():
    now = 1_000 * 86400.0
    old = (now - 40 * 86400) * 1000

    def version(number: str, aliases: list[str]) -> SimpleNamespace:
        tags = {"lineage.t.uri": "/lake/t/", "lineage.t.version": number}
        return SimpleNamespace(version=number, tags=tags, aliases=aliases, creation_timestamp=old)

    versions = [version("3", []), version("4", ["champion"])]
    settings = load_config("local").maintenance.model_copy(update={"model_pin_days": 30})
    pins = maintenance.lineage_pins(versions, "/lake/t", "m", settings, now=now)
    assert [p.version for p in pins] == [4]
    every = settings.model_copy(update={"model_pin_days": None})
    assert len(maintenance.lineage_pins(versions, "/lake/t", "m", every, now=now)) == 2


def test_unreachable_registry_deletes_nothing(cfg, tmp_path, monkeypatch):
    # MLflow's own retries (7, about 4 minutes) are not what upkeep waits: it sets its own
    # for the check, and puts the environment back after
    for name in QUICK_HTTP:
        monkeypatch.delenv(name, raising=False)
    uri = cfg.location("azure-eu").table_uri(TABLE)
    churn(uri, 4)
    before = sorted(p.name for p in Path(uri).rglob("*.parquet"))
    bad = Tracking(tracking_uri="http://127.0.0.1:9/", model_name="m")
    with pytest.raises(maintenance.MaintenanceError, match="no file is deleted"):
        maintenance.maintain(
            cfg,
            TABLE,
            "azure-eu",
            model_pins_of=maintenance.registry_pins(bad, cfg.maintenance),
        )
    assert sorted(p.name for p in Path(uri).rglob("*.parquet")) == before
    assert not set(QUICK_HTTP) & set(os.environ)


def forced_upkeep(cfg, uri: str) -> None:
    """What a user would otherwise run: upkeep that ignores the replicas (no floor)."""
    storage = open_storage(uri)
    maintenance.maintain_source(storage, uri, {}, [], cfg.maintenance)


def test_vacuum_past_the_floor_is_a_clear_sync_error_and_reseed_repairs(cfg):
    rep = eu_replica(cfg)
    churn(rep.source_uri, 3, 0)
    sync(cfg, rep.source_uri, rep.target_uri, GOLD)
    churn(rep.source_uri, 4)
    forced_upkeep(cfg, rep.source_uri)
    before = sorted(p.name for p in Path(rep.target_uri, "_delta_log").iterdir())
    with pytest.raises(SourceBehindError) as err:
        sync(cfg, rep.source_uri, rep.target_uri, GOLD)
    text = str(err.value)
    assert "\n" not in text and err.value.remedy == "reseed" and "(at version 2)" in text
    assert "--" not in text, "an engine error names no CLI flag"
    # forced upkeep removed the log entries the replica (at version 2) needed, not only files
    assert "the source's log no longer holds version(s) 3..5 that replica" in text
    assert sorted(p.name for p in Path(rep.target_uri, "_delta_log").iterdir()) == before
    fixed = sync(cfg, rep.source_uri, rep.target_uri, SyncOptions(table=TABLE, reseed=True))
    assert fixed.versions_behind_after == 0
    assert assert_equal_where_held(rep.source_uri, rep.target_uri)
    assert sync(cfg, rep.source_uri, rep.target_uri, GOLD).commits_copied == 0


@pytest.mark.parametrize("cleaned", ["log", "files"])
def test_a_sync_vacuumed_past_is_one_line_naming_table_route_and_reseed(cfg, cleaned, capsys):
    rep = eu_replica(cfg)
    churn(rep.source_uri, 3, 0)
    sync(cfg, rep.source_uri, rep.target_uri, GOLD)
    churn(rep.source_uri, 4)
    if cleaned == "log":
        forced_upkeep(cfg, rep.source_uri)
    else:  # as a VACUUM with a short retention would: a file only the replica still needs
        lacking = [
            p
            for p in Path(rep.source_uri).rglob("*.parquet")
            if not Path(rep.target_uri, p.relative_to(rep.source_uri)).exists()
        ]
        for p in lacking:
            p.unlink()
    assert cli.main(["sync", "--from", rep.source_uri, "--to", rep.target_uri]) == 1
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error" in x]
    if cleaned == "log":
        assert err == line + "\n", "nothing but the error: no progress line before any copy"
    assert line.startswith("lakehouse sync: error: table 'gold_daily_demand', ")
    assert "route azure-eu (EU) -> aws-us (US)" in line and "at version 2" in line
    assert line.endswith("rerun with --reseed") and len(line) < 250, line


def test_vacuumed_files_of_a_lagging_replica_name_files_versions_and_command(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    churn(src, 2, 0)
    sync_table(src, dst)
    churn(src, 3)  # v2 append, v3 overwrite (removes v2's file), v4 append
    added = next(
        p for p in Path(src).rglob("*.parquet") if Path(dst, p.relative_to(src)).exists() is False
    )
    victim = str(added.relative_to(src))
    added.unlink()  # as a VACUUM with a short retention would
    with pytest.raises(SourceBehindError, match="needed by version") as err:
        sync_table(src, dst)
    assert (
        victim in str(err.value) and err.value.remedy == "reseed" and "a reseed" in str(err.value)
    )
    assert DeltaTable(dst).version() == 1, "nothing was committed to the replica"


def test_replica_upkeep_never_commits_and_keeps_every_held_version_equal(cfg):
    rep = eu_replica(cfg)
    churn(rep.source_uri, 4, 0)
    sync(cfg, rep.source_uri, rep.target_uri, GOLD)
    churn(rep.source_uri, 4)
    maintenance.maintain(cfg, TABLE, "azure-eu")  # keeps what the replica at 3 needs
    sync(cfg, rep.source_uri, rep.target_uri, GOLD)
    maintenance.maintain(cfg, TABLE, "azure-eu")  # the replica caught up: reclaim
    held = DeltaTable(rep.target_uri).version()
    own = maintenance.maintain(cfg, rep.name, "aws-us")
    assert own.role == "replica" and own.version_after == held
    assert own.vacuum["files_deleted"] > 0, "what the source vacuumed goes at the replica too"
    assert own.compaction["mode"] == "none" and own.checkpoint["written"] is False
    assert DeltaTable(rep.target_uri).version() == held, "a replica never commits"
    assert assert_equal_where_held(rep.source_uri, rep.target_uri)
    churn(rep.source_uri, 2, 500)
    assert sync(cfg, rep.source_uri, rep.target_uri, GOLD).versions_behind_after == 0
    assert assert_equal_where_held(rep.source_uri, rep.target_uri)


def test_log_cleaned_past_a_replica_names_versions_and_reseed_restarts_without_gap(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    churn(src, 2, 0)
    sync_table(src, dst)
    churn(src, 4)
    DeltaTable(src).create_checkpoint()
    for v in range(4):
        Path(src, "_delta_log", f"{v:020d}.json").unlink()
    with pytest.raises(SourceBehindError, match=r"no longer holds version\(s\) 2\.\.3"):
        sync_table(src, dst)
    fixed = sync_table(src, dst, options=SyncOptions(reseed=True))
    assert fixed.target_version_after == 5
    assert held_versions(dst) == [5], "no replica version is left before a gap"
    assert rows_at(dst, 5) == rows_at(src, 5)


def test_a_table_feature_the_sync_cannot_carry_is_refused_by_name(tmp_path):
    src = tmp_path / "src"
    write_deltalake(str(src), gold(3))
    protocol = {
        "protocol": {
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["catalogOwned"],
            "writerFeatures": ["catalogOwned"],
        }
    }
    (src / "_delta_log" / f"{1:020d}.json").write_text(json.dumps(protocol) + "\n")
    with pytest.raises(SyncError, match="table feature 'catalogOwned' cannot be replicated"):
        sync_table(str(src), str(tmp_path / "dst"))
    assert not (tmp_path / "dst" / "_delta_log").exists()


def test_cli_maintain_prints_json_and_refuses_unknown_table_in_one_line(cfg, capsys):
    rep = eu_replica(cfg)
    churn(rep.source_uri, 3, 0)
    assert cli.main(["maintain", "--table", TABLE, "--location", "azure-eu", "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] and out["retention_floor_version"] == 2 and out["role"] == "source"
    assert DeltaTable(rep.source_uri).version() == 2, "a dry run changes nothing"
    argv = ["maintain", "--table", TABLE, "--location", "azure-eu", "--dry-run", "--sweep"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["vacuum"]["mode"] == "sweep"
    assert cli.main(["maintain", "--table", "demand_features", "--location", "azure-eu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not live at location 'azure-eu'" in err


def test_weekly_schedule_runs_every_table_and_the_run_records_floor_and_setter(cfg, tmp_path):
    import dagster as dg

    from jobs.maintenance import build_maintenance
    from resources.lake import LakeResource
    from resources.mlflow import MLflowResource

    rep = eu_replica(cfg)
    churn(rep.source_uri, 3, 0)
    sync(cfg, rep.source_uri, rep.target_uri, GOLD)
    churn(rep.source_uri, 2)
    job, schedule, sweep_schedule = build_maintenance(load_config("local"))
    resources = {
        "lake": LakeResource(),
        "mlflow": MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        defs = dg.Definitions(jobs=[job], schedules=[schedule], resources=resources)
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 10, 4, 3),
            repository_def=defs.get_repository_def(),
        )
        requests = list(schedule.evaluate_tick(context).run_requests or [])
        keys = {r.partition_key for r in requests}
        assert f"{TABLE}@azure-eu" in keys and f"{rep.name}@aws-us" in keys
        assert all(r.tags["lakehouse/jurisdiction"] for r in requests)
        assert all(not r.run_config for r in requests), "the weekly upkeep plans from the log"
        sweeps = list(sweep_schedule.evaluate_tick(context).run_requests or [])
        assert {r.partition_key for r in sweeps} == keys
        assert all(r.run_config["ops"]["maintain_table"]["config"]["sweep"] is True for r in sweeps)
        result = job.execute_in_process(
            partition_key=f"{TABLE}@azure-eu",
            instance=instance,
            resources=resources,
        )
        assert result.success
        seen = [
            e.event_specific_data.asset_observation
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
        meta = seen[0].metadata
        assert seen[0].asset_key == dg.AssetKey(TABLE)
        assert meta["retention_floor_version"].value == 2
        assert meta["floor_set_by"].value == f"replica {rep.name}"


def test_replica_just_past_a_checkpoint_syncs_after_log_cleanup(tmp_path):
    """The schema of the replica's version comes from a checkpoint older than its version."""
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    churn(src, 2, 0)
    DeltaTable(src).create_checkpoint()  # at 1
    write_deltalake(src, gold(5, 50), mode="append")  # 2
    write_deltalake(src, gold(5, 60), mode="append")  # 3
    sync_table(src, dst)
    write_deltalake(src, gold(5, 70), mode="append")
    DeltaTable(src).create_checkpoint()  # at 4: _last_checkpoint no longer points below 3
    cleaned = maintenance.log_cleanup(open_storage(src), 3, log_retention_hours=0)
    assert cleaned == {"kept_from_version": 1, "entries_deleted": 1}
    assert sync_table(src, dst).versions_behind_after == 0
    assert rows_at(dst, 4) == rows_at(src, 4)


def split_checkpoint(log: Path, version: int, parts: int) -> None:
    """Rewrite a classic checkpoint as a multi-part one (what Spark writes for big tables)."""
    import pyarrow.parquet as pq

    classic = log / f"{version:020d}.checkpoint.parquet"
    table = pq.read_table(classic)
    step = -(-table.num_rows // parts)
    for i in range(parts):
        name = f"{version:020d}.checkpoint.{i + 1:010d}.{parts:010d}.parquet"
        pq.write_table(table.slice(i * step, step), log / name)
    classic.unlink()
    hint = json.loads((log / "_last_checkpoint").read_text())
    (log / "_last_checkpoint").write_text(json.dumps({**hint, "parts": parts}))


def test_fresh_replica_seeds_from_a_complete_multi_part_checkpoint_only(tmp_path):
    src = tmp_path / "src"
    churn(str(src), 4, 0)
    DeltaTable(str(src)).create_checkpoint()  # at 3
    write_deltalake(str(src), gold(5, 90), mode="append")
    log = src / "_delta_log"
    split_checkpoint(log, 3, 3)
    for v in range(3):
        (log / f"{v:020d}.json").unlink()
    report = sync_table(str(src), str(tmp_path / "dst"))
    assert report.checkpoints_copied == 3 and report.target_version_after == 4
    assert rows_at(str(tmp_path / "dst"), 4) == rows_at(str(src), 4)
    (log / f"{3:020d}.checkpoint.{2:010d}.{3:010d}.parquet").unlink()  # a crashed writer's set
    with pytest.raises(SyncError, match="no commit 0 and no checkpoint"):
        sync_table(str(src), str(tmp_path / "other"))


def history(uri: str, days: int) -> None:
    """One commit a day, each a new date partition (as the daily runs make a table)."""
    for d in range(days):
        write_deltalake(
            uri,
            gold(5, d * 5, DAY + dt.timedelta(days=d)),
            mode="append",
            partition_by=["date", "region"],
            configuration={"delta.checkpointInterval": "10"},
        )


def listed() -> int:
    from pipelines.lake.storage import objects_listed

    return sum(objects_listed().values())


def new_day(uri: str, days: int) -> None:
    """The next day: yesterday's partition rewritten (one removal) and a new one appended."""
    yesterday = DAY + dt.timedelta(days=days - 1)
    write_deltalake(
        uri,
        gold(5, 9000, yesterday),
        mode="overwrite",
        predicate=f"date = '{yesterday.isoformat()}'",
        partition_by=["date", "region"],
    )
    write_deltalake(
        uri,
        gold(5, 9100, yesterday + dt.timedelta(days=1)),
        mode="append",
        partition_by=["date", "region"],
    )


def test_the_vacuum_planners_listing_does_not_grow_with_history(cfg, tmp_path):
    """A year of daily commits costs each run's VACUUM what a week does; the sweep does not."""
    got = {}
    for days in (5, 40):
        uri = str(tmp_path / f"t{days}")
        history(uri, days)
        storage = open_storage(uri)
        maintenance.maintain_source(storage, uri, {}, [], cfg.maintenance)  # the last weekly run
        new_day(uri, days)
        before = listed()
        done = maintenance.maintain_source(storage, uri, {}, [], cfg.maintenance)
        run = listed() - before
        before = listed()
        maintenance.maintain_source(storage, uri, {}, [], cfg.maintenance, sweep=True, dry_run=True)
        got[days] = (run, listed() - before, done["vacuum"])
    (small, sweep_small, v_small), (large, sweep_large, v_large) = got[5], got[40]
    assert large == small, f"listed {small} objects with 5 days of history, {large} with 40"
    assert sweep_large > sweep_small + 30, "the orphan sweep lists every object (the control)"
    for v in (v_small, v_large):
        assert v["mode"] == "log (since the last plan)" and v["commits_read"] == 2
        assert v["files_deleted"] == 1 and v["candidates"] == 1, v


def versions_rows(uri: str) -> dict[int, list[dict]]:
    return {v: rows_at(uri, v) for v in range(DeltaTable(uri).version() + 1)}


def test_after_log_upkeep_every_kept_version_reads_as_before(cfg, tmp_path):
    """Replica floor, a model's pinned version and the current one: each reads its rows."""
    rep = eu_replica(cfg)
    uri = rep.source_uri
    churn(uri, 4, 0)  # 0..3
    tracking = registry(tmp_path)
    register(tracking, uri, 1)  # a model trained on version 1
    churn(uri, 2, 40)  # 4, 5
    sync(cfg, rep.source_uri, rep.target_uri, GOLD)  # the replica holds 5
    churn(uri, 5, 80)  # 6..10: overwrites remove files
    expected = versions_rows(uri)
    pins = maintenance.registry_pins(tracking, cfg.maintenance)
    first = maintenance.maintain(cfg, TABLE, "azure-eu", model_pins_of=pins)
    assert first.vacuum["mode"] == "log (from the checkpoint)"
    churn(uri, 3, 200)  # the next week's commits
    newest = DeltaTable(uri).version()
    expected.update({v: rows_at(uri, v) for v in range(first.version_before + 1, newest + 1)})
    second = maintenance.maintain(cfg, TABLE, "azure-eu", model_pins_of=pins)
    assert second.vacuum["mode"] == "log (since the last plan)"
    deleted = first.vacuum["files_deleted"] + second.vacuum["files_deleted"]
    assert deleted > 0 and second.vacuum["kept_for_floor"] > 0
    for v in [1, *range(5, newest + 1)]:
        assert rows_at(uri, v) == expected[v], f"version {v} changed after upkeep"
    # the upkeep's own compaction commits read as the version they rewrote
    assert rows_at(uri, DeltaTable(uri).version()) == expected[newest]
    unkept = [v for v in range(2, 5) if v in expected]
    assert any(_unreadable(uri, v) for v in unkept), "nothing outside the floor was reclaimed"
    assert sync(cfg, rep.source_uri, rep.target_uri, GOLD).versions_behind_after == 0
    assert assert_equal_where_held(rep.source_uri, rep.target_uri, since=5)


def _unreadable(uri: str, version: int) -> bool:
    try:
        rows_at(uri, version)
    except Exception:
        return True
    return False


def test_a_young_removal_waits_in_the_plan_and_goes_on_a_later_run(tmp_path):
    import time

    uri = str(tmp_path / "t")
    churn(uri, 2, 0)  # version 1 overwrites: version 0's file is removed
    storage = open_storage(uri)
    floor = maintenance.compute_floor(1, [])
    held = rows_at(uri, 1)
    now = time.time()
    first = maintenance.log_vacuum(storage, floor, retention_hours=1, now=now)
    assert (first.kept_young, first.files_deleted) == (1, 0)
    plan = json.loads((Path(uri) / maintenance.PLAN_STATE).read_text())
    assert plan["version"] == 1 and len(plan["waiting"]) == 1
    later = maintenance.log_vacuum(storage, floor, retention_hours=1, now=now + 7200)
    assert later.commits_read == 0 and later.files_deleted == 1, "from the plan, no log read"
    assert rows_at(uri, 1) == held and len(held) == 5
    assert json.loads((Path(uri) / maintenance.PLAN_STATE).read_text())["waiting"] == []


def test_a_file_no_commit_names_is_left_to_the_orphan_sweep(cfg, tmp_path):
    import os

    uri = str(tmp_path / "t")
    churn(uri, 2, 0)
    orphan = Path(uri) / "date=2026-09-01" / "region=eu" / "part-crashed-writer.parquet"
    orphan.write_bytes(b"PAR1 a crashed writer's file")
    os.utime(orphan, (0, 0))
    storage = open_storage(uri)
    done = maintenance.maintain_source(storage, uri, {}, [], cfg.maintenance)
    assert orphan.exists() and done["vacuum"]["files_deleted"] == 1  # the removed one only
    swept = maintenance.maintain_source(storage, uri, {}, [], cfg.maintenance, sweep=True)
    assert not orphan.exists() and swept["vacuum"]["mode"] == "sweep"
    assert rows_at(uri, DeltaTable(uri).version())


def test_a_replaced_log_makes_the_plan_start_again_from_the_checkpoint(tmp_path):
    uri = str(tmp_path / "t")
    churn(uri, 3, 0)
    storage = open_storage(uri)
    maintenance.log_vacuum(storage, maintenance.compute_floor(2, []), retention_hours=0)
    (Path(uri) / "_delta_log" / f"{2:020d}.json").write_text(
        (Path(uri) / "_delta_log" / f"{2:020d}.json").read_text() + "\n"
    )  # another log's commit 2 (a reseed writes the source's)
    again = maintenance.log_vacuum(storage, maintenance.compute_floor(2, []), retention_hours=0)
    assert again.mode == "log (from the checkpoint)"


def test_writers_checkpoint_and_leave_the_log_to_the_floor(tmp_path):
    """delta-rs' post-commit hook would delete commits past delta.logRetentionDuration."""
    quick = {"delta.logRetentionDuration": "interval 0 seconds", "delta.checkpointInterval": "2"}
    ours, theirs = str(tmp_path / "ours"), str(tmp_path / "theirs")
    for uri in (ours, theirs):
        DeltaTable.create(uri, gold(1).schema, partition_by=["date", "region"], configuration=quick)
    part = {"date": DAY, "region": "eu"}
    for i in range(5):
        delta.write_partition(ours, gold(5, i * 5), part, {}, partition_by=["date", "region"])
        write_deltalake(theirs, gold(5, i * 5), mode="append", partition_by=["date", "region"])
    kept, cleaned = list_log(open_storage(ours)), list_log(open_storage(theirs))
    assert sorted(kept.commits) == list(range(6)), "a writer deleted commits upkeep keeps"
    assert kept.checkpoints, "the writer's commits make checkpoints at the table's interval"
    assert min(cleaned.commits) > 0, "the control: delta-rs' own hook cleans the log"
    assert len(rows_at(ours, 1)) == 5, "an early version still reads"


def test_a_first_plan_reads_the_checkpoints_tombstones_not_its_live_files(tmp_path):
    """Without a last plan the run starts from the checkpoint: its remove column, by ranges."""
    from pipelines.lake.storage import bytes_read, bytes_read_since

    got = {}
    for days in (5, 120):
        uri = str(tmp_path / f"t{days}")
        history(uri, days)
        DeltaTable(uri).create_checkpoint()
        new_day(uri, days)
        storage = open_storage(uri)
        floor = maintenance.compute_floor(DeltaTable(uri).version(), [])
        before = bytes_read()
        done = maintenance.log_vacuum(storage, floor, retention_hours=0, dry_run=True)
        read = sum(bytes_read_since(before).values())
        checkpoint = max(Path(uri, "_delta_log").glob("*.checkpoint.parquet")).stat().st_size
        assert not (Path(uri) / maintenance.PLAN_STATE).exists(), "a dry run writes no plan"
        got[days] = (read, checkpoint, done)
    (small, cp_small, v_small), (large, cp_large, v_large) = got[5], got[120]
    assert cp_large > 3 * cp_small, "the control: the checkpoint grows with the live files"
    assert large < 1.3 * small, f"read {small} bytes with 5 days, {large} with 120"
    for v in (v_small, v_large):
        assert v.mode == "log (from the checkpoint)" and v.commits_read == 2
        assert v.files_deleted == 1


def test_log_cleanup_keeps_a_checkpoint_until_its_successor_is_past_retention(tmp_path):
    """A reader that read ``_last_checkpoint`` just before upkeep wrote a newer one still loads.

    The table's last checkpoint (at 2) is 40 days old: upkeep writes one at 4 and cleans the log
    at once. A writer that opened the table a moment before reads checkpoint 2 and commits 3..4
    (seen: ``lakehouse ingest`` beside ``lakehouse maintain`` failed with checkpoint 2 "not
    found"); they go once checkpoint 4 has been there for the retention.
    """
    import os
    import time

    uri = str(tmp_path / "t")
    log = tmp_path / "t" / "_delta_log"
    churn(uri, 3, 0)  # 0..2
    DeltaTable(uri).create_checkpoint()  # at 2
    churn(uri, 2, 50)  # 3..4
    old = time.time() - 40 * 24 * 3600
    for f in log.iterdir():
        os.utime(f, (old, old))
    DeltaTable(uri).create_checkpoint()  # at 4, now: what upkeep does before it cleans up
    cleaned = maintenance.log_cleanup(open_storage(uri), 4, log_retention_hours=720)
    assert cleaned == {"kept_from_version": 4, "entries_deleted": 3}  # commits 0..2 only
    assert (log / f"{2:020d}.checkpoint.parquet").exists()
    assert DeltaTable(uri, version=3).version() == 3  # checkpoint 2 and commit 3: readable
    later = time.time() + 31 * 24 * 3600
    cleaned = maintenance.log_cleanup(open_storage(uri), 4, log_retention_hours=720, now=later)
    assert cleaned == {"kept_from_version": 4, "entries_deleted": 2}  # checkpoint 2, commit 3
    assert DeltaTable(uri).version() == 4
