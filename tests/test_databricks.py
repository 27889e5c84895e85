"""The Databricks path at its boundary: the task Pipes submits (only the workspace is mocked)."""

import datetime as dt
from unittest import mock

import dagster as dg
import pytest
from databricks.sdk.service import jobs

from pipelines.databricks import DatabricksTaskSpec, submit_task
from resources.databricks import DatabricksResource

START, END = dt.date(2026, 10, 1), dt.date(2026, 10, 31)


def _workspace() -> mock.MagicMock:
    """Only Databricks itself is mocked: submit returns a run that has already succeeded."""
    client = mock.MagicMock(name="WorkspaceClient")
    client.jobs.submit.return_value.bind.return_value = {"run_id": 42}
    run = jobs.Run(
        run_id=42,
        run_page_url="https://example.cloud.databricks.com/#job/1/run/42",
        state=jobs.RunState(
            life_cycle_state=jobs.RunLifeCycleState.TERMINATED,
            result_state=jobs.RunResultState.SUCCESS,
        ),
    )
    client.jobs.get_run.return_value = run

    def dbfs_api(method, path, *args, **kwargs):
        if path.endswith("/dbfs/read"):  # the task wrote no Pipes messages
            raise OSError("no such file")
        return {}

    client.api_client.do.side_effect = dbfs_api
    return client


def test_submit_task_runs_the_same_entry_point_with_a_month_in_one_job():
    spec = DatabricksTaskSpec(python_file="dbfs:/lh/spark_jobs.py", wheel="dbfs:/lh/lh.whl")
    task = submit_task(spec, "features", START, END)
    d = task.as_dict()
    assert d["spark_python_task"] == {
        "python_file": "dbfs:/lh/spark_jobs.py",
        "parameters": ["features", "--start", "2026-10-01", "--end", "2026-10-31",
                       "--environment", "prod"],
    }  # fmt: skip
    assert {"whl": "dbfs:/lh/lh.whl"} in d["libraries"]
    env = d["new_cluster"]["spark_env_vars"]
    assert env["LAKEHOUSE_PII_KEY"] == "{{secrets/lakehouse/pii_key}}"  # a reference, not a key
    assert (
        d["new_cluster"]["spark_conf"][
            "spark.databricks.delta.properties.defaults.enableDeletionVectors"
        ]
        == "false"
    )
    with pytest.raises(ValueError, match="location"):
        submit_task(spec, "silver", START, END)


def test_pipes_client_submits_the_task_with_pipes_bootstrap():
    client = _workspace()

    @dg.asset
    def on_databricks(context: dg.AssetExecutionContext, databricks: DatabricksResource):
        """Features of October on Databricks."""
        inv = databricks.run_step(context, "gold", START, END, location="azure-eu", client=client)
        return inv.get_materialize_result()

    res = DatabricksResource(
        host="https://example.cloud.databricks.com",
        token="not-a-token",
        python_file="dbfs:/lh/spark_jobs.py",
        wheel="dbfs:/lh/lh.whl",
    )
    result = dg.materialize([on_databricks], resources={"databricks": res})
    assert result.success
    assert client.jobs.submit.call_count == 1
    (task,) = client.jobs.submit.call_args.kwargs["tasks"]
    d = task.as_dict()
    assert d["spark_python_task"]["parameters"][:1] == ["gold"]
    assert d["spark_python_task"]["parameters"][-2:] == ["--location", "azure-eu"]
    env = d["new_cluster"]["spark_env_vars"]
    assert "DAGSTER_PIPES_CONTEXT" in env and "DAGSTER_PIPES_MESSAGES" in env
    assert env["LAKEHOUSE_ENV"] == "prod"
