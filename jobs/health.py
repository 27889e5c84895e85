"""Operators' jobs: the health view on demand, and the per-region freshness checks hourly."""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.freshness import region_check_name
from assets.health import HEALTH
from pipelines.lake import tables
from pipelines.lake.config import LakeConfig

FRESHNESS_CRON = "20 * * * *"  # hourly, after the hourly ingest's usual runs

health_job = dg.define_asset_job(
    "health_job",
    selection=dg.AssetSelection.assets(HEALTH),
    description="Measure every region's health and cost, judge anomalies, write lakehouse_health.",
)


@dataclass(frozen=True)
class FreshnessChecks:
    """The job running every region's freshness check, and its hourly schedule."""

    job: Any  # what define_asset_job returns (its class is not exported)
    schedule: dg.ScheduleDefinition


def build_freshness_checks(cfg: LakeConfig) -> FreshnessChecks:
    """Each region's own freshness check on bronze, run hourly (failures alert)."""
    keys = [
        dg.AssetCheckKey(dg.AssetKey(tables.BRONZE.name), region_check_name(r))
        for r in cfg.region_codes
    ]
    job = dg.define_asset_job(
        "freshness_checks_job",
        selection=dg.AssetSelection.checks(*keys),
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
