"""The replication job: bring every replica up to its source's latest version, and check it.

Replicas are synced by Declarative Automation when their source's gold updates (see
assets/automation.py); this job is for operators (launchpad, CLI) and the demo. Each run
verifies what it copied; the full source-vs-replica comparison runs weekly in its own job
(docs/sync.md).
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.replicas import FULL_CHECK_CRON, full_check_name
from pipelines.lake.config import LakeConfig

sync_job = dg.define_asset_job(
    "sync_job",
    selection=dg.AssetSelection.groups("replication"),
    description="Bring replicas up to their sources' latest versions and check them.",
)


@dataclass(frozen=True)
class FullCheck:
    """The job running every replica's full comparison, and its weekly schedule."""

    job: Any  # what define_asset_job returns (its class is not exported)
    schedule: dg.ScheduleDefinition


def build_full_check(cfg: LakeConfig) -> FullCheck:
    """Every replica's full comparison with its source, weekly (a failure alerts)."""
    keys = [dg.AssetCheckKey(dg.AssetKey(r.name), full_check_name(r.name)) for r in cfg.replicas()]
    job = dg.define_asset_job(
        "replica_full_check_job",
        selection=dg.AssetSelection.checks(*keys),
        description="Compare every replica with its source in full, partition by partition.",
    )
    schedule = dg.ScheduleDefinition(
        name="replica_full_check_schedule",
        job=job,
        cron_schedule=FULL_CHECK_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Weekly: every replica compared in full with its source.",
    )
    return FullCheck(job, schedule)
