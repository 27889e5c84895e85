"""Silver: typed, de-duplicated, pseudonymized events per region, with Spark on Delta."""

from collections.abc import Iterator

import dagster as dg

from assets.factory import region_spark_asset
from assets.keys import Keys, rekeyed
from assets.partitions import Partitions, date_region_of
from assets.spark_io import RegionStep, run_region_steps, step_results
from data_quality.suites import Suites
from pipelines.lake import delta, tables
from resources.lake import LakeResource
from resources.pii import PiiKeyResource
from resources.spark import SparkStepRunner

# Reads raw bronze, writes pseudonymized silver: personal data on both sides.
SILVER = RegionStep("silver", tables.SILVER, reads=tables.BRONZE)


def build_silver(parts: Partitions, suites: Suites, keys: Keys) -> dg.AssetsDefinition:
    """The silver asset over (date, region), one Spark run per backfill."""
    suite = suites[tables.SILVER.name]

    @region_spark_asset(SILVER, parts, suite, keys)
    def silver_events(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        spark: SparkStepRunner,
        pii: PiiKeyResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Events by event date in their region's cloud: late kept, duplicates gone, PII hashed."""
        # The key is asked for only if the step runs here; a Databricks job reads its own.
        where, written = run_region_steps(context, lake, spark, SILVER, pii_key=pii.secret)
        # each written day grouped into files by a keyed customer bucket: an erasure then
        # rewrites only the files of its subjects' buckets (docs/privacy.md)
        clustered = cluster_written(lake, context.partition_keys)
        metadata = {
            **where,
            "delta_versions": dg.MetadataValue.json(written.versions),
            "late_events": written.count("is_late"),
            "clustered_files": clustered,
        }
        yield from rekeyed(step_results(suite, written, metadata), context.assets_def.keys)

    return silver_events


def cluster_written(lake: LakeResource, partition_keys: list[str]) -> int:
    """Cluster each (date, region) partition the run wrote; the files added."""
    cfg = lake.config()
    by_location: dict[str, list[dict[str, object]]] = {}
    for key in partition_keys:
        keys = date_region_of(key)
        name = lake.location_for_region(keys["region"]).name
        by_location.setdefault(name, []).append({"date": keys["date"], "region": keys["region"]})
    added = 0
    for name, parts in by_location.items():
        location = lake.location(name)
        got = delta.cluster_partitions(
            location.table_uri(tables.SILVER.name),
            lake.storage_options(location),
            parts,
            delta.silver_clustering(cfg.privacy),
        )
        added += got["files_added"]
    return added
