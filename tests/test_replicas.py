"""Replica assets, their checks and sync_job on local folders."""

import datetime as dt

import dagster as dg
import pyarrow as pa
from deltalake import write_deltalake

from assets.replicas import build_replicas
from pipelines.lake.config import load_config
from pipelines.replication.sync import table_fingerprint
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
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[f"{NAME}_consistency"].passed
    assert checks[f"{NAME}_consistency"].metadata["replica_rows"].value == 40
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
