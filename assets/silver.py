"""Silver: typed, de-duplicated, pseudonymized events per region, with Spark on Delta."""

from collections.abc import Iterator

import dagster as dg

from assets.partitions import Partitions
from assets.sovereignty import declare, require_jurisdiction
from assets.spark_io import region_ranges, run_steps
from data_quality import gx
from data_quality.suites import Suites
from pipelines.lake import tables
from resources.lake import LakeResource
from resources.pii import PiiKeyResource
from resources.spark import SparkStepRunner

# Reads raw bronze, writes pseudonymized silver: personal data on both sides.
SILVER_DATA = declare(reads=(tables.BRONZE.name,), writes=(tables.SILVER.name,))


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
        metadata={
            "partition_columns": ", ".join(tables.SILVER.partition_by),
            **SILVER_DATA.metadata(),
        },
        tags=SILVER_DATA.tags(),
    )
    def silver_events(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        spark: SparkStepRunner,
        pii: PiiKeyResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Events by event date in their region's cloud: late kept, duplicates gone, PII hashed."""
        # The key is asked for only if the step runs here; a Databricks job reads its own.
        ranges = region_ranges(context, lake)
        # before any Spark step is submitted: the runner reads bronze wherever it runs
        where = require_jurisdiction(
            context, lake, "silver", [r.location for r in ranges], SILVER_DATA
        )
        written = run_steps(context, lake, spark, "silver", ranges, pii_key=pii.secret)
        yield dg.MaterializeResult(
            metadata={
                **where,
                "delta_versions": dg.MetadataValue.json(written.versions),
                "dagster/row_count": written.count(),
                "late_events": written.count("is_late"),
                "spark_steps": dg.MetadataValue.json(written.steps),
            }
        )
        yield gx.check(suite, written.rows)
        written.release()

    return silver_events
