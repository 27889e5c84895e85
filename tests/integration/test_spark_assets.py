"""Silver, gold and features through Dagster on local Delta: backfills, replicas, delta-rs."""

import datetime as dt
import shutil

import dagster as dg
import pyarrow.compute as pc
import pytest

from pipelines.ingest.partition import ingest_partition
from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.lake.schemas import FEATURES_SCHEMA, GOLD_SCHEMA
from pipelines.simulation.simulate import SimulationConfig
from pipelines.spark import jobs as spark_jobs
from pipelines.spark.transforms import SILVER_COLUMNS
from tests.helpers import asset, definitions, land

pytestmark = pytest.mark.spark

KEY = "assets-test-key-42"
D0 = dt.date(2026, 10, 5)
DAYS = [D0 + dt.timedelta(days=i) for i in range(3)]
RANGE = {"start": "2026-10-05", "end": "2026-10-07"}


def _defs():
    return definitions("local")


def _run(job: str, start: str, end: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return (
        _defs()
        .resolve_job_def(job)
        .execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": start,
                "dagster/asset_partition_range_end": end,
            },
        )
    )


def _read(location: str, table: str):
    loc = load_config("local").location(location)
    return delta.read_partition(loc.table_uri(table), {}).sort_by(
        [("date", "ascending"), ("region", "ascending"), ("store_id", "ascending")]
        + ([("sku", "ascending")] if table != spark_jobs.SILVER_TABLE else [])
        + ([("event_id", "ascending")] if table == spark_jobs.SILVER_TABLE else [])
    )


@pytest.fixture
def landed(lake_home, monkeypatch, spark):
    monkeypatch.setenv("LAKEHOUSE_PII_KEY", KEY)
    monkeypatch.setenv("LAKEHOUSE_START_DATE", "2026-09-01")
    sim = SimulationConfig(
        start=D0 - dt.timedelta(days=2),
        end=DAYS[-1],
        events_per_day=300,
        late_share=0.05,
        bad_rate=0.02,
        bad_kinds=("duplicate_event_id",),
    )
    reports = {}
    cfg = load_config("local")
    for loc in cfg.locations.values():
        reports[loc.region] = land(loc.name, sim)
        for i in range(len(sim.days()) + 1):
            ingest_partition(loc, {}, sim.start + dt.timedelta(days=i))
    return reports


def test_range_backfill_equals_day_by_day_and_replicas_feed_features(landed):
    instance = dg.DagsterInstance.ephemeral()
    # One run for three days x three regions: the single-run backfill policy.
    res = _run("spark_job", "2026-10-05|us", "2026-10-07|apac", instance)
    assert res.success
    mats = res.get_asset_materialization_events()
    assert len({e.partition for e in mats if e.asset_key.to_user_string() == "silver_events"}) == 9
    checks = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in res.get_asset_check_evaluations()
    }
    assert checks == {
        ("silver_events", "silver_events_expectations"): True,
        ("gold_daily_demand", "gold_daily_demand_expectations"): True,
    }

    silver = _read("aws-us", spark_jobs.SILVER_TABLE)
    assert silver.column_names == list(SILVER_COLUMNS)  # the transform's order, as written
    # Every clean event of each day once: late arrivals kept, redeliveries dropped.
    for report in landed["us"]:
        if report.day in DAYS:
            got = pc.sum(pc.equal(silver.column("date"), report.day)).as_py()
            assert got == report.events, report.day
    assert pc.sum(silver.column("is_late")).as_py() > 0
    gold = _read("aws-us", spark_jobs.GOLD_TABLE)
    assert set(gold.column_names) == set(GOLD_SCHEMA.names)
    assert pc.sum(gold.column("quantity")).as_py() == pc.sum(silver.column("quantity")).as_py()

    # Same rows when the days run one by one (each replaces exactly its partitions).
    before = {
        t: _read(loc, t)
        for loc in ("aws-us", "azure-eu")
        for t in (spark_jobs.SILVER_TABLE, spark_jobs.GOLD_TABLE)
    }
    for day in DAYS:  # one run per day, all regions (a daily run touches one day)
        assert _run("spark_job", f"{day}|us", f"{day}|apac", instance).success
    after = {
        t: _read(loc, t)
        for loc in ("aws-us", "azure-eu")
        for t in (spark_jobs.SILVER_TABLE, spark_jobs.GOLD_TABLE)
    }
    assert after.keys() == before.keys()
    for k in before:
        assert after[k].equals(before[k]), k

    # Replicas: the sync engine's job; here the gold folders are copied into the ML home.
    cfg = load_config("local")
    for inp in spark_jobs.feature_inputs(cfg):
        if inp.location != cfg.home.name:
            shutil.copytree(cfg.location(inp.location).table_uri(spark_jobs.GOLD_TABLE), inp.uri)
    res = _run("features_job", "2026-10-06", "2026-10-07", instance)
    assert res.success
    assert all(c.passed for c in res.get_asset_check_evaluations())
    home = cfg.home
    feats = delta.read_partition(home.table_uri(spark_jobs.FEATURES_TABLE), {})
    assert set(feats.column_names) == set(FEATURES_SCHEMA.names)
    gold_rows = 0
    for loc in cfg.locations.values():
        g = delta.read_partition(loc.table_uri(spark_jobs.GOLD_TABLE), {})
        gold_rows += pc.sum(pc.greater_equal(g.column("date"), DAYS[1])).as_py()
    assert feats.num_rows == gold_rows  # one feature row per gold row of the days
    assert set(feats.column("region").to_pylist()) == {"us", "eu", "apac"}
    range_rows = feats.sort_by([(c, "ascending") for c in ("date", "region", "store_id", "sku")])
    for day in ("2026-10-06", "2026-10-07"):
        assert _run("features_job", day, day, instance).success
    again = delta.read_partition(home.table_uri(spark_jobs.FEATURES_TABLE), {}).sort_by(
        [(c, "ascending") for c in ("date", "region", "store_id", "sku")]
    )
    assert again.equals(range_rows)

    # delta-rs reads every table Spark wrote (no table feature it lacks).
    from deltalake import DeltaTable

    for uri in (
        home.table_uri(spark_jobs.FEATURES_TABLE),
        home.table_uri(spark_jobs.SILVER_TABLE),
        cfg.location("azure-eu").table_uri(spark_jobs.GOLD_TABLE),
    ):
        table = DeltaTable(uri)
        assert table.protocol().min_reader_version <= 3
        assert not (table.protocol().reader_features or [])  # no deletion vectors etc.
        assert table.to_pyarrow_table().num_rows > 0

    # Each write names what it read: features -> gold replicas -> silver -> bronze (the lineage
    # a model records, so that an erasure costing a silver or bronze version marks it).
    feats_uri = home.table_uri(spark_jobs.FEATURES_TABLE)
    behind = delta.upstream_versions(feats_uri, delta.table_version(feats_uri, {}), lambda u: {})
    us = cfg.location("aws-us")
    for table in (spark_jobs.SILVER_TABLE, "bronze_events"):
        uri = us.table_uri(table)
        assert behind.get(uri) == delta.table_version(uri, {}), (table, behind)
    assert any(u.startswith(home.replica_uri(spark_jobs.GOLD_TABLE, "azure-eu")) for u in behind)

    # The key is nowhere in what Dagster recorded.
    records = instance.get_records_for_run(res.run_id).records
    assert all(KEY not in str(r.event_log_entry) for r in records)


def test_missing_pii_key_is_a_clear_error(lake_home, monkeypatch, spark):
    monkeypatch.delenv("LAKEHOUSE_PII_KEY", raising=False)
    from resources import resources_for

    with pytest.raises(Exception, match="LAKEHOUSE_PII_KEY"):
        dg.materialize(
            [asset("silver_events")],
            partition_key=dg.MultiPartitionKey({"date": "2026-10-05", "region": "us"}),
            resources=resources_for("local"),
        )
