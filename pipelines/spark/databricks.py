"""The Databricks run of a Spark step: the ``jobs.SubmitTask`` Dagster Pipes submits.

Production can run the silver, gold and features steps on Databricks instead of a session
the code location owns. The task is a ``spark_python_task`` running
:func:`pipelines.spark.jobs.main` (the same transforms and partition writes the local path
runs) on a cluster that has this project's wheel installed. No Dagster here: the resource in
resources/databricks.py hands the task to ``PipesDatabricksClient``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipelines.spark.jobs import STEP_TABLES
from pipelines.spark.transforms import PII_KEY_ENV

if TYPE_CHECKING:
    from databricks.sdk.service import jobs

STEPS = tuple(STEP_TABLES)


@dataclass(frozen=True)
class DatabricksTaskSpec:
    """Where the entry point and the wheel live, and which cluster runs them."""

    python_file: str  # a copy of pipelines/spark/jobs.py, e.g. dbfs:/lakehouse/spark_jobs.py
    wheel: str  # this project's wheel on DBFS or a Unity Catalog volume
    existing_cluster_id: str | None = None
    spark_version: str = "16.4.x-scala2.13"
    node_type_id: str = "i3.xlarge"
    num_workers: int = 2
    # Databricks secret reference for the PII key: resolved on the cluster, never by Dagster.
    pii_key_secret: str = "{{secrets/lakehouse/pii_key}}"
    extra_libraries: tuple[str, ...] = ("dagster-pipes",)
    spark_conf: dict[str, str] = field(
        default_factory=lambda: {
            "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false"
        }
    )


def task_parameters(
    step: str, start: dt.date, end: dt.date, environment: str, location: str | None
) -> list[str]:
    """The command line of :func:`pipelines.spark.jobs.main` for one step and date range."""
    if step not in STEPS:
        raise ValueError(f"unknown Spark step {step!r}; one of {', '.join(STEPS)}")
    if step != "features" and not location:
        raise ValueError(f"step {step!r} runs per location: give the location name")
    params = [step, "--start", start.isoformat(), "--end", end.isoformat()]
    params += ["--environment", environment]
    return params + (["--location", location] if location else [])


def submit_task(
    spec: DatabricksTaskSpec,
    step: str,
    start: dt.date,
    end: dt.date,
    environment: str = "prod",
    location: str | None = None,
) -> jobs.SubmitTask:
    """The one-task job that runs a Spark step on Databricks."""
    from databricks.sdk.service import compute, jobs

    libraries = [compute.Library(whl=spec.wheel)] + [
        compute.Library(pypi=compute.PythonPyPiLibrary(package=p)) for p in spec.extra_libraries
    ]
    key = f"lakehouse_{step}_{start:%Y%m%d}_{end:%Y%m%d}" + (f"_{location}" if location else "")
    task = jobs.SubmitTask(
        task_key=key.replace("-", "_"),
        spark_python_task=jobs.SparkPythonTask(
            python_file=spec.python_file,
            parameters=task_parameters(step, start, end, environment, location),
        ),
        libraries=libraries,
    )
    if spec.existing_cluster_id:
        task.existing_cluster_id = spec.existing_cluster_id
    else:
        task.new_cluster = compute.ClusterSpec(
            spark_version=spec.spark_version,
            node_type_id=spec.node_type_id,
            num_workers=spec.num_workers,
            spark_conf=dict(spec.spark_conf),
            spark_env_vars={"LAKEHOUSE_ENV": environment, PII_KEY_ENV: spec.pii_key_secret},
        )
    return task
