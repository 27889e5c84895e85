"""Databricks through Dagster Pipes: the Spark steps of pipelines/spark/jobs.py run as jobs.

Selected by ``spark: {backend: databricks}`` in lakehouse.yaml (:func:`resources.resources_for`).
Each step is one ``jobs.SubmitTask`` (pipelines/spark/databricks.py) whose entry point is
:func:`pipelines.spark.jobs.main`; the job reports the table it wrote back through Pipes, and
the rows are read back here with delta-rs, without a JVM.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from pipelines.lake import delta
from pipelines.lake.config import LakeLocation
from pipelines.spark.databricks import DatabricksTaskSpec, submit_task
from pipelines.spark.jobs import StepRequest
from pipelines.spark.transforms import PiiKeyError
from resources.pii import PiiKeyResource
from resources.spark import SparkStepRunner, endpoint_location

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


class DatabricksStepError(RuntimeError):
    """A Databricks job finished without confirming the write Dagster is about to read."""


class DatabricksResource(SparkStepRunner):
    """Databricks workspace that runs the Spark steps (``PipesDatabricksClient``)."""

    host: str = Field(description="Workspace URL (EnvVar DATABRICKS_HOST).")
    token: str = Field(description="Access token (EnvVar DATABRICKS_TOKEN).")
    python_file: str = Field(description="Uploaded copy of pipelines/spark/jobs.py.")
    wheel: str = Field(description="This project's wheel on DBFS or a volume.")
    existing_cluster_id: str | None = Field(default=None, description="Run on this cluster.")
    poll_interval_seconds: float = Field(default=5.0, description="Between run-state polls.")

    def spec(self) -> DatabricksTaskSpec:
        """What the submitted task runs and where."""
        return DatabricksTaskSpec(
            python_file=self.python_file,
            wheel=self.wheel,
            existing_cluster_id=self.existing_cluster_id or None,
        )

    def workspace_client(self, workspace: tuple[str, str] | None = None) -> WorkspaceClient:
        """The Databricks SDK client of a workspace (the only boundary the tests mock).

        ``workspace`` is ``(host, token)`` of a location's own workspace
        (``compute.spark_endpoints``); default this resource's.
        """
        from databricks.sdk import WorkspaceClient

        host, token = workspace or (self.host, self.token)
        return WorkspaceClient(host=host, token=token)

    def run_step(self, context: dg.AssetExecutionContext, request: StepRequest) -> dict[str, str]:
        """Submit the step as a one-task job, wait for it, and check what it reported.

        Neither the request's storage options nor its PII key go to Databricks: the cluster
        reaches the lake with its own identity and resolves the key from a Databricks secret
        (``DatabricksTaskSpec.pii_key_secret``).
        """
        from dagster_databricks import PipesDatabricksClient

        cfg = request.cfg
        target, table = request.target()
        task = submit_task(self.spec(), request)
        # the workspace of the data's location, when it has one: its jurisdiction's compute
        endpoint = cfg.compute.endpoint(endpoint_location(cfg, request.location))
        pipes = PipesDatabricksClient(
            client=self.workspace_client(endpoint.databricks() if endpoint else None),
            poll_interval_seconds=self.poll_interval_seconds,
        )
        invocation = pipes.run(context=context, task=task)
        reported = [
            r
            for r in invocation.get_results(implicit_materializations=False)
            if isinstance(r, dg.MaterializeResult)
        ]
        return checked_report(task.task_key or request.step, reported, target.table_uri(table.name))

    def read_range(
        self,
        location: LakeLocation,
        uri: str,
        options: dict[str, str],
        start: dt.date,
        end: dt.date,
        region: str | None,
    ) -> pa.Table:
        """The rows as Arrow, read with delta-rs (partition filter on date and region)."""
        rows = delta.read_range(uri, options, start, end, region)
        if not rows.column_names:
            raise DatabricksStepError(f"no Delta table at {uri} after its Databricks job")
        return rows


def checked_report(
    task_key: str, reported: list[dg.MaterializeResult], expected_uri: str
) -> dict[str, str]:
    """The job's report, once it names the table Dagster reads back; else a one-line error.

    A job whose cluster resolves another lakehouse.yaml or other bucket variables would write
    elsewhere, and Dagster would validate rows that were not written: that is refused here.
    """
    if not reported:
        raise DatabricksStepError(
            f"Databricks task {task_key} reported no materialization through Pipes: is "
            "dagster-pipes installed on the cluster and the entry point pipelines.spark.jobs?"
        )
    report = {k: _text(v) for k, v in (reported[-1].metadata or {}).items()}
    if report.get("table_uri") != expected_uri:
        raise DatabricksStepError(
            f"Databricks task {task_key} wrote {report.get('table_uri')!r}, but this code "
            f"location reads {expected_uri!r}: align the cluster's LAKEHOUSE_* settings"
        )
    return report


def _text(value: Any) -> str:
    """A metadata value as text (Pipes hands back ``MetadataValue`` objects)."""
    return str(value.value if isinstance(value, dg.MetadataValue) else value)


class DatabricksPiiKey(PiiKeyResource):
    """The PII key on the Databricks backend: held by a Databricks secret, never by Dagster."""

    key: str = Field(default="", description="Unused: the cluster resolves the secret.")
    secret_reference: str = Field(
        default=DatabricksTaskSpec.pii_key_secret,
        description="Databricks secret the cluster's LAKEHOUSE_PII_KEY is set from.",
    )

    def secret(self) -> str:
        """Refuse: on this backend the key is only ever read on the cluster."""
        raise PiiKeyError(
            f"the Databricks backend keeps the pseudonymization key in {self.secret_reference}"
            "; this code location never holds it"
        )

    def __repr__(self) -> str:
        return f"DatabricksPiiKey(secret_reference={self.secret_reference!r})"
