"""The Spark lakehouse jobs: silver and gold per (date, region), features per day."""

from typing import Any

import dagster as dg

from assets.automation import SPARK_TAG
from assets.keys import UNPREFIXED, Keys
from pipelines.lake import tables


def build_spark_job(keys: Keys = UNPREFIXED) -> Any:
    """Silver and gold of the location's regions (``keys``: their keys, assets/keys.py)."""
    return dg.define_asset_job(
        "spark_job",
        selection=dg.AssetSelection.assets(keys.of(tables.SILVER.name), keys.of(tables.GOLD.name)),
        tags={SPARK_TAG: "true"},  # at most one Spark-heavy run at a time (dagster.yaml)
        description="Silver and gold of a (date, region) range on Spark; one run for a backfill.",
    )


features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets(tables.FEATURES.name),
    tags={SPARK_TAG: "true"},
    description="Demand features of a day range in the ML home; one run for a backfill.",
)
