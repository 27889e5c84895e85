"""The code location: one ``Definitions`` for one environment, built lazily.

:func:`build_definitions` loads the environment's configuration once and passes it down to
every factory (partitions, suites, assets, jobs, resources), so two environments can be built
side by side in one process. ``defs`` is Dagster's lazy entry point (``@dg.definitions``):
importing this module reads no file, no environment variable and no secret, and starts no JVM.
"""

from __future__ import annotations

import dagster as dg

from assets import build_assets
from assets.partitions import build_partitions
from data_quality.suites import build_suites
from jobs import build_automation
from lakehouse.quiet import quiet_libraries
from pipelines.lake.config import load_config
from resources import resources_for


def build_definitions(environment: str | None = None) -> dg.Definitions:
    """All assets, checks, jobs, schedules and sensors of one environment, with its resources.

    ``environment`` defaults to ``LAKEHOUSE_ENV`` (else ``local``), read now, not at import.
    """
    quiet_libraries()  # before the factories: they use the Dagster APIs it names
    cfg = load_config(environment)
    parts = build_partitions(cfg)
    suites = build_suites(cfg)
    assets = build_assets(cfg, parts, suites)
    automation = build_automation(cfg, parts, assets)
    return dg.Definitions(
        assets=assets,
        jobs=automation.jobs,
        schedules=automation.schedules,
        sensors=automation.sensors,
        resources=resources_for(cfg.environment, cfg.spark_backend),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location Dagster loads (workspace.yaml): the environment in LAKEHOUSE_ENV."""
    return build_definitions()
