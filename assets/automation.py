"""Declarative Automation of the internal chain: silver, gold, replicas, features, scoring.

Dagster writes every table of the chain itself, so it knows when an upstream partition has
changed; each downstream asset runs when its parents updated (``eager``), with a look-back of
a few days so late-arriving data (ingested into yesterday's landing partition) still flows
down. The UI explains each decision per asset (Automation tab). Sensors remain only where they
carry state Dagster does not have: landed objects, drift with a cooldown, run failures.
The model is retrained by the drift sensor and the weekly schedule, never eagerly.

With one code location per jurisdiction (``compute.pools: per_jurisdiction``), the assets that
process personal data (silver, gold: ``lakehouse/reads_personal_data``) get no condition:
Dagster gives an asset key's automation runs to one code location, which would send another
jurisdiction's partitions to the wrong workers. Each location's ``jurisdiction_chain_sensor``
(jobs/jurisdiction.py) runs them for its own jurisdiction's partitions instead.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from assets.sovereignty import reads_personal_data
from pipelines.lake import tables
from pipelines.lake.config import PER_JURISDICTION, SHARED_POOL

# Landing dates may receive events for a day or two (late delivery, the hourly re-ingest).
LOOK_BACK = dt.timedelta(days=2)
AUTOMATED_GROUPS = ("silver", "gold", "replication", "features")
# region_health: the chain sensor runs it per jurisdiction (its own condition otherwise)
AUTOMATED_KEYS = (tables.FORECAST.name, tables.DRIFT.name, tables.REGION_HEALTH.name)
# Runs of Spark-heavy assets carry this tag: the instance allows one such run at a time
# (deploy/dagster-*.yaml tag concurrency limits).
SPARK_TAG = "lakehouse/spark"


def chain_condition() -> dg.AutomationCondition:
    """Run when parents updated, for partitions in the last few days; never while running."""
    return dg.AutomationCondition.eager().replace(
        "in_latest_time_window", dg.AutomationCondition.in_latest_time_window(LOOK_BACK)
    )


def is_automated(spec: dg.AssetSpec) -> bool:
    """True when the asset belongs to the internal chain (its parents' updates run it)."""
    return spec.group_name in AUTOMATED_GROUPS or spec.key.path[-1] in AUTOMATED_KEYS


def with_automation(
    assets: Sequence[dg.AssetsDefinition], pools: str = SHARED_POOL
) -> list[dg.AssetsDefinition]:
    """The assets of the internal chain with :func:`chain_condition` applied.

    With ``pools="per_jurisdiction"`` the personal-data assets are left to the jurisdiction
    chain sensors.
    """

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        if not is_automated(spec) or spec.automation_condition is not None:
            return spec
        if pools == PER_JURISDICTION and reads_personal_data(spec.tags):
            return spec
        return spec.replace_attributes(automation_condition=chain_condition())

    return list(dg.map_asset_specs(apply, assets))
