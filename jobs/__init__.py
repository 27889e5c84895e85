"""Jobs, schedules and sensors of the code location."""

from assets import ASSETS
from jobs.alerts import run_failure_sensor
from jobs.ingest import hourly_ingest_schedule, ingest_job, landed_objects_sensor
from jobs.ml import drift_retrain_sensor, retrain_job, weekly_retrain_schedule
from jobs.schedules import build_schedules
from jobs.spark import features_job, spark_job
from jobs.sync import source_versions_sensor, sync_job

# Daily schedules (and their jobs) exist for the groups present in ASSETS.
SCHEDULED = build_schedules(ASSETS)

JOBS = [ingest_job, spark_job, sync_job, features_job, retrain_job]
SCHEDULES = [hourly_ingest_schedule, *SCHEDULED, weekly_retrain_schedule]
SENSORS = [landed_objects_sensor, source_versions_sensor, drift_retrain_sensor, run_failure_sensor]
