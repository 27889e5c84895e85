"""The Databricks run of a Spark step: the ``jobs.SubmitTask`` Dagster Pipes submits.

Production can run the silver, gold and features steps on Databricks instead of a session
the code location owns. The task is a ``spark_python_task`` running
:func:`pipelines.spark.jobs.main` (the same transforms and partition writes the local path
runs) on a cluster that has this project's wheel installed. No Dagster here: the resource in
resources/databricks.py hands the task to ``PipesDatabricksClient``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipelines.spark.jobs import StepRequest
from pipelines.spark.transforms import PII_KEY_ENV

if TYPE_CHECKING:
    from databricks.sdk.service import jobs


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
            "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
            # upkeep, not Spark's checkpoints, cleans the log (under the replicas' floor)
            "spark.databricks.delta.properties.defaults.enableExpiredLogCleanup": "false",
        }
    )


def submit_task(spec: DatabricksTaskSpec, request: StepRequest) -> jobs.SubmitTask:
    """The one-task job that runs a Spark step on Databricks.

    The request's storage options and PII key stay here: the cluster reaches the lake with its
    own identity and resolves the key from a Databricks secret.
    """
    from databricks.sdk.service import compute, jobs

    libraries = [compute.Library(whl=spec.wheel)] + [
        compute.Library(pypi=compute.PythonPyPiLibrary(package=p)) for p in spec.extra_libraries
    ]
    step, start, end, location = request.step, request.start, request.end, request.location
    key = f"lakehouse_{step}_{start:%Y%m%d}_{end:%Y%m%d}" + (f"_{location}" if location else "")
    task = jobs.SubmitTask(
        task_key=key.replace("-", "_"),
        spark_python_task=jobs.SparkPythonTask(
            python_file=spec.python_file, parameters=request.argv()
        ),
        libraries=libraries,
    )
    if spec.existing_cluster_id:
        task.existing_cluster_id = spec.existing_cluster_id
    else:
        environment = request.cfg.environment
        task.new_cluster = compute.ClusterSpec(
            spark_version=spec.spark_version,
            node_type_id=spec.node_type_id,
            num_workers=spec.num_workers,
            spark_conf=dict(spec.spark_conf),
            spark_env_vars={"LAKEHOUSE_ENV": environment, PII_KEY_ENV: spec.pii_key_secret},
        )
    return task
