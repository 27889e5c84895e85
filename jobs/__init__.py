"""Jobs, schedules and sensors of the code location."""

from jobs.ingest import hourly_ingest_schedule, ingest_job, landed_objects_sensor
from jobs.ml import drift_retrain_sensor, retrain_job, weekly_retrain_schedule
from jobs.spark import features_job, spark_job
from jobs.sync import source_versions_sensor, sync_job

JOBS = [ingest_job, spark_job, sync_job, features_job, retrain_job]
SCHEDULES = [hourly_ingest_schedule, weekly_retrain_schedule]
SENSORS = [landed_objects_sensor, source_versions_sensor, drift_retrain_sensor]
