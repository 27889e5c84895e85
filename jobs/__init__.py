"""Jobs, schedules and sensors of the code location."""

from jobs.ingest import hourly_ingest_schedule, ingest_job, landed_objects_sensor
from jobs.sync import source_versions_sensor, sync_job

JOBS = [ingest_job, sync_job]
SCHEDULES = [hourly_ingest_schedule]
SENSORS = [landed_objects_sensor, source_versions_sensor]
