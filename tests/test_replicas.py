"""Replica assets, their checks and sync_job on local folders."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import write_deltalake

from assets.replicas import build_replicas
from pipelines.lake.config import load_config
from pipelines.replication.verify import table_fingerprint
from resources import resources_for
from tests.helpers import asset, definitions, gold_rows, suites

NAME = "gold_daily_demand_replica_azure_eu"


def source_uri() -> str:
    return load_config("local").location("azure-eu").table_uri("gold_daily_demand")


def replica_asset():
    return asset(NAME)


def test_replica_assets_follow_the_replication_config():
    cfg = load_config("local")
    names = {a.key.to_user_string() for a in build_replicas(cfg, suites())}
    assert names == {r.name for r in cfg.replicas()}
    assert names == {"gold_daily_demand_replica_azure_eu", "gold_daily_demand_replica_gcp_apac"}
    for replica in cfg.replicas():
        assert replica.target.name == cfg.ml_home
        assert replica.target_uri == cfg.home.replica_uri("gold_daily_demand", replica.source.name)
    asset = replica_asset()
    assert dg.AssetKey("gold_daily_demand") in asset.dependency_keys
    assert asset.group_names_by_key[asset.key] == "replication"
    checks = {c.name: c for c in asset.check_specs}
    assert checks[f"{NAME}_consistency"].blocking and checks[f"{NAME}_expectations"].blocking


def test_materialize_replica_runs_sync_and_checks(lake_home):
    write_deltalake(source_uri(), gold_rows(dt.date(2026, 10, 1)), partition_by=["date", "region"])
    write_deltalake(source_uri(), gold_rows(dt.date(2026, 10, 2)), mode="append")
    result = dg.materialize([replica_asset()], resources=resources_for("local"))
    assert result.success
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    assert meta["source_version"].value == 1 and meta["replica_version"].value == 1
    assert meta["versions_behind"].value == 0 and meta["files_copied"].value == 2
    assert meta["egress_usd"].value > 0
    # every byte read from the source's location: the copy and the logs the planner read
    assert meta["egress_bytes"].value == meta["bytes_read"].value["azure-eu"]
    assert meta["egress_bytes"].value >= meta["bytes_copied"].value
    assert meta["bytes_read"].value["azure-eu"] >= meta["bytes_copied"].value
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[f"{NAME}_consistency"].passed
    # a fresh replica: everything was copied, so every partition is verified
    assert checks[f"{NAME}_consistency"].metadata["replica_rows"].value == 40
    assert checks[f"{NAME}_consistency"].metadata["partitions_checked"].value == 2
    assert checks[f"{NAME}_expectations"].passed
    replica = load_config("local").home.replica_uri("gold_daily_demand", "azure-eu")
    assert table_fingerprint(replica, {}) == table_fingerprint(source_uri(), {})


def test_fingerprint_sees_a_single_changed_value(tmp_path):
    a, b = gold_rows(dt.date(2026, 10, 1)), gold_rows(dt.date(2026, 10, 1))
    b = b.set_column(6, "quantity", pa.array([*range(19), 99], pa.int64()))
    write_deltalake(str(tmp_path / "a"), a)
    write_deltalake(str(tmp_path / "b"), b)
    write_deltalake(str(tmp_path / "c"), a.take(list(reversed(range(a.num_rows)))))
    fa, fb, fc = (table_fingerprint(str(tmp_path / x), {}) for x in "abc")
    assert fa[0] == fb[0] == fc[0] == 20
    assert fa != fb and fa == fc


def test_sync_job_selects_every_configured_replica():
    defs = definitions()
    job = defs.resolve_job_def("sync_job")
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert selected == {r.name for r in load_config("local").replicas()}


def _sync_days(*days: dt.date) -> dg.ExecuteInProcessResult:
    for day in days:
        write_deltalake(
            source_uri(), gold_rows(day), partition_by=["date", "region"], mode="append"
        )
    return dg.materialize([replica_asset()], resources=resources_for("local"), raise_on_error=False)


def _checks(result: dg.ExecuteInProcessResult) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _replica_uri() -> str:
    return load_config("local").home.replica_uri("gold_daily_demand", "azure-eu")


def _file_of(table_uri: str, day: dt.date) -> Path:
    (path,) = (Path(table_uri) / f"date={day.isoformat()}").rglob("*.parquet")
    return path


def test_a_later_run_verifies_only_the_partitions_it_copied(lake_home):
    assert _sync_days(dt.date(2026, 10, 1), dt.date(2026, 10, 2)).success
    result = _sync_days(dt.date(2026, 10, 3))
    assert result.success
    check = _checks(result)[f"{NAME}_consistency"]
    assert check.passed
    assert check.metadata["partitions_checked"].value == 1
    assert check.metadata["files_checked"].value == 1
    assert check.metadata["replica_rows"].value == 20
    # the replica's bytes read by verification: the copied file, not the history
    copied = _file_of(_replica_uri(), dt.date(2026, 10, 3)).stat().st_size
    assert check.metadata["verify_replica_bytes_read"].value < 3 * copied
    # the sync streamed and hashed the source's bytes: verification read nothing across clouds
    assert check.metadata["verify_source_bytes_read"].value == 0
    assert _checks(result)[f"{NAME}_expectations"].passed


def test_a_copied_file_altered_after_the_copy_fails_the_consistency_check(lake_home, monkeypatch):
    import assets.replicas as replicas

    real_sync = replicas.sync
    day = dt.date(2026, 10, 2)

    def sync_then_tamper(*args, **kwargs):
        report = real_sync(*args, **kwargs)
        path = _file_of(_replica_uri(), day)
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle] ^= 0xFF  # same size, other bytes
        path.write_bytes(bytes(data))
        return report

    assert _sync_days(dt.date(2026, 10, 1)).success
    monkeypatch.setattr(replicas, "sync", sync_then_tamper)
    result = _sync_days(day)
    check = _checks(result)[f"{NAME}_consistency"]
    assert not check.passed
    (problem,) = check.metadata["problems"].value
    assert "MD5" in problem and f"date={day.isoformat()}" in problem


def _full_check(lake_home) -> dg.AssetCheckEvaluation:
    job = definitions().resolve_job_def("replica_full_check_job")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    return _checks(result)[f"{NAME}_full_consistency"]


def test_an_altered_old_partition_is_caught_by_the_weekly_check_not_per_run(lake_home):
    old = dt.date(2026, 10, 1)
    assert _sync_days(old, dt.date(2026, 10, 2)).success
    assert _full_check(lake_home).passed
    # someone rewrites an old replica file behind the sync's back (valid Parquet, other rows)
    path = _file_of(_replica_uri(), old)
    rows = pq.read_table(path)
    quantity = rows.column("quantity").to_pylist()
    rows = rows.set_column(
        rows.schema.get_field_index("quantity"), "quantity", pa.array([q + 1 for q in quantity])
    )
    pq.write_table(rows, path)
    per_run = _checks(_sync_days(dt.date(2026, 10, 3)))[f"{NAME}_consistency"]
    assert per_run.passed  # by design: the per-run check reads only what was copied
    full = _full_check(lake_home)
    assert not full.passed
    assert full.metadata["mismatched_partitions"].value == [{"date": "2026-10-01", "region": "eu"}]
    # every source byte the full check read crossed clouds: it is counted as egress
    assert full.metadata["egress_bytes"].value == full.metadata["source_bytes_read"].value > 0
    assert full.metadata["egress_usd"].value > 0


def test_verification_reads_from_the_source_count_as_egress(lake_home, monkeypatch):
    """A file the sync found already there (an interrupted run) is checked against the source."""
    import assets.replicas as replicas

    real_sync = replicas.sync

    def sync_forgetting_md5(*args, **kwargs):
        report = real_sync(*args, **kwargs)
        report.changes.md5.clear()  # as if copied by an earlier, interrupted run
        return report

    monkeypatch.setattr(replicas, "sync", sync_forgetting_md5)
    result = _sync_days(dt.date(2026, 10, 1))
    assert result.success
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    verified = meta["verify_egress_bytes"].value
    assert verified == _file_of(source_uri(), dt.date(2026, 10, 1)).stat().st_size
    assert meta["egress_bytes"].value >= meta["bytes_copied"].value + verified
    assert meta["egress_bytes"].value == meta["bytes_read"].value["azure-eu"]


def test_a_diverged_replica_fails_in_one_line_naming_the_assets_own_remedy(lake_home):
    assert _sync_days(dt.date(2026, 10, 1)).success
    write_deltalake(_replica_uri(), gold_rows(dt.date(2026, 9, 1)), mode="append")  # a stray writer
    result = _sync_days(dt.date(2026, 10, 2))
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = failure.step_failure_data.user_failure_data.description
    assert "has diverged" in text and "\n" not in text
    # the asset's own way out (its run config), never the CLI's flag
    assert "reseed: true" in text and "--" not in text
    config = {"ops": {NAME: {"config": {"reseed": True}}}}
    fixed = dg.materialize([replica_asset()], resources=resources_for("local"), run_config=config)
    (mat,) = fixed.get_asset_materialization_events()
    assert mat.materialization.metadata["replica_version"].value == 1
    assert table_fingerprint(_replica_uri(), {}) == table_fingerprint(source_uri(), {})
