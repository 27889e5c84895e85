"""Replica assets, their checks, sync_job and source_versions_sensor on local folders."""

import datetime as dt

import dagster as dg
import pyarrow as pa
from deltalake import write_deltalake

from assets.replicas import REPLICAS
from jobs.sync import source_versions_sensor, sync_job
from pipelines.config import load_config
from pipelines.schemas import GOLD_SCHEMA
from pipelines.sync import table_fingerprint
from resources import resources_for

NAME = "gold_daily_demand_replica_azure_eu"


def gold_rows(day: dt.date, n: int = 20) -> pa.Table:
    cols = {
        "date": [day] * n,
        "region": ["eu"] * n,
        "store_id": [i % 5 + 1 for i in range(n)],
        "sku": [f"sku-{i}" for i in range(n)],
        "category": ["food"] * n,
        "currency": ["EUR"] * n,
        "quantity": [i for i in range(n)],
        "revenue": [i * 2.5 for i in range(n)],
        "avg_price": [2.5] * n,
        "min_price": [2.0] * n,
        "max_price": [3.0] * n,
        "promo_share": [0.1] * n,
        "online_share": [0.2] * n,
        "events": [1] * n,
        "customers": [1] * n,
    }
    return pa.Table.from_pydict(cols, schema=GOLD_SCHEMA)


def source_uri() -> str:
    return load_config("local").location("azure-eu").table_uri("gold_daily_demand")


def replica_asset():
    return next(a for a in REPLICAS if a.key == dg.AssetKey(NAME))


def test_replica_assets_follow_the_replication_config():
    cfg = load_config("local")
    names = {a.key.to_user_string() for a in REPLICAS}
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


def test_sensor_requests_once_per_new_source_version(lake_home):
    instance = dg.DagsterInstance.ephemeral()
    resources = resources_for("local")

    def evaluate(cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            return source_versions_sensor(ctx)

    first = evaluate(None)
    assert first.run_requests == []  # no source tables yet
    write_deltalake(source_uri(), gold_rows(dt.date(2026, 10, 1)))
    second = evaluate(first.cursor)
    assert [r.asset_selection for r in second.run_requests] == [[dg.AssetKey(NAME)]]
    assert second.run_requests[0].run_key == f"{NAME}@0"
    assert evaluate(second.cursor).run_requests == [], "the same version is never requested twice"
    write_deltalake(source_uri(), gold_rows(dt.date(2026, 10, 2)), mode="append")
    third = evaluate(second.cursor)
    assert [r.run_key for r in third.run_requests] == [f"{NAME}@1"]
    # Once the replica has caught up, a fresh cursor requests nothing either.
    assert dg.materialize([replica_asset()], resources=resources).success
    assert evaluate(None).run_requests == []
    assert sync_job.name == "sync_job"
