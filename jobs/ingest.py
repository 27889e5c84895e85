"""Ingestion: the job, the landed-objects sensor and the hourly schedule of one environment.

Both request only partitions whose location's jurisdiction this worker may process
(``LAKEHOUSE_COMPUTE_JURISDICTION``, read at each evaluation), and tag each run with it
(``compute.routing_tag``): with one code location per jurisdiction, each location ingests its
own jurisdiction's data on its own workers.
"""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.freshness import region_check_name
from assets.keys import UNPREFIXED, Keys
from assets.partitions import Partitions, date_region_key
from pipelines.ingest import capture
from pipelines.ingest.closed_day import backlog
from pipelines.ingest.landing import list_after
from pipelines.lake import tables
from pipelines.lake.config import LakeConfig, LakeLocation
from pipelines.lake.config.environment import env
from pipelines.sovereignty import compute
from resources.lake import LakeResource

# How often the landed-objects sensor lists the landing areas: an object waits at most about
# this long (plus a run's start) before its run is requested.
SENSOR_SECONDS_ENV = "LAKEHOUSE_INGEST_SENSOR_SECONDS"
DEFAULT_SENSOR_SECONDS = 30
INGEST_PARTITION_TAG = "lakehouse/ingest_partition"
# A deployment whose ingest workers (`lakehouse ingest --follow`) follow every location sets
# this to "stopped": the sensor then starts stopped (the UI can still start it for catch-up),
# and the workers and the sensor's runs never ingest an object twice anyway (the ledger).
SENSOR_STATUS_ENV = "LAKEHOUSE_INGEST_SENSOR"
# What dg.define_asset_job returns; its class is not part of Dagster's public API.
AssetJob = Any


@dataclass(frozen=True)
class Ingest:
    """The ingestion job with the sensor and schedule that request it."""

    job: AssetJob
    sensor: dg.SensorDefinition
    schedule: dg.ScheduleDefinition


def build_ingest(cfg: LakeConfig, parts: Partitions, keys: Keys = UNPREFIXED) -> Ingest:
    """The ingestion job, sensor and schedule over the location's (date, region).

    ``keys``: the location's keys of bronze and the quarantine (assets/keys.py).
    """
    bronze = keys.of(tables.BRONZE.name)
    job = dg.define_asset_job(
        "ingest_job",
        # the regions' freshness checks judge the clock, not the rows: their own job runs them
        selection=dg.AssetSelection.assets(bronze, keys.of(tables.QUARANTINE.name))
        - dg.AssetSelection.checks(
            *(
                dg.AssetCheckKey(bronze, region_check_name(r))
                for r in parts.regions.get_partition_keys()
            )
        ),
        # no partitions_def: Dagster infers (date, region) from bronze (the parameter is deprecated)
        description="Ingest landed capture objects of one (date, region) into bronze Delta.",
    )
    return Ingest(job, landed_objects_sensor(job, parts), hourly_ingest_schedule(job, cfg, parts))


def served_locations(cfg: LakeConfig, log: Any = None) -> list[LakeLocation]:
    """The locations whose personal data this worker may ingest; the others logged as skipped."""
    worker = compute.worker_jurisdictions(cfg)
    served = [loc for loc in cfg.locations.values() if worker.serves(loc.jurisdiction)]
    skipped = [
        f"{loc.name} ({loc.jurisdiction})" for loc in cfg.locations.values() if loc not in served
    ]
    if log is not None and (skipped or worker.notice):
        log.info(
            worker.notice
            or f"worker {worker.describe()}: skipping {', '.join(skipped)}; the code location of "
            "their jurisdiction ingests them"
        )
    return served


def _tags(cfg: LakeConfig, location: LakeLocation, partition: str) -> dict[str, str]:
    # one queued ingest run per partition at a time (deploy/dagster-*.yaml limits this tag
    # per value): a second would redo the same objects and lose its claim
    return {cfg.compute.routing_tag: location.jurisdiction, INGEST_PARTITION_TAG: partition}


def landed_objects_sensor(job: AssetJob, parts: Partitions) -> dg.SensorDefinition:
    """The sensor that requests ingestion of (date, region) partitions with new objects."""
    # read when the definitions are built, never at import
    seconds = env(SENSOR_SECONDS_ENV)
    every = int(str(DEFAULT_SENSOR_SECONDS) if seconds is None else seconds)
    stopped = (env(SENSOR_STATUS_ENV) or "running").strip().lower() == "stopped"
    status = dg.DefaultSensorStatus.STOPPED if stopped else dg.DefaultSensorStatus.RUNNING

    @dg.sensor(job=job, minimum_interval_seconds=every, default_status=status)
    def landed_objects_sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource
    ) -> dg.SensorResult:
        """Requests ingestion of every (date, region) whose landing area got new objects."""
        mine = set(parts.regions.get_partition_keys())  # the location's regions
        served = [loc for loc in served_locations(lake.config(), context.log) if loc.region in mine]
        found = _landed(context.cursor, lake, set(parts.daily.get_partition_keys()), served)
        waiting = _waiting_partitions(context, job.name)
        requests = [
            r for r in found.run_requests or [] if r.tags[INGEST_PARTITION_TAG] not in waiting
        ]
        if context.cursor is None:
            requests = _with_backlog(context, lake, requests)
        held = sorted({r.tags[INGEST_PARTITION_TAG] for r in found.run_requests or []} & waiting)
        if held:
            context.log.info(
                f"{len(held)} partition(s) with new objects already have a run waiting to start, "
                f"which ingests them: {', '.join(held[:10])}"
            )
        return dg.SensorResult(run_requests=requests, cursor=found.cursor)

    return landed_objects_sensor


# Runs that have not listed their landing area yet: they will ingest whatever is new by then.
NOT_YET_STARTED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
]


def _with_backlog(
    context: dg.SensorEvaluationContext, lake: LakeResource, requests: list[dg.RunRequest]
) -> list[dg.RunRequest]:
    """On a first evaluation (no cursor), only the partitions with objects not ingested yet.

    A first listing finds every object ever landed: over a lake that workers (or ``make run``)
    ingested without runs, that is a run per partition with nothing to do. One listing of the
    date and a narrow ledger read per partition, once; later evaluations list only new objects.
    """
    cfg = lake.config()
    out = []
    for r in requests:
        day, region = r.tags[INGEST_PARTITION_TAG].split("|")
        loc = cfg.location_for_region(region)
        if backlog(loc, lake.storage_options(loc), dt.date.fromisoformat(day)) is not None:
            out.append(r)
    if len(out) < len(requests):
        context.log.info(
            f"first listing: {len(requests) - len(out)} partition(s) with every object in the "
            "ledger already (ingested by a worker or without this sensor): no run for them"
        )
    return out


def _waiting_partitions(context: dg.SensorEvaluationContext, job_name: str) -> set[str]:
    """The ``date|region`` of this job's runs that have not started yet.

    A second request for such a partition would only queue a run with nothing left to do once
    the first has run (each run ingests every object not in the ledger when it starts); under a
    steady stream they pile up and each costs a process start. The hourly schedule is the
    safety net for a waiting run that is then cancelled.
    """
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, statuses=NOT_YET_STARTED)
    )
    return {r.tags[INGEST_PARTITION_TAG] for r in runs if INGEST_PARTITION_TAG in r.tags}


def _landed(
    cursor_text: str | None,
    lake: LakeResource,
    valid_dates: set[str],
    locations: list[LakeLocation],
) -> dg.SensorResult:
    cursor: dict[str, str] = json.loads(cursor_text) if cursor_text else {}
    latest: dict[tuple[str, str], str] = {}
    for location in locations:
        storage = lake.storage(location)
        for root in capture.discover_stream_roots(location.landing, storage)[0]:
            seen = cursor.get(f"{location.name}:{root}")
            newest = seen
            for info in list_after(storage, root + "/", seen):
                day = capture.landing_date_of(location.landing, info.path).isoformat()
                if day in valid_dates:
                    key = (day, location.region)
                    latest[key] = max(latest.get(key, ""), info.path)
                newest = info.path if newest is None or info.path > newest else newest
            if newest:
                cursor[f"{location.name}:{root}"] = newest
    cfg = lake.config()
    requests = [
        dg.RunRequest(
            run_key=f"{day}|{region}|{last}",
            partition_key=date_region_key(day, region),
            tags=_tags(cfg, cfg.location_for_region(region), f"{day}|{region}"),
        )
        for (day, region), last in sorted(latest.items())
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))


def hourly_ingest_schedule(
    job: AssetJob, cfg: LakeConfig, parts: Partitions
) -> dg.ScheduleDefinition:
    """The hourly safety net: runs only partitions with objects the sensor missed."""

    @dg.schedule(cron_schedule="5 * * * *", job=job, execution_timezone="UTC")
    def hourly_ingest_schedule(
        context: dg.ScheduleEvaluationContext, lake: LakeResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        """Each hour, ingests today and yesterday where objects are not in the ledger yet."""
        scheduled = (context.scheduled_execution_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        served = {loc.region: loc for loc in served_locations(cfg, context.log)}
        valid = set(parts.daily.get_partition_keys())
        requests = []
        for day in (scheduled.date() - dt.timedelta(days=1), scheduled.date()):
            for region in parts.regions.get_partition_keys():
                loc = served.get(region)
                if loc is None or day.isoformat() not in valid:
                    continue
                why = backlog(loc, lake.storage_options(loc), day, scheduled)
                if why is None:
                    continue
                context.log.info(f"{day} {region}: {why}")
                requests.append(
                    dg.RunRequest(
                        run_key=f"{day}|{region}|{scheduled.isoformat()}",
                        partition_key=date_region_key(day.isoformat(), region),
                        tags=_tags(cfg, loc, f"{day}|{region}"),
                    )
                )
        return requests or dg.SkipReason("every landed object of today and yesterday is ingested")

    return hourly_ingest_schedule
