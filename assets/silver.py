"""Silver: typed, de-duplicated, pseudonymized events per region, with Spark on Delta."""

from collections.abc import Iterator

import dagster as dg

from assets.partitions import date_ranges_by_region, date_region, union_all
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
    written, versions = [], {}
    for region, ranges in date_ranges_by_region(context.partition_keys).items():
        loc = lake.location_for_region(region)
        opts = lake.storage_options(loc)
        for start, end in ranges:
            df = spark_jobs.silver(session, loc, opts, start, end, pii.secret())
            versions[loc.name] = lake.spark_write_range(
                df, loc, spark_jobs.SILVER_TABLE, start, end, region, SILVER_PARTITION_BY
            )
            where = spark_jobs.date_range_predicate(start, end, region)
            table = loc.table_uri(spark_jobs.SILVER_TABLE)
            written.append(spark_jobs.read_delta(session, table, opts, where, "silver"))
            context.log.info(f"silver {loc.name} {start}..{end} -> {table}")
    rows = union_all(written).cache()
    yield dg.MaterializeResult(
        metadata={
            "delta_versions": dg.MetadataValue.json(versions),
            "dagster/row_count": rows.count(),
            "late_events": rows.where("is_late").count(),
        }
    )
    yield gx.check_result("silver_events", gx.validate("silver_events", rows))
    rows.unpersist()
