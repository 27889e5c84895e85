"""Jobs, schedules and sensors of one environment, built by :func:`build_automation`."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from assets.erasure import ERASURE
from assets.keys import UNPREFIXED, Keys
from assets.partitions import Partitions
from jobs.alerts import check_failure_sensor, run_failure_sensor
from jobs.automation import automation_sensors
from jobs.erasure import build_erasure_automation
from jobs.health import build_freshness_checks, build_region_health_job, health_job
from jobs.ingest import build_ingest
from jobs.jurisdiction import jurisdiction_chain_sensor
from jobs.maintenance import build_maintenance
from jobs.ml import (
    build_drift_retrain_sensor,
    build_erased_model_retrain_sensor,
    retrain_job,
    weekly_retrain_schedule,
)
from jobs.spark import build_spark_job, features_job
from jobs.sync import build_full_check, sync_job
from pipelines.lake.config import LakeConfig


@dataclass(frozen=True)
class Automation:
    """What runs the assets: jobs, schedules and sensors."""

    jobs: list[Any] = field(default_factory=list)
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)
    sensors: list[dg.SensorDefinition] = field(default_factory=list)


def build_automation(
    cfg: LakeConfig,
    parts: Partitions,
    assets: Sequence[dg.AssetsDefinition] = (),
    keys: Keys = UNPREFIXED,
) -> Automation:
    """The environment's jobs, schedules (ingest, retraining, upkeep, full replica checks), sensors.

    ``assets`` are the environment's assets: with one code location per jurisdiction, the
    personal-data assets of the automated chain get a sensor that routes them
    (jobs/jurisdiction.py); ``keys`` are the location's keys of the region tables.
    """
    ingest = build_ingest(cfg, parts, keys)
    chain = jurisdiction_chain_sensor(cfg, parts, assets)
    upkeep_job, upkeep_schedule, sweep_schedule = build_maintenance(cfg)
    freshness = build_freshness_checks(cfg, keys)
    full_check = build_full_check(cfg)
    erasure = build_erasure_automation(cfg, keys)
    return Automation(
        jobs=[
            ingest.job,
            build_spark_job(keys),
            sync_job,
            features_job,
            retrain_job,
            upkeep_job,
            health_job,
            build_region_health_job(keys),
            freshness.job,
            full_check.job,
            erasure.job,
            erasure.deadline_job,
        ],
        schedules=[
            ingest.schedule,
            weekly_retrain_schedule,
            upkeep_schedule,
            sweep_schedule,
            freshness.schedule,
            full_check.schedule,
            erasure.deadline_schedule,
        ],
        sensors=[
            ingest.sensor,
            build_drift_retrain_sensor(cfg.ml.retrain.cooldown_hours),
            build_erased_model_retrain_sensor(keys.every(cfg, ERASURE)),
            run_failure_sensor,
            check_failure_sensor,
            *automation_sensors(cfg),
            erasure.sensor,
            *([chain] if chain else []),
        ],
    )
