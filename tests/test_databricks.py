"""The Databricks backend at its boundary: what Pipes submits, what it reads back.

Only the Databricks workspace is mocked (``databricks.sdk.WorkspaceClient``): its DBFS is a
folder, and a submitted job is played by :func:`gold_job`, which stands in for the cluster. It
parses the task's command line with the entry point's own parser, writes the gold rows into
the local lake with delta-rs, and reports through Dagster Pipes' message protocol exactly as
``pipelines.spark.jobs.main`` does on DBFS. Everything on the Dagster side is the real code:
the definitions of a configuration, the asset, ``PipesDatabricksClient``, the read-back, GX.
"""

import base64
import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg
import dagster_pipes as dp
import pyarrow as pa
import pytest
import yaml
from databricks.sdk.errors import NotFound
from databricks.sdk.service import jobs

from assets import build_assets
from assets.partitions import build_partitions
from assets.spark_io import Written
from data_quality.suites import build_suites
from lakehouse.definitions import build_definitions
from pipelines.lake import delta, tables
from pipelines.lake.config import ConfigError, load_config
from pipelines.spark import jobs as spark_jobs
from pipelines.spark.databricks import DatabricksTaskSpec, submit_task
from pipelines.spark.jobs import StepRequest
from pipelines.spark.transforms import PiiKeyError
from resources.databricks import DatabricksPiiKey, DatabricksResource
from resources.spark import SparkResource
from tests.helpers import gold_rows

ROOT = Path(__file__).resolve().parents[1]
START, END = dt.date(2026, 10, 1), dt.date(2026, 10, 31)
DAY1, DAY2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
SENTINEL_KEY = "pii-key-that-must-stay-here"
WORKSPACE_ENV = {
    "DATABRICKS_HOST": "https://example.cloud.databricks.com",
    "DATABRICKS_TOKEN": "dapi-not-a-token",
    "LAKEHOUSE_DATABRICKS_PYTHON_FILE": "dbfs:/lh/spark_jobs.py",
    "LAKEHOUSE_DATABRICKS_WHEEL": "dbfs:/lh/multicloud_lakehouse-0.1.0-py3-none-any.whl",
}


def configuration(tmp_path: Path, env: str, spark: Any) -> Path:
    """The shipped lakehouse.yaml with ``spark:`` of one environment replaced."""
    data = yaml.safe_load((ROOT / "lakehouse.yaml").read_text())
    data["environments"][env]["spark"] = spark
    path = tmp_path / "lakehouse.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ----------------------------------------------------------------------------- configuration


def test_backend_defaults_to_a_session_and_prod_ships_with_one():
    assert load_config("local").spark_backend == "session"
    assert load_config("prod").spark_backend == "session"
    assert isinstance(build_definitions("prod").resources["spark"], SparkResource)


def test_databricks_backend_is_selected_by_configuration_with_secrets_as_env_vars(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(
        "LAKEHOUSE_CONFIG", str(configuration(tmp_path, "prod", {"backend": "databricks"}))
    )
    monkeypatch.delenv("LAKEHOUSE_DATABRICKS_CLUSTER_ID", raising=False)
    resources = build_definitions("prod").resources
    spark = resources["spark"]
    assert isinstance(spark, DatabricksResource)
    for field, var in [
        ("host", "DATABRICKS_HOST"),
        ("token", "DATABRICKS_TOKEN"),
        ("python_file", "LAKEHOUSE_DATABRICKS_PYTHON_FILE"),
        ("wheel", "LAKEHOUSE_DATABRICKS_WHEEL"),
    ]:
        value = getattr(spark, field)
        assert isinstance(value, dg.EnvVar) and value.env_var_name == var, field
    assert spark.existing_cluster_id is None
    # The PII key stays in a Databricks secret: Dagster neither holds nor asks for it.
    pii = resources["pii"]
    assert isinstance(pii, DatabricksPiiKey) and not isinstance(pii.key, dg.EnvVar)
    with pytest.raises(PiiKeyError, match=r"secrets/lakehouse/pii_key"):
        pii.secret()
    monkeypatch.setenv("LAKEHOUSE_DATABRICKS_CLUSTER_ID", "0101-cluster")
    cluster = build_definitions("prod").resources["spark"].existing_cluster_id
    assert isinstance(cluster, dg.EnvVar)
    assert cluster.env_var_name == "LAKEHOUSE_DATABRICKS_CLUSTER_ID"


@pytest.mark.parametrize(
    ("spark", "message"),
    [
        ({"backend": "emr"}, r"environments\.prod\.spark\.backend 'emr' is not one of session"),
        ({"backend": "session", "nodes": 3}, r"environments\.prod\.spark\.nodes: unknown key"),
        ("databricks", r"environments\.prod\.spark must be a mapping"),
    ],
)
def test_a_bad_backend_is_a_one_line_error_naming_file_and_key(
    tmp_path, monkeypatch, spark, message
):
    path = configuration(tmp_path, "prod", spark)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
    with pytest.raises(ConfigError, match=message) as err:
        load_config("prod")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_submit_task_runs_the_same_entry_point_with_a_month_in_one_job():
    spec = DatabricksTaskSpec(python_file="dbfs:/lh/spark_jobs.py", wheel="dbfs:/lh/lh.whl")
    prod = load_config("prod")
    month = StepRequest(step="features", start=START, end=END, location=None, cfg=prod)
    task = submit_task(spec, month)
    d = task.as_dict()
    assert d["spark_python_task"] == {
        "python_file": "dbfs:/lh/spark_jobs.py",
        "parameters": ["features", "--start", "2026-10-01", "--end", "2026-10-31",
                       "--environment", "prod"],
    }  # fmt: skip
    assert {"whl": "dbfs:/lh/lh.whl"} in d["libraries"]
    env = d["new_cluster"]["spark_env_vars"]
    assert env["LAKEHOUSE_PII_KEY"] == "{{secrets/lakehouse/pii_key}}"  # a reference, not a key
    conf = d["new_cluster"]["spark_conf"]
    assert conf["spark.databricks.delta.properties.defaults.enableDeletionVectors"] == "false"
    assert conf["spark.databricks.delta.properties.defaults.enableExpiredLogCleanup"] == "false"
    with pytest.raises(ValueError, match="location"):
        StepRequest(step="silver", start=START, end=END, location=None, cfg=prod)


def test_arrow_rows_are_counted_like_spark_rows():
    rows = pa.table({"is_late": [True, None, False, True]})
    written = Written(rows, {}, [])
    assert (written.count(), written.count("is_late")) == (4, 2)


# ------------------------------------------------------------------------ the workspace, faked


class DbfsFolderContextLoader(dp.PipesContextLoader):
    """The job's side of the context: the file Dagster put on (this folder's) DBFS."""

    def __init__(self, root: Path):
        self.root = root

    @contextmanager
    def load_context(self, params: dp.PipesParams) -> Iterator[dp.PipesContextData]:
        yield json.loads((self.root / params["path"].lstrip("/")).read_text())


class DbfsFolderMessageWriter(dp.PipesBlobStoreMessageWriter):
    """The job's side of the messages: chunks written into the folder, as on /dbfs."""

    def __init__(self, root: Path):
        super().__init__(interval=1)
        self.root = root

    def make_channel(
        self, params: dp.PipesParams
    ) -> dp.PipesBufferedFilesystemMessageWriterChannel:
        folder = self.root / params["path"].lstrip("/")
        return dp.PipesBufferedFilesystemMessageWriterChannel(str(folder), interval=1)


Job = Callable[[jobs.SubmitTask, Path], None]


class Workspace:
    """A Databricks workspace: DBFS in a folder; a submitted task is run by ``job`` at once."""

    def __init__(self, root: Path, job: Job):
        self.root, self.job = root, job
        self.client = mock.MagicMock(name="WorkspaceClient")
        self.client.api_client.do.side_effect = self.dbfs
        self.client.jobs.submit.side_effect = self.submit
        self.client.jobs.get_run.side_effect = self.get_run
        self.client.clusters.get.return_value.as_dict.return_value = {}  # no log delivery
        self.dbfs_puts: list[str] = []

    def path(self, dbfs_path: str) -> Path:
        return self.root / dbfs_path.lstrip("/")

    def dbfs(self, method: str, path: str, query=None, body=None, headers=None) -> dict:
        query, body = query or {}, body or {}
        if path.endswith("/dbfs/mkdirs"):
            self.path(body["path"]).mkdir(parents=True, exist_ok=True)
        elif path.endswith("/dbfs/put"):
            data = base64.b64decode(body["contents"])
            self.dbfs_puts.append(data.decode())
            self.path(body["path"]).write_bytes(data)
        elif path.endswith("/dbfs/delete"):
            shutil.rmtree(self.path(body["path"]), ignore_errors=True)
        elif path.endswith(("/dbfs/read", "/dbfs/get-status")):
            file = self.path(query["path"])
            if not file.exists():
                raise NotFound(f"{query['path']} does not exist")
            if path.endswith("/get-status"):
                return {"path": query["path"], "is_dir": file.is_dir()}
            data = file.read_bytes()
            return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}
        else:
            raise AssertionError(f"unexpected workspace call {method} {path}")
        return {}

    def submit(self, tasks: list[jobs.SubmitTask], **_: Any) -> mock.MagicMock:
        (task,) = tasks
        self.job(task, self.root)
        waiter = mock.MagicMock(name="Wait")
        waiter.bind.return_value = {"run_id": 42}
        return waiter

    def get_run(self, run_id: int) -> jobs.Run:
        return jobs.Run(
            run_id=run_id,
            run_page_url=f"https://example.cloud.databricks.com/#job/1/run/{run_id}",
            state=jobs.RunState(
                life_cycle_state=jobs.RunLifeCycleState.TERMINATED,
                result_state=jobs.RunResultState.SUCCESS,
            ),
        )


def gold_job(report_uri: str | None = "the table written") -> Job:
    """The cluster's part: write the range's gold rows, report the write through Pipes.

    ``report_uri`` changes what the job says it wrote (None: it reports nothing), to check
    that Dagster refuses a report it cannot trust.
    """

    def run(task: jobs.SubmitTask, dbfs_root: Path) -> None:
        argv = task.spark_python_task.parameters
        args = spark_jobs.parse_args(argv)  # the entry point's own parser
        loc, table = spark_jobs.step_target(load_config(args.environment), args.step, args.location)
        uri = loc.table_uri(table.name)
        day = args.start
        while day <= args.end:
            rows = gold_rows(day).set_column(1, "region", pa.array([loc.region] * 20))
            delta.write_partition(uri, rows, {"date": day, "region": loc.region}, {},
                                  partition_by=list(table.partition_by))  # fmt: skip
            day += dt.timedelta(days=1)
        env = task.new_cluster.spark_env_vars if task.new_cluster else {}
        params = spark_jobs.pipes_params(argv, env)  # CLI (existing cluster) or environment
        assert params.is_dagster_pipes_process()
        loader, writer = DbfsFolderContextLoader(dbfs_root), DbfsFolderMessageWriter(dbfs_root)
        with dp.PipesContext(params, loader, writer) as pipes:
            assert pipes.asset_key == tables.GOLD.name
            if report_uri is not None:
                reported = uri if report_uri == "the table written" else report_uri
                pipes.report_asset_materialization(
                    metadata={"table_uri": reported, "location": loc.name}
                )

    return run


@pytest.fixture
def on_databricks(lake_home, tmp_path, monkeypatch):
    """A local lake whose configuration runs the Spark steps on (a faked) Databricks."""
    monkeypatch.setenv(
        "LAKEHOUSE_CONFIG", str(configuration(tmp_path, "local", {"backend": "databricks"}))
    )
    monkeypatch.setenv("LAKEHOUSE_PII_KEY", SENTINEL_KEY)
    monkeypatch.delenv("LAKEHOUSE_DATABRICKS_CLUSTER_ID", raising=False)
    for name, value in WORKSPACE_ENV.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def materialize_gold(
    tmp_path: Path, job: Job
) -> tuple[dg.ExecuteInProcessResult, Workspace, mock.MagicMock]:
    """gold_daily_demand of region eu for DAY1..DAY2, one run, as the code location builds it."""
    workspace = Workspace(tmp_path / "dbfs", job)
    cfg = load_config("local")
    (gold,) = [
        a
        for a in build_assets(cfg, build_partitions(cfg), build_suites(cfg))
        if dg.AssetKey(tables.GOLD.name) in a.keys
    ]
    resources = build_definitions("local").resources
    with mock.patch("databricks.sdk.WorkspaceClient", return_value=workspace.client) as cls:
        result = dg.materialize(
            [gold],
            resources=resources,
            tags={
                "dagster/asset_partition_range_start": f"{DAY1}|eu",
                "dagster/asset_partition_range_end": f"{DAY2}|eu",
            },
            raise_on_error=False,
        )
    return result, workspace, cls


@pytest.mark.parametrize("cluster_id", [None, "0101-existing"])
def test_gold_on_databricks_submits_one_task_per_range_and_checks_the_rows_read_back(
    on_databricks, monkeypatch, cluster_id
):
    if cluster_id:
        monkeypatch.setenv("LAKEHOUSE_DATABRICKS_CLUSTER_ID", cluster_id)
    eu = load_config("local").location("azure-eu")
    uri = eu.table_uri(tables.GOLD.name)
    # A day outside the run, already in the table: it must not be read back as the run's rows.
    outside = dt.date(2026, 10, 3)
    delta.write_partition(uri, gold_rows(outside), {"date": outside, "region": "eu"}, {},
                          partition_by=list(tables.GOLD.partition_by))  # fmt: skip

    result, workspace, client_class = materialize_gold(on_databricks, gold_job())

    assert result.success
    client_class.assert_called_once_with(
        host=WORKSPACE_ENV["DATABRICKS_HOST"], token=WORKSPACE_ENV["DATABRICKS_TOKEN"]
    )
    # One Pipes submit for the region's two days, running the entry point with the wheel.
    assert workspace.client.jobs.submit.call_count == 1
    (task,) = workspace.client.jobs.submit.call_args.kwargs["tasks"]
    d = task.as_dict()
    params = d["spark_python_task"]["parameters"]
    assert (
        d["spark_python_task"]["python_file"] == WORKSPACE_ENV["LAKEHOUSE_DATABRICKS_PYTHON_FILE"]
    )
    assert params[:9] == ["gold", "--start", "2026-10-01", "--end", "2026-10-02",
                          "--environment", "local", "--location", "azure-eu"]  # fmt: skip
    assert {"whl": WORKSPACE_ENV["LAKEHOUSE_DATABRICKS_WHEEL"]} in d["libraries"]
    if cluster_id:  # no environment on an existing cluster: the bootstrap rides the arguments
        assert d["existing_cluster_id"] == cluster_id and "new_cluster" not in d
        assert {"--dagster-pipes-context", "--dagster-pipes-messages"} <= set(params[9:])
    else:
        env = d["new_cluster"]["spark_env_vars"]
        assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= set(env)
        assert env["LAKEHOUSE_PII_KEY"] == "{{secrets/lakehouse/pii_key}}"
        assert env["LAKEHOUSE_ENV"] == "local"
    # The key Dagster's process has goes nowhere: not in the task, not in the Pipes context.
    assert SENTINEL_KEY not in json.dumps(d)
    assert workspace.dbfs_puts and all(SENTINEL_KEY not in put for put in workspace.dbfs_puts)

    # The rows read back are the run's two days (40 rows), and GX validated exactly those.
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "gold_daily_demand_expectations" and check.passed
    assert check.metadata["rows_validated"].value == 40
    mats = result.get_asset_materialization_events()  # one per partition of the range
    assert sorted(m.partition for m in mats) == [f"{DAY1}|eu", f"{DAY2}|eu"]
    meta = mats[0].materialization.metadata
    assert meta["dagster/row_count"].value == 40
    assert meta["delta_versions"].value == {"azure-eu": delta.table_version(uri, {})}
    (step,) = meta["spark_steps"].value
    assert step["table_uri"] == uri and step["location"] == "azure-eu"  # what the job reported
    assert step["Databricks Job Run URL"].endswith("/run/42")


@pytest.mark.parametrize(
    ("report_uri", "message"),
    [
        (
            "s3://another-bucket/tables/gold_daily_demand",
            r"wrote 's3://another-bucket/.*but this code location reads",
        ),
        (None, r"reported no materialization through Pipes"),
    ],
)
def test_a_job_that_does_not_confirm_the_table_read_back_fails_the_run(
    on_databricks, report_uri, message
):
    result, workspace, _ = materialize_gold(on_databricks, gold_job(report_uri))
    assert not result.success
    assert workspace.client.jobs.submit.call_count == 1
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert any(e.cls_name == "DatabricksStepError" for e in [error, error.cause] if e)
    text = error.message + (error.cause.message if error.cause else "")
    assert re.search(message, text), text


def test_a_location_with_its_own_workspace_submits_its_steps_there(on_databricks, monkeypatch):
    """compute.spark_endpoints: EU data goes to the EU workspace, not the default one."""
    path = Path(os.environ["LAKEHOUSE_CONFIG"])
    data = yaml.safe_load(path.read_text())
    data["environments"]["local"]["compute"] = {
        "spark_endpoints": {
            "azure-eu": {
                "databricks_host": "https://adb-eu.azuredatabricks.net",
                "databricks_token": "${DATABRICKS_TOKEN_EU}",
            }
        }
    }
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("DATABRICKS_TOKEN_EU", "dapi-eu-not-a-token")
    result, _, client_class = materialize_gold(on_databricks, gold_job())
    assert result.success
    client_class.assert_called_once_with(
        host="https://adb-eu.azuredatabricks.net", token="dapi-eu-not-a-token"
    )


def test_a_step_request_shows_neither_its_storage_secrets_nor_its_key():
    secret = {"aws-us": {"aws_secret_access_key": "s3cr3t"}}
    request = StepRequest(
        step="silver",
        start=DAY1,
        end=DAY2,
        location="aws-us",
        cfg=load_config("local"),
        storage_options=secret,
        pii_key=lambda: SENTINEL_KEY,
    )
    assert "s3cr3t" not in repr(request) and SENTINEL_KEY not in repr(request)
    assert request.argv() == [
        "silver", "--start", "2026-10-01", "--end", "2026-10-02",
        "--environment", "local", "--location", "aws-us",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="unknown step 'platinum'"):
        StepRequest(step="platinum", start=DAY1, end=DAY2, location="aws-us", cfg=request.cfg)
