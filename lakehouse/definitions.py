"""The code location: one ``Definitions`` for one environment, built lazily.

:func:`build_definitions` loads the environment's configuration once and passes it down to
every factory (partitions, suites, assets, jobs, resources), so two environments can be built
side by side in one process. ``defs`` is Dagster's lazy entry point (``@dg.definitions``):
importing this module reads no file, no environment variable and no secret, and starts no JVM.

With one code location per jurisdiction (``compute.pools: per_jurisdiction``), each location
defines only its share (jobs/jurisdiction.py): its own jurisdiction's region assets, keyed by
it (``eu/bronze_events``: assets/keys.py) and partitioned by its regions, and, in the ML home's,
the rest; so no asset key has two materializable definitions in the workspace. The jobs,
schedules and sensors are those whose targets the location defines.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dagster as dg

from assets import build_assets
from assets.keys import location_keys
from assets.partitions import build_partitions
from data_quality.suites import build_suites
from jobs import Automation, build_automation
from jobs.jurisdiction import location_assets
from lakehouse.quiet import quiet_libraries
from pipelines.lake.config import load_config
from resources import resources_for

log = logging.getLogger(__name__)


def build_definitions(environment: str | None = None) -> dg.Definitions:
    """All assets, checks, jobs, schedules and sensors of one environment, with its resources.

    ``environment`` defaults to ``LAKEHOUSE_ENV`` (else ``local``), read now, not at import.
    """
    quiet_libraries()  # before the factories: they use the Dagster APIs it names
    cfg = load_config(environment)
    keys = location_keys(cfg)
    parts = build_partitions(cfg, keys.regions)
    suites = build_suites(cfg)
    every = build_assets(cfg, parts, suites, keys)
    automation = build_automation(cfg, parts, every, keys)
    assets, refused = location_assets(cfg, every)
    for why in refused:
        log.warning(f"left out of this code location: {why}")
    resources = resources_for(cfg.environment, cfg.spark_backend)
    if len(assets) < len(every):
        automation = _targeting(automation, every, assets, resources)
    return dg.Definitions(
        assets=assets,
        jobs=automation.jobs,
        schedules=automation.schedules,
        sensors=automation.sensors,
        resources=resources,
    )


def _selection(target: object) -> dg.AssetSelection | None:
    """The asset selection of an asset job or an automation-condition sensor (None: op job)."""
    selection = getattr(target, "selection", None)
    if selection is None:
        selection = getattr(target, "asset_selection", None)
    return selection if isinstance(selection, dg.AssetSelection) else None


def _targeting(
    automation: Automation,
    every: Sequence[dg.AssetsDefinition],
    kept: Sequence[dg.AssetsDefinition],
    resources: dict[str, Any],
) -> Automation:
    """The jobs, schedules and sensors whose targets are all among the ``kept`` assets."""
    full = dg.Definitions(assets=every, resources=resources).resolve_asset_graph()
    share = dg.Definitions(assets=kept, resources=resources).resolve_asset_graph()

    def within(selection: dg.AssetSelection | None) -> bool:
        if selection is None:
            return True  # an op job (upkeep): it checks each location itself
        try:
            here = (selection.resolve(share), selection.resolve_checks(share))
        except dg.DagsterError:
            return False  # it names an asset this location does not define
        wanted = (selection.resolve(full), selection.resolve_checks(full))
        return here == wanted and any(wanted)

    jobs = [j for j in automation.jobs if within(_selection(j))]
    names = {j.name for j in jobs}
    schedules = [s for s in automation.schedules if s.job_name in names]
    sensors: list[dg.SensorDefinition] = []
    for sensor in automation.sensors:
        if isinstance(sensor, dg.AutomationConditionSensorDefinition):
            keys = sensor.asset_selection.resolve(share)
            if any(share.get(k).automation_condition is not None for k in keys):
                sensors.append(sensor)
        elif all(within(_selection(t.job_def)) for t in sensor.targets):
            sensors.append(sensor)
    return Automation(jobs=jobs, schedules=schedules, sensors=sensors)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location Dagster loads (workspace.yaml): the environment in LAKEHOUSE_ENV."""
    return build_definitions()
