"""The erasure job, the sensor that serves pending requests, and the deadline check's schedule.

``erasure_request_sensor`` looks at each location's ``erasure_requests`` (request ids and times,
no identifier) and asks for a run of ``erasure_receipts``' partition of every location holding a
pending request, tagged with its jurisdiction (``compute.routing_tag``) so that it runs on that
jurisdiction's workers. ``erasure_deadline_schedule`` runs the deadline check daily on its own:
a request nobody serves (the sensor stopped, every run failing) still fails it.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.erasure import DEADLINE_CHECK, ERASURE, erasure_partitions, served_locations
from assets.keys import UNPREFIXED, Keys
from pipelines.erasure import requests
from pipelines.lake.config import LakeConfig
from resources.lake import LakeResource

SENSOR_SECONDS = 300
DEADLINE_CRON = "30 6 * * *"


@dataclass(frozen=True)
class Erasure:
    """The erasure job and sensor, and the deadline check's job and schedule."""

    job: Any  # what define_asset_job returns (its class is not exported)
    sensor: dg.SensorDefinition
    deadline_job: Any
    deadline_schedule: dg.ScheduleDefinition


def build_erasure_automation(cfg: LakeConfig, keys: Keys = UNPREFIXED) -> Erasure:
    """The job, sensor and schedule of the erasure path of ``keys``' code location.

    With one location per jurisdiction each serves its own jurisdiction's locations only: its
    sensor never reads another jurisdiction's requests.
    """
    key = keys.of(ERASURE)
    served = served_locations(cfg, keys)
    job = dg.define_asset_job(
        "erasure_job",
        selection=dg.AssetSelection.assets(key),
        partitions_def=erasure_partitions(cfg, keys),
        description="Serve a location's pending erasure requests (docs/privacy.md).",
    )
    routing = cfg.compute.routing_tag

    @dg.sensor(
        job=job,
        minimum_interval_seconds=SENSOR_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def erasure_request_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> Any:
        """Requests a run per location holding pending erasure requests, on its jurisdiction."""
        runs = []
        for loc in (lake.location(name) for name in served):
            ids = sorted(i for i, _ in requests.waiting(loc, lake.storage_options(loc)))
            if not ids:
                continue
            digest = hashlib.sha256("|".join(ids).encode()).hexdigest()[:16]
            context.log.info(f"{len(ids)} erasure request(s) pending at {loc.name}")
            runs.append(
                dg.RunRequest(
                    run_key=f"erasure:{loc.name}:{digest}",
                    partition_key=loc.name,
                    tags={routing: loc.jurisdiction},
                )
            )
        return runs or dg.SkipReason("no erasure request is pending")

    deadline_job = dg.define_asset_job(
        "erasure_deadline_job",
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(key, DEADLINE_CHECK)),
        description="Is any erasure request past privacy.erasure_deadline_days?",
    )
    schedule = dg.ScheduleDefinition(
        name="erasure_deadline_schedule",
        job=deadline_job,
        cron_schedule=DEADLINE_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily: fails while an erasure request waits past its deadline.",
    )
    return Erasure(job, erasure_request_sensor, deadline_job, schedule)
