"""Gold: daily demand per store and SKU in each region's cloud, free of personal data."""

from collections.abc import Iterator

import dagster as dg

from assets.partitions import date_ranges_by_region, date_region, union_all
from data_quality import gx
from pipelines import spark_jobs
from pipelines.schemas import GOLD_PARTITION_BY
from resources.lake import LakeResource
from resources.spark import SparkResource


@dg.asset(
    partitions_def=date_region,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey("silver_events")],
    group_name="gold",
    kinds={"spark", "delta"},
    check_specs=[gx.check_spec("gold_daily_demand")],
    metadata={"partition_columns": "date, region"},
)
def gold_daily_demand(
    context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One row per store, SKU and day: quantity, revenue, prices, promotion and online shares."""
    session = spark.session()
    written, versions = [], {}
    for region, ranges in date_ranges_by_region(context.partition_keys).items():
        loc = lake.location_for_region(region)
        opts = lake.storage_options(loc)
        for start, end in ranges:
            df = spark_jobs.gold(session, loc, opts, start, end)
            versions[loc.name] = lake.spark_write_range(
                df, loc, spark_jobs.GOLD_TABLE, start, end, region, GOLD_PARTITION_BY
            )
            where = spark_jobs.date_range_predicate(start, end, region)
            table = loc.table_uri(spark_jobs.GOLD_TABLE)
            written.append(spark_jobs.read_delta(session, table, opts, where, "gold"))
            context.log.info(f"gold {loc.name} {start}..{end} -> {table}")
    rows = union_all(written).cache()
    yield dg.MaterializeResult(
        metadata={
            "delta_versions": dg.MetadataValue.json(versions),
            "dagster/row_count": rows.count(),
        }
    )
    yield gx.check_result("gold_daily_demand", gx.validate("gold_daily_demand", rows))
    rows.unpersist()
