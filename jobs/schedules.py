"""Daily and weekly schedules over the asset groups, built only from the groups that exist.

Each schedule names groups (or asset keys) of the whole product; ``build_schedules`` keeps the
ones present in the assets it is given, so the definitions load before and after every group is
merged. Assets with different partitioning cannot share a job, so a selection spanning several
partitionings gets one job and one schedule per partitioning (suffixed ``_2``, ``_3``...).
Partitioned jobs run yesterday's partitions (every region); unpartitioned ones run whole.
"""

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from jobs.partition_keys import keys_between

AssetsLike = dg.AssetsDefinition | dg.AssetSpec


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule of the product: which groups or assets, when, and why."""

    name: str
    cron: str
    description: str
    groups: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)


SCHEDULE_SPECS: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(
        name="daily_lakehouse_schedule",
        cron="30 1 * * *",
        description="Every day at 01:30 UTC, builds yesterday's silver and gold in every region "
        "(source_versions_sensor then syncs the new gold versions to the ML home).",
        groups=("silver", "gold"),
        tags={"lakehouse/spark": "true"},
    ),
    ScheduleSpec(
        name="daily_features_schedule",
        cron="30 2 * * *",
        description="Every day at 02:30 UTC, builds yesterday's demand features from the gold "
        "tables and their replicas.",
        groups=("features",),
        tags={"lakehouse/spark": "true"},
    ),
    ScheduleSpec(
        name="daily_scoring_schedule",
        cron="30 3 * * *",
        description="Every day at 03:30 UTC, scores yesterday's demand forecast and measures "
        "feature drift.",
        keys=("demand_forecast", "feature_drift"),
    ),
)
# Weekly retraining is jobs/ml.py's weekly_retrain_schedule (it tags the trigger for MLflow);
# syncing is driven by source_versions_sensor, not a clock.


def _selected(spec: ScheduleSpec, assets: Sequence[AssetsLike]) -> list[AssetsLike]:
    """The assets definitions holding a key of the spec's groups or keys, in the given order."""
    # AssetSpecs alone are external (not materializable), so there is nothing to schedule
    return [item for item in assets if isinstance(item, dg.AssetsDefinition) and _keys(spec, item)]


def _keys(spec: ScheduleSpec, item: dg.AssetsDefinition) -> list[dg.AssetKey]:
    return [
        s.key
        for s in item.specs
        if s.group_name in spec.groups or s.key.to_user_string() in spec.keys
    ]


def _schedule(
    name: str,
    spec: ScheduleSpec,
    job: UnresolvedAssetJobDefinition,
    partitions_def: dg.PartitionsDefinition | None,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        cron_schedule=spec.cron,
        job=job,
        execution_timezone="UTC",
        description=spec.description,
    )
    def _evaluate(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        tick = scheduled.isoformat()
        if partitions_def is None:
            return [dg.RunRequest(run_key=tick)]
        # the day that just closed: daily partitions here include today (end_offset=1)
        day = scheduled.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        return [
            dg.RunRequest(run_key=f"{key}|{tick}", partition_key=key)
            for key in keys_between(partitions_def, day, day)
        ]

    return _evaluate


def build_schedules(assets: Iterable[AssetsLike]) -> list[dg.ScheduleDefinition]:
    """The schedules of SCHEDULE_SPECS whose groups or keys exist among ``assets``."""
    assets = list(assets)
    schedules: list[dg.ScheduleDefinition] = []
    for spec in SCHEDULE_SPECS:
        families: list[tuple[dg.PartitionsDefinition | None, list[dg.AssetKey]]] = []
        for item in _selected(spec, assets):
            assert isinstance(item, dg.AssetsDefinition)
            for fam_def, fam_keys in families:
                if fam_def == item.partitions_def:
                    fam_keys.extend(_keys(spec, item))
                    break
            else:
                families.append((item.partitions_def, _keys(spec, item)))
        base = spec.name.removesuffix("_schedule")
        for i, (partitions_def, keys) in enumerate(families, start=1):
            suffix = "" if i == 1 else f"_{i}"
            job = dg.define_asset_job(
                f"{base}{suffix}_job",
                selection=dg.AssetSelection.assets(*keys),
                partitions_def=partitions_def,
                description=spec.description,
                tags={"lakehouse/schedule": spec.name, **spec.tags},
            )
            schedules.append(_schedule(f"{spec.name}{suffix}", spec, job, partitions_def))
    return schedules
