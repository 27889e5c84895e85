"""Gold: daily demand per store and SKU in each region's cloud, free of personal data."""

from collections.abc import Iterator

import dagster as dg

from assets.partitions import date_region
from assets.spark_io import write_region_ranges
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
    rows, versions = write_region_ranges(
        context, lake, session, spark_jobs.GOLD_TABLE, GOLD_PARTITION_BY, spark_jobs.gold
    )
    yield dg.MaterializeResult(
        metadata={
            "delta_versions": dg.MetadataValue.json(versions),
            "dagster/row_count": rows.count(),
        }
    )
    yield gx.check_result("gold_daily_demand", gx.validate("gold_daily_demand", rows))
    rows.unpersist()
