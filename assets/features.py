"""Demand features of all regions in the ML home, from the gold tables and their replicas."""

import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg

from assets.partitions import Partitions, contiguous_ranges
from data_quality import gx
from data_quality.suites import Suites
from pipelines import spark_jobs, tables
from resources.lake import LakeResource
from resources.spark import SparkResource


def build_features(
    parts: Partitions, suites: Suites, replica_keys: Sequence[dg.AssetKey]
) -> dg.AssetsDefinition:
    """The daily features asset, reading the ML home's gold and the given replicas."""
    suite = suites[tables.FEATURES.name]

    @dg.asset(
        name=tables.FEATURES.name,
        partitions_def=parts.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # The ML home's own gold, and the replicas of every other region's gold.
        deps=[dg.AssetKey(tables.GOLD.name), *replica_keys],
        group_name="features",
        kinds={"spark", "delta"},
        check_specs=[gx.check_spec(suite)],
        metadata={"partition_columns": "date", "look_back_days": 28},
    )
    def demand_features(
        context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Calendar-day lags, rolling means and deviations, price, promotion, calendar; target."""
        session = spark.session()
        cfg = lake.config()
        home, opts = cfg.home, lake.storage_options(cfg.home)
        table = home.table_uri(tables.FEATURES.name)
        days = [dt.date.fromisoformat(k) for k in context.partition_keys]
        written, version = [], None
        for start, end in contiguous_ranges(days):
            df = spark_jobs.features(session, cfg, opts, start, end)
            version = lake.spark_write_range(
                df, home, tables.FEATURES.name, start, end, None, list(tables.FEATURES.partition_by)
            )
            where = spark_jobs.date_range_predicate(start, end)
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
        yield gx.check(suite, rows)
        rows.unpersist()

    return demand_features
