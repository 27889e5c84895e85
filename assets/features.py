"""Demand features of all regions in the ML home, from the gold tables and their replicas."""

import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg

from assets.factory import spark_asset
from assets.partitions import Partitions, contiguous_ranges
from assets.spark_io import StepRange, run_steps, step_results
from data_quality.suites import Suites
from pipelines.lake import tables
from pipelines.spark import jobs as spark_jobs
from resources.lake import LakeResource
from resources.spark import SparkStepRunner


def build_features(
    parts: Partitions,
    suites: Suites,
    replica_keys: Sequence[dg.AssetKey],
    gold: dg.AssetKey | None = None,
) -> dg.AssetsDefinition:
    """The daily features asset, reading the ML home's gold (``gold``) and the given replicas."""
    suite = suites[tables.FEATURES.name]

    @spark_asset(
        tables.FEATURES,
        suite,
        parts.daily,
        group="features",
        # The ML home's own gold, and the replicas of every other region's gold.
        deps=[gold or dg.AssetKey(tables.GOLD.name), *replica_keys],
        metadata={"look_back_days": 28},
    )
    def demand_features(
        context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkStepRunner
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Calendar-day lags, rolling means and deviations, price, promotion, calendar; target."""
        cfg = lake.config()
        days = [dt.date.fromisoformat(k) for k in context.partition_keys]
        # region None: one step of every region's gold per range of consecutive days
        ranges = [StepRange(cfg.home, None, s, e) for s, e in contiguous_ranges(days)]
        written = run_steps(context, lake, spark, "features", ranges)
        inputs = [i.uri for i in spark_jobs.feature_inputs(cfg)]
        metadata = {
            "location": cfg.home.name,
            "delta_version": written.versions[cfg.home.name],
            "inputs": dg.MetadataValue.json(inputs),
        }
        yield from step_results(suite, written, metadata)

    return demand_features
