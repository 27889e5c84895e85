"""Declarative Automation of the internal chain: silver, gold, replicas, features, scoring.

Dagster writes every table of the chain itself, so it knows when an upstream partition has
changed; each downstream asset runs when its parents updated (``eager``), with a look-back of
a few days so late-arriving data (ingested into yesterday's landing partition) still flows
down. The UI explains each decision per asset (Automation tab). Sensors remain only where they
carry state Dagster does not have: landed objects, drift with a cooldown, run failures.
The model is retrained by the drift sensor and the weekly schedule, never eagerly.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

# Landing dates may receive events for a day or two (late delivery, the hourly re-ingest).
LOOK_BACK = dt.timedelta(days=2)
AUTOMATED_GROUPS = ("silver", "gold", "replication", "features")
AUTOMATED_KEYS = ("demand_forecast", "feature_drift")
# Runs of Spark-heavy assets carry this tag: the instance allows one such run at a time
# (deploy/dagster-*.yaml tag concurrency limits).
SPARK_TAG = "lakehouse/spark"


def chain_condition() -> dg.AutomationCondition:
    """Run when parents updated, for partitions in the last few days; never while running."""
    return dg.AutomationCondition.eager().replace(
        "in_latest_time_window", dg.AutomationCondition.in_latest_time_window(LOOK_BACK)
    )


def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
    automated = spec.group_name in AUTOMATED_GROUPS or spec.key.to_user_string() in AUTOMATED_KEYS
    if not automated or spec.automation_condition is not None:
        return spec
    return spec.replace_attributes(automation_condition=chain_condition())


def with_automation(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets of the internal chain with :func:`chain_condition` applied."""
    return list(dg.map_asset_specs(_apply, assets))
