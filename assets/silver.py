"""Silver: typed, de-duplicated, pseudonymized events per region, with Spark on Delta."""

import functools
from collections.abc import Iterator

import dagster as dg

from assets.partitions import date_region
from assets.spark_io import write_region_ranges
from data_quality import gx
from pipelines import spark_jobs
from pipelines.transforms import SILVER_PARTITION_BY
from resources.lake import LakeResource
from resources.pii import PiiKeyResource
from resources.spark import SparkResource


@dg.asset(
    partitions_def=date_region,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey("bronze_events")],
    group_name="silver",
    kinds={"spark", "delta"},
    check_specs=[gx.check_spec("silver_events")],
    metadata={"partition_columns": "date, region"},
)
def silver_events(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    spark: SparkResource,
    pii: PiiKeyResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Events by event date in their region's cloud: late ones kept, duplicates gone, PII hashed."""
    session = spark.session()
    key = pii.secret()
    rows, versions = write_region_ranges(
        context,
        lake,
        session,
        spark_jobs.SILVER_TABLE,
        SILVER_PARTITION_BY,
        functools.partial(spark_jobs.silver, pii_key=key),
    )
    yield dg.MaterializeResult(
        metadata={
            "delta_versions": dg.MetadataValue.json(versions),
            "dagster/row_count": rows.count(),
            "late_events": rows.where("is_late").count(),
        }
    )
    yield gx.check_result("silver_events", gx.validate("silver_events", rows))
    rows.unpersist()
