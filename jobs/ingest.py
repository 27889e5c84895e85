"""Ingestion job, the landed-objects sensor and the hourly schedule."""

import datetime as dt
import json

import dagster as dg

from assets.bronze import bronze
from assets.partitions import date_region, date_region_key
from pipelines import capture
from resources.lake import LakeResource

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(bronze),
    partitions_def=date_region,
    description="Ingest landed capture objects of one (date, region) into bronze Delta.",
)


@dg.sensor(
    job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING
)
def landed_objects_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource
) -> dg.SensorResult:
    """Requests ingestion of every (date, region) whose landing area got new objects."""
    cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    latest: dict[tuple[str, str], str] = {}
    valid_dates = set(date_region.get_partitions_def_for_dimension("date").get_partition_keys())
    for location in lake.config().locations.values():
        storage = lake.storage(location)
        for root in capture.stream_roots(location.landing):
            seen = cursor.get(f"{location.name}:{root}")
            newest = seen
            for info in storage.list(root + "/", offset=seen):
                day = capture.landing_date_of(location.landing, info.path).isoformat()
                if day in valid_dates:
                    key = (day, location.region)
                    latest[key] = max(latest.get(key, ""), info.path)
                newest = info.path if newest is None or info.path > newest else newest
            if newest:
                cursor[f"{location.name}:{root}"] = newest
    requests = [
        dg.RunRequest(run_key=f"{day}|{region}|{last}", partition_key=date_region_key(day, region))
        for (day, region), last in sorted(latest.items())
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))


@dg.schedule(cron_schedule="5 * * * *", job=ingest_job, execution_timezone="UTC")
def hourly_ingest_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Every hour, re-ingests the current day in every region (idempotent partition replace)."""
    scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    day = scheduled.astimezone(dt.UTC).date().isoformat()
    regions = date_region.get_partitions_def_for_dimension("region").get_partition_keys()
    return [
        dg.RunRequest(
            run_key=f"{day}|{region}|{scheduled.isoformat()}",
            partition_key=date_region_key(day, region),
        )
        for region in regions
    ]
