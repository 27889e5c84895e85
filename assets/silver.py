"""Silver: typed, de-duplicated, pseudonymized events per region, with Spark on Delta."""

import functools
from collections.abc import Iterator

import dagster as dg

from assets.partitions import Partitions
from assets.spark_io import write_region_ranges
from data_quality import gx
from data_quality.suites import Suites
from pipelines import spark_jobs, tables
from resources.lake import LakeResource
from resources.pii import PiiKeyResource
from resources.spark import SparkResource


def build_silver(parts: Partitions, suites: Suites) -> dg.AssetsDefinition:
    """The silver asset over (date, region), one Spark run per backfill."""
    suite = suites[tables.SILVER.name]

    @dg.asset(
        name=tables.SILVER.name,
        partitions_def=parts.date_region,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetKey(tables.BRONZE.name)],
        group_name="silver",
        kinds={"spark", "delta"},
        check_specs=[gx.check_spec(suite)],
        metadata={"partition_columns": ", ".join(tables.SILVER.partition_by)},
    )
    def silver_events(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        spark: SparkResource,
        pii: PiiKeyResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Events by event date in their region's cloud: late kept, duplicates gone, PII hashed."""
        rows, versions = write_region_ranges(
            context,
            lake,
            spark.session(),
            tables.SILVER,
            functools.partial(spark_jobs.silver, pii_key=pii.secret()),
        )
        yield dg.MaterializeResult(
            metadata={
                "delta_versions": dg.MetadataValue.json(versions),
                "dagster/row_count": rows.count(),
                "late_events": rows.where("is_late").count(),
            }
        )
        yield gx.check(suite, rows)
        rows.unpersist()

    return silver_events
