"""Operators' jobs: the health view on demand, and the per-region freshness checks hourly."""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.freshness import region_check_name
from assets.health import HEALTH, REGION_HEALTH
from assets.keys import UNPREFIXED, Keys
from pipelines.lake import tables
from pipelines.lake.config import LakeConfig

FRESHNESS_CRON = "20 * * * *"  # hourly, after the hourly ingest's usual runs

health_job = dg.define_asset_job(
    "health_job",
    selection=dg.AssetSelection.assets(HEALTH),
    description="Roll every region's health up in the ML home, judge anomalies, write "
    "lakehouse_health.",
)


def build_region_health_job(keys: Keys = UNPREFIXED) -> Any:
    """The job measuring the location's regions' health (region_health) over a range of days."""
    return dg.define_asset_job(
        "region_health_job",
        selection=dg.AssetSelection.assets(keys.of(REGION_HEALTH)),
        description="Measure each region's health and cost in its own pool (region_health).",
    )


@dataclass(frozen=True)
class FreshnessChecks:
    """The job running every region's freshness check, and its hourly schedule."""

    job: Any  # what define_asset_job returns (its class is not exported)
    schedule: dg.ScheduleDefinition


def build_freshness_checks(cfg: LakeConfig, keys: Keys = UNPREFIXED) -> FreshnessChecks:
    """Each region's own freshness check on bronze, run hourly (failures alert)."""
    checks = [
        dg.AssetCheckKey(keys.of(tables.BRONZE.name), region_check_name(r))
        for r in keys.regions or cfg.region_codes
    ]
    job = dg.define_asset_job(
        "freshness_checks_job",
        selection=dg.AssetSelection.checks(*checks),
        description="Each region's own freshness check on bronze (a late region fails alone).",
    )
    schedule = dg.ScheduleDefinition(
        name="freshness_checks_schedule",
        job=job,
        cron_schedule=FRESHNESS_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Hourly: is each region's newest partition in?",
    )
    return FreshnessChecks(job, schedule)
