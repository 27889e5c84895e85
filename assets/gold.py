"""Gold: daily demand per store and SKU in each region's cloud, free of personal data.

Gold writes no personal data but reads silver, which is pseudonymized and still personal data:
it runs only on a worker of the data's jurisdiction, like silver.
"""

from collections.abc import Iterator

import dagster as dg

from assets.partitions import Partitions
from assets.sovereignty import declare, require_jurisdiction
from assets.spark_io import region_ranges, run_steps
from data_quality import gx
from data_quality.suites import Suites
from pipelines.lake import tables
from resources.lake import LakeResource
from resources.spark import SparkStepRunner

GOLD_DATA = declare(reads=(tables.SILVER.name,), writes=(tables.GOLD.name,))


def build_gold(parts: Partitions, suites: Suites) -> dg.AssetsDefinition:
    """The gold asset over (date, region), one Spark run per backfill."""
    suite = suites[tables.GOLD.name]

    @dg.asset(
        name=tables.GOLD.name,
        partitions_def=parts.date_region,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetKey(tables.SILVER.name)],
        group_name="gold",
        kinds={"spark", "delta"},
        check_specs=[gx.check_spec(suite)],
        metadata={
            "partition_columns": ", ".join(tables.GOLD.partition_by),
            **GOLD_DATA.metadata(),
        },
        tags=GOLD_DATA.tags(),
    )
    def gold_daily_demand(
        context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkStepRunner
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """One row per store, SKU and day: quantity, revenue, prices, promotion, online share."""
        ranges = region_ranges(context, lake)
        where = require_jurisdiction(context, lake, "gold", [r.location for r in ranges], GOLD_DATA)
        written = run_steps(context, lake, spark, "gold", ranges)
        yield dg.MaterializeResult(
            metadata={
                **where,
                "delta_versions": dg.MetadataValue.json(written.versions),
                "dagster/row_count": written.count(),
                "spark_steps": dg.MetadataValue.json(written.steps),
            }
        )
        yield gx.check(suite, written.rows)
        written.release()

    return gold_daily_demand
