"""The Spark lakehouse jobs: silver and gold per (date, region), features per day."""

import dagster as dg

from assets.partitions import date_region

spark_job = dg.define_asset_job(
    "spark_job",
    selection=dg.AssetSelection.assets("silver_events", "gold_daily_demand"),
    partitions_def=date_region,
    tags={"lakehouse/spark": "true"},  # at most one Spark-heavy run at a time (dagster.yaml)
    description="Silver and gold of a (date, region) range on Spark; one run for a backfill.",
)

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets("demand_features"),
    tags={"lakehouse/spark": "true"},
    description="Demand features of a day range in the ML home; one run for a backfill.",
)
