# ruff: noqa
"""Names vulture (make check) reports as unused that stay, each with why.

vulture reads this file as code that uses them; it is never imported. An unused function or
variable not listed here fails make check: delete it, or list it here with its reason.
"""

# Set on objects another library reads: GX's config and progress bars, rich's tables.
_.HASH_THRESHOLD  # data_quality/gx.py: GX reads it
_.progress_bars  # data_quality/gx.py: GX reads it
_.show_header  # lakehouse/demo_summary.py: rich reads it
_.justify  # lakehouse/demo_summary.py: rich reads it
_.new_cluster  # pipelines/spark/databricks.py: the Databricks SDK's task reads it

# Parameters a protocol fixes (context managers' __exit__).
tb  # lakehouse/demo_workers.py, lakehouse/progress.py

# Read by pydantic: model settings and validators.
model_config  # pipelines/lake/config/file.py and models.py
_._one_way  # pipelines/lake/config/file.py: EndpointModel's model validator
_._format_options  # pipelines/lake/config/file.py: LandingModel's model validator

# Dataclass fields that reports serialize whole (asdict / as_dict into JSON and metadata).
n_reference  # pipelines/ml/drift.py: the drift report's columns
n_current
js
normed_wasserstein
details  # pipelines/ml/train.py: the training report
files_deleted  # pipelines/operations/maintenance/ (vacuum.py, maintain.py): VacuumResult, MaintenanceReport
bytes_reclaimed
kept_for_floor
kept_young
_.kept_for_floor
_.kept_young
commits_read  # VacuumResult of the log's plan (the report's vacuum)
checkpoint_version
_.commits_read
_.checkpoint_version
_.files_deleted
_.bytes_reclaimed
version_before
replica_floor_version
reseeded  # pipelines/replication/plan.py: SyncReport
route_checked
target_version_before
files_already_present
commits_copied
checkpoints_copied
files_missing_at_source

# Dagster resource fields: set from EnvVar in the deployment, handed to the stores by name.
aws_access_key_id  # resources/lake.py
aws_secret_access_key
azure_storage_account_key
google_service_account
dagster_home  # devtools/run_emulated.py: the emulated run's report field

# Engine API used by tests and benchmarks only; each a product path not yet wired to a job.
landing_objects  # pipelines/ingest/landing.py: the keys of a landing day (tests' oracle)
read_partition_objects  # pipelines/ingest/landing.py: the one-shot read benchmarks compare with
expire_landed  # pipelines/ingest/ledger.py: landing lifecycle (docs/ingest.md); no job calls it yet
precision_recall  # pipelines/operations/anomaly.py: the anomaly bands' measured precision
EXPECTED_REASON  # pipelines/simulation/simulate.py: the reason each injected bad kind gets
FEATURES_TABLE  # pipelines/spark/jobs.py: the features step's table, named for tests
empty_buckets  # devtools/emulators.py: the emulator fixtures' reset between tests
table_fingerprint  # pipelines/replication/verify.py: a table's streamed fingerprint, the tests' and benchmarks' oracle

# Privacy (issue #29, in progress): the erasure engine is built and tested, its service is not.
_._valid  # pipelines/lake/config/models.py: the privacy section's pydantic validators
_._unique
erasure_deadline_days  # pipelines/lake/config/models.py: the erasure requests' deadline (service not built)
matches  # pipelines/privacy/detect.py: one value's detectors, for tests and the docs' examples
_.keyed_hash  # pipelines/privacy/erase.py: the receipt's subject hash
erase_from_table  # pipelines/privacy/erase.py: erasure of one table (no CLI or sensor yet)
rows_deleted  # pipelines/privacy/erase.py: the receipt's fields, serialized whole
bytes_removed
files_scanned
bytes_scanned
_.files_scanned
_.bytes_scanned
_.bytes_removed

# The ingest worker's status (pipelines/ingest/stream.py): written whole to its status file,
# read by lakehouse status.
started_at
updated_at
last_commit_at
events_landed
failures
_.events_landed
_.last_commit_at
_.updated_at
_.failures
meaning  # pipelines/lake/config/environment.py: Variable's fields, read by the docs' table and its test
default  # pipelines/lake/config/environment.py: Variable's fields, read by the docs' table and its test
readers  # pipelines/lake/config/environment.py: Variable's fields, read by the docs' table and its test
RESOURCE_SECRETS  # pipelines/lake/config/environment.py: the dg.EnvVar secrets, checked against the docs by tests/test_environment.py

# argparse calls its formatter's hook (lakehouse/cli.py: options wrapped, never inside a name).
_._split_lines

# What erasing a landing area did (pipelines/erasure/landing.py): reported whole by as_dict in
# the receipt and the CLI's JSON.
objects_scanned
ledger_rows_updated
_.objects_scanned
_.ledger_rows_updated
# RangedFile's io methods: pyarrow's file wrapper calls them, never this code.
_.seekable
_.tell
_.readinto

# PEP 562: Python calls a module's __getattr__ for a name it lacks (pipelines/lake/delta).
__getattr__
