"""Jobs, schedules and sensors of the code location."""

from jobs.ingest import hourly_ingest_schedule, ingest_job, landed_objects_sensor
from jobs.spark import features_job, spark_job

JOBS = [ingest_job, spark_job, features_job]
SCHEDULES = [hourly_ingest_schedule]
SENSORS = [landed_objects_sensor]
