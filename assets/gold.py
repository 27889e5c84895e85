"""Gold: daily demand per store and SKU in each region's cloud, free of personal data.

Gold writes no personal data but reads silver, which is pseudonymized and still personal data:
it runs only on a worker of the data's jurisdiction, like silver.
"""

from collections.abc import Iterator

import dagster as dg

from assets.factory import region_spark_asset
from assets.keys import Keys, rekeyed
from assets.partitions import Partitions
from assets.spark_io import RegionStep, run_region_steps, step_results
from data_quality.suites import Suites
from pipelines.lake import tables
from resources.lake import LakeResource
from resources.spark import SparkStepRunner

GOLD = RegionStep("gold", tables.GOLD, reads=tables.SILVER)


def build_gold(parts: Partitions, suites: Suites, keys: Keys) -> dg.AssetsDefinition:
    """The gold asset over (date, region), one Spark run per backfill."""
    suite = suites[tables.GOLD.name]

    @region_spark_asset(GOLD, parts, suite, keys)
    def gold_daily_demand(
        context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkStepRunner
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """One row per store, SKU and day: quantity, revenue, prices, promotion, online share."""
        where, written = run_region_steps(context, lake, spark, GOLD)
        metadata = {**where, "delta_versions": dg.MetadataValue.json(written.versions)}
        yield from rekeyed(step_results(suite, written, metadata), context.assets_def.keys)

    return gold_daily_demand
