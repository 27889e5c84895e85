"""Databricks through Dagster Pipes: runs a Spark step of pipelines/spark_jobs.py remotely."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
from pydantic import Field

from pipelines.databricks import DatabricksTaskSpec, submit_task


class DatabricksResource(dg.ConfigurableResource):
    """Databricks workspace that runs the Spark steps in production (PipesDatabricksClient)."""

    host: str = Field(description="Workspace URL (EnvVar DATABRICKS_HOST).")
    token: str = Field(description="Access token (EnvVar DATABRICKS_TOKEN).")
    python_file: str = Field(description="Uploaded copy of pipelines/spark_jobs.py.")
    wheel: str = Field(description="This project's wheel on DBFS or a volume.")
    existing_cluster_id: str | None = Field(default=None, description="Run on this cluster.")
    environment: str = Field(default="prod", description="LAKEHOUSE_ENV on the cluster.")

    def spec(self) -> DatabricksTaskSpec:
        """What the submitted task runs and where."""
        return DatabricksTaskSpec(
            python_file=self.python_file,
            wheel=self.wheel,
            existing_cluster_id=self.existing_cluster_id,
        )

    def workspace_client(self) -> Any:
        """The Databricks SDK client, built on first use."""
        from databricks.sdk import WorkspaceClient

        return WorkspaceClient(host=self.host, token=self.token)

    def run_step(
        self,
        context: dg.AssetExecutionContext,
        step: str,
        start: dt.date,
        end: dt.date,
        location: str | None = None,
        client: Any = None,
    ) -> Any:
        """Submit one step for a date range and wait; returns the Pipes invocation."""
        from dagster_databricks import PipesDatabricksClient

        pipes = PipesDatabricksClient(client=client or self.workspace_client())
        task = submit_task(self.spec(), step, start, end, self.environment, location)
        return pipes.run(context=context, task=task)
