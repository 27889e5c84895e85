"""The Spark lakehouse jobs: silver and gold per (date, region), features per day."""

import dagster as dg

from assets.automation import SPARK_TAG
from pipelines.lake import tables

spark_job = dg.define_asset_job(
    "spark_job",
    selection=dg.AssetSelection.assets(tables.SILVER.name, tables.GOLD.name),
    tags={SPARK_TAG: "true"},  # at most one Spark-heavy run at a time (dagster.yaml)
    description="Silver and gold of a (date, region) range on Spark; one run for a backfill.",
)

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets(tables.FEATURES.name),
    tags={SPARK_TAG: "true"},
    description="Demand features of a day range in the ML home; one run for a backfill.",
)
