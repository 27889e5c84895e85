"""The code location: the one ``Definitions`` object, for the environment in LAKEHOUSE_ENV.

Importing this module builds no client, starts no JVM and reads no secret: resources are
configured here and constructed by Dagster when a run or sensor needs them.
"""

from __future__ import annotations

import dagster as dg

from assets import ASSETS
from jobs import JOBS, SCHEDULES, SENSORS
from pipelines.config import current_environment
from resources import resources_for


def build_definitions(environment: str | None = None) -> dg.Definitions:
    """All assets, checks, jobs, schedules and sensors with one environment's resources."""
    return dg.Definitions(
        assets=ASSETS,
        jobs=JOBS,
        schedules=SCHEDULES,
        sensors=SENSORS,
        resources=resources_for(environment or current_environment()),
    )


defs = build_definitions()
