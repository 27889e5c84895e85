"""Jobs, schedules and sensors of the code location."""

from assets import ASSETS
from jobs.alerts import run_failure_sensor
from jobs.ingest import hourly_ingest_schedule, ingest_job, landed_objects_sensor
from jobs.schedules import build_schedules

# Daily and weekly schedules (and their jobs) exist for the groups present in ASSETS.
SCHEDULED = build_schedules(ASSETS)

JOBS = [ingest_job]  # the scheduled jobs come with their schedules
SCHEDULES = [hourly_ingest_schedule, *SCHEDULED]
SENSORS = [landed_objects_sensor, run_failure_sensor]
