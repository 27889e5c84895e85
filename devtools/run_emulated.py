"""``make run-emulated``: the demo's whole story on moto, Azurite and fake-gcs-server.

Starts the three emulators on 127.0.0.1 with every location's bucket or container, a real
``mlflow server`` whose artifacts live in the ML home's bucket (S3 on moto), and a Dagster
instance built from the production profile (deploy/dagster-prod.yaml: compute logs in S3
through dagster-aws; SQLite instead of PostgreSQL). Then runs :func:`lakehouse.demo.run_demo`
with ``LAKEHOUSE_ENV=emulated`` and adds what the emulators hold to its summary. Every server
it started is stopped on the way out: on success, on failure, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from unittest import mock

import yaml

from devtools import emulators
from pipelines.lake.config import PROJECT_ROOT, ConfigError, LakeConfig, load_config

if TYPE_CHECKING:
    from lakehouse.progress import Progress

ENVIRONMENT = "emulated"
MLFLOW_PREFIX = "mlflow"
COMPUTE_LOG_PREFIX = "dagster/compute-logs"
# What the emulators cannot serve as the real clouds do, and where that is covered instead
# (docs/emulators.md has the whole table of paths).
NOT_SERVED = {
    "azure-eu spark (abfss://)": (
        "Azurite serves no DFS endpoint, which hadoop-azure's ABFS driver needs: Spark reaches "
        "the container through the WASB driver's emulator mode (wasb://); abfss:// with a "
        "managed identity is configured for prod only and untested here"
    ),
    "gcp-apac delta-rs (gs:// via object_store)": (
        "fake-gcs-server rejects object_store's XML-API uploads: delta-rs writes through "
        "OpenDAL's JSON API, unpartitioned, single writer; concurrent commits rest on real "
        "GCS's generation preconditions, which fake-gcs does not enforce on simple uploads"
    ),
    "compute logs and MLflow artifacts on Azure / GCS": (
        "one compute log manager and one artifact store are active: S3 (the ML home) is "
        "exercised; the Azure and GCS managers in deploy/dagster-prod.yaml are not"
    ),
}


def instance_yaml(s3_endpoint: str) -> dict[str, Any]:
    """The production Dagster instance profile, with the one change an emulator needs.

    Storage stays SQLite in DAGSTER_HOME (no PostgreSQL here); the compute log manager is
    the production one with moto's endpoint.
    """
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster-prod.yaml").read_text())
    config.pop("storage", None)
    logs = config["compute_logs"]
    if logs.get("class") != "S3ComputeLogManager":
        raise ConfigError(
            "deploy/dagster-prod.yaml: run-emulated exercises the S3 compute log manager, "
            f"found {logs.get('class')!r}"
        )
    logs["config"]["endpoint_url"] = s3_endpoint
    logs["config"]["prefix"] = COMPUTE_LOG_PREFIX
    logs["config"]["upload_interval"] = 5
    return dict(config)


def _ml_home_bucket(cfg: LakeConfig) -> str:
    home = cfg.home
    if home.cloud != "aws":
        raise ConfigError(
            f"run-emulated keeps MLflow artifacts and compute logs in S3 on moto: the ML home "
            f"{home.name!r} is on {home.cloud}"
        )
    return emulators.bucket_of(home)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` that stops a server runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client on the moto server."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=emulators.S3_KEY_ID,
        aws_secret_access_key=emulators.S3_SECRET,
        region_name=emulators.S3_REGION,
    )


def count_objects(endpoint: str, bucket: str, prefix: str) -> int:
    """Objects under ``prefix`` in a bucket of the moto server."""
    pages = s3_client(endpoint).get_paginator("list_objects_v2")
    return sum(p.get("KeyCount", 0) for p in pages.paginate(Bucket=bucket, Prefix=prefix))


@dataclass(frozen=True)
class Emulated:
    """The running emulated environment: clouds, MLflow server, Dagster instance folder."""

    cfg: LakeConfig
    clouds: emulators.Endpoints
    tracking_uri: str
    dagster_home: Path
    bucket: str  # the ML home's bucket: MLflow artifacts and compute logs

    @property
    def artifacts(self) -> str:
        """Where the MLflow server keeps artifacts."""
        return f"s3://{self.bucket}/{MLFLOW_PREFIX}"


@contextmanager
def emulated(workdir: Path, running: emulators.Endpoints | None = None) -> Iterator[Emulated]:
    """Emulators, MLflow server and instance up, the environment pointing at them.

    ``running``: emulators someone else started (the test suite's), where only the buckets
    are created. Everything started here is stopped and the environment put back when the
    block ends, however it ends (SIGTERM unwinds like Ctrl-C).
    """
    cfg = load_config(ENVIRONMENT)
    bucket = _ml_home_bucket(cfg)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(_terminate_as_interrupt())
        if running is None:
            clouds = stack.enter_context(emulators.emulated_clouds(cfg, logs))
        else:
            emulators.create_buckets(cfg, running)
            clouds = running
        s3_env = {
            "AWS_ACCESS_KEY_ID": emulators.S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": emulators.S3_SECRET,
            "AWS_REGION": emulators.S3_REGION,
        }
        mlflow_log = stack.enter_context((logs / "mlflow-server.log").open("wb"))
        tracking = stack.enter_context(
            emulators.mlflow_server(
                workdir / "mlflow" / "mlflow.db",
                f"s3://{bucket}/{MLFLOW_PREFIX}",
                env={**s3_env, "MLFLOW_S3_ENDPOINT_URL": clouds.s3},
                log=mlflow_log,
            )
        )
        home = workdir / "dagster"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(clouds.s3)))
        # the whole environment is put back on exit (mock's patch.dict does exactly that)
        stack.enter_context(
            mock.patch.dict(
                os.environ,
                {
                    **clouds.environ(),
                    **s3_env,
                    "LAKEHOUSE_ENV": ENVIRONMENT,
                    "LAKEHOUSE_MLFLOW_TRACKING_URI": tracking,
                    "DAGSTER_HOME": str(home),
                    "DAGSTER_COMPUTE_LOG_BUCKET": bucket,
                },
            )
        )
        yield Emulated(cfg, clouds, tracking, home, bucket)


def run_story(
    env: Emulated,
    start: dt.date,
    end: dt.date,
    events_per_day: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The demo in a running emulated environment; its summary plus what the clouds hold."""
    from lakehouse.demo import run_demo

    summary = run_demo(start, end, events_per_day, environment=ENVIRONMENT, progress=progress)
    clouds = env.clouds
    summary["emulated"] = {
        "endpoints": {"s3": clouds.s3, "azure": clouds.azure, "gcs": clouds.gcs},
        "spark_roots": {
            loc.name: loc.spark_root(loc.storage_options()) for loc in env.cfg.locations.values()
        },
        "mlflow": {
            "tracking_uri": env.tracking_uri,
            "artifacts": env.artifacts,
            "artifact_objects": count_objects(clouds.s3, env.bucket, MLFLOW_PREFIX + "/"),
        },
        "compute_logs": {
            "uri": f"s3://{env.bucket}/{COMPUTE_LOG_PREFIX}",
            "objects": compute_log_objects(clouds.s3, env.bucket),
        },
        "not_served_by_emulators": NOT_SERVED,
    }
    return summary


def run_emulated(
    start: dt.date,
    end: dt.date,
    events_per_day: int,
    workdir: Path,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``make run-emulated``: start everything, run the story, stop everything."""
    t0 = time.perf_counter()
    with emulated(workdir) as env:
        summary = run_story(env, start, end, events_per_day, progress)
    summary["seconds_with_emulators"] = round(time.perf_counter() - t0, 1)
    return summary


def compute_log_objects(endpoint: str, bucket: str) -> int:
    """Compute log objects in the bucket, once the manager's last uploads are in.

    The S3 manager uploads when a step's capture closes; dagster's instance is disposed of at
    exit, so the count is read after a short wait for uploads still in flight.
    """
    deadline = time.time() + 15
    count = count_objects(endpoint, bucket, COMPUTE_LOG_PREFIX + "/")
    while count == 0 and time.time() < deadline:
        time.sleep(1)
        count = count_objects(endpoint, bucket, COMPUTE_LOG_PREFIX + "/")
    return count
