"""Demand features of all regions in the ML home, from the gold tables and their replicas."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from assets.partitions import contiguous_ranges, daily
from assets.replicas import REPLICA_KEYS
from data_quality import gx
from pipelines import spark_jobs
from pipelines.schemas import FEATURES_PARTITION_BY
from resources.lake import LakeResource
from resources.spark import SparkResource


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # The ML home's own gold, and the replicas of every other region's gold.
    deps=[dg.AssetKey("gold_daily_demand"), *REPLICA_KEYS],
    group_name="features",
    kinds={"spark", "delta"},
    check_specs=[gx.check_spec("demand_features")],
    metadata={"partition_columns": "date", "look_back_days": 28},
)
def demand_features(
    context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Calendar-day lags, rolling means and deviations, price, promotion, calendar; the target."""
    session = spark.session()
    cfg, home = lake.config(), lake.config().home
    opts = lake.storage_options(home)
    days = [dt.date.fromisoformat(k) for k in context.partition_keys]
    written = []
    version = None
    for start, end in contiguous_ranges(days):
        df = spark_jobs.features(session, cfg, opts, start, end)
        version = lake.spark_write_range(
            df, home, spark_jobs.FEATURES_TABLE, start, end, None, FEATURES_PARTITION_BY
        )
        where = spark_jobs.date_range_predicate(start, end)
        table = home.table_uri(spark_jobs.FEATURES_TABLE)
        written.append(spark_jobs.read_delta(session, table, opts, where, "features"))
        context.log.info(f"features {start}..{end} -> {table}")
    rows = spark_jobs.union_all(written).cache()
    yield dg.MaterializeResult(
        metadata={
            "location": home.name,
            "delta_version": version,
            "inputs": dg.MetadataValue.json([i.uri for i in spark_jobs.feature_inputs(cfg)]),
            "dagster/row_count": rows.count(),
        }
    )
    yield gx.check_result("demand_features", gx.validate("demand_features", rows))
    rows.unpersist()
