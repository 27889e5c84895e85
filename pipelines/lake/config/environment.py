"""Where the configuration comes from: project paths, the environment name, ``${NAME}`` values.

The one module that reads the process environment: every variable the product reads is
registered in :data:`VARIABLES` (name, meaning, default, who reads it; docs/configuration.md
lists them) and read through :func:`env` (``tests/test_environment.py`` fails on an
``os.environ`` read anywhere else). Nothing here runs at import; each function reads the
environment when called. Secrets the resources take are ``dg.EnvVar`` and are listed too.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]  # pipelines/lake/config/environment.py
ENVIRONMENTS = ("local", "emulated", "prod")
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


@dataclass(frozen=True)
class Variable:
    """An environment variable the product reads: what it means, its default, who reads it."""

    name: str
    meaning: str
    default: str
    readers: str
    secret: bool = False  # resolved by Dagster (``dg.EnvVar``) in resources, never logged


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable(
            "LAKEHOUSE_ENV",
            "the environment: local, emulated or prod",
            "local",
            "config loading, the CLI, the code location",
        ),
        Variable(
            "LAKEHOUSE_CONFIG",
            "the configuration file",
            "lakehouse.yaml (project)",
            "config loading",
        ),
        Variable(
            "LAKEHOUSE_HOME",
            "folder relative roots and local state resolve against",
            "the project folder",
            "config loading",
        ),
        Variable(
            "LAKEHOUSE_START_DATE",
            "first partition date (overrides start_date:)",
            "lakehouse.yaml's start_date",
            "config loading",
        ),
        Variable(
            "LAKEHOUSE_COMPUTE_JURISDICTION",
            "jurisdictions this worker may process",
            "unset (every one, outside prod)",
            "pipelines/sovereignty/compute.py",
        ),
        Variable(
            "LAKEHOUSE_JARS",
            "folder of the Delta and connector jars",
            ".cache/jars",
            "pipelines/spark/session.py",
        ),
        Variable(
            "JAVA_HOME", "the Java Spark starts", "java on PATH", "pipelines/spark/session.py"
        ),
        Variable(
            "PYSPARK_GATEWAY_PORT",
            "a Spark gateway already running (set by pyspark)",
            "unset",
            "pipelines/spark/session.py",
        ),
        Variable(
            "LAKEHOUSE_PII_KEY",
            "HMAC key that pseudonymizes personal data",
            "none",
            "resources/__init__.py (dg.EnvVar), pipelines/spark/jobs.py (Databricks)",
            secret=True,
        ),
        Variable(
            "MLFLOW_TRACKING_URI",
            "MLflow tracking server (prod)",
            "unset",
            "resources (dg.EnvVar), upkeep's model pins",
        ),
        Variable(
            "LAKEHOUSE_MLFLOW_TRACKING_URI",
            "MLflow server (emulated)",
            "unset",
            "resources (dg.EnvVar), upkeep's model pins",
        ),
        Variable(
            "MLFLOW_REGISTRY_URI",
            "MLflow model registry, when not the tracking server",
            "the tracking URI",
            "upkeep's model pins",
        ),
        Variable(
            "MLFLOW_TRACKING_TOKEN",
            "MLflow bearer token",
            "unset",
            "resources (dg.EnvVar), upkeep's model pins",
            secret=True,
        ),
        Variable(
            "LAKEHOUSE_INGEST_SENSOR_SECONDS",
            "how often the landed-objects sensor lists",
            "30",
            "jobs/ingest.py",
        ),
        Variable(
            "LAKEHOUSE_INGEST_SENSOR",
            "stopped: the landed-objects sensor starts stopped",
            "running",
            "jobs/ingest.py",
        ),
        Variable(
            "SLACK_BOT_TOKEN",
            "Slack token of the failure alerts",
            "unset (no Slack)",
            "jobs/alerts.py (dg.EnvVar)",
            secret=True,
        ),
        Variable(
            "LAKEHOUSE_SLACK_CHANNEL",
            "Slack channel of the failure alerts",
            "#lakehouse-alerts",
            "jobs/alerts.py",
        ),
        Variable(
            "LAKEHOUSE_DATABRICKS_CLUSTER_ID",
            "existing Databricks cluster to run on",
            "unset (a new cluster)",
            "resources/__init__.py",
        ),
        Variable(
            "LAKEHOUSE_DAGSTER_URL",
            "webserver an ingest worker reports to",
            "unset (DAGSTER_HOME's instance)",
            "lakehouse/worker.py",
        ),
        Variable(
            "DAGSTER_HOME",
            "the Dagster instance folder",
            ".dagster (the demo)",
            "lakehouse/instance.py, lakehouse/demo.py",
        ),
        Variable(
            "LAKEHOUSE_DEMO_WORKERS",
            "ingest workers the demo starts",
            "see demo_workers",
            "lakehouse/demo_workers.py",
        ),
        Variable("LAKEHOUSE_DEBUG", "set: the CLI prints tracebacks", "unset", "lakehouse/cli.py"),
        Variable("TERM", "dumb: no progress bars", "unset", "lakehouse/progress.py"),
        Variable(
            "FAKE_GCS_LOG_LEVEL",
            "fake-gcs-server's log level (emulators only)",
            "error",
            "devtools/emulators.py",
        ),
    )
}
# Secrets only Dagster resolves (``dg.EnvVar`` in resources/__init__.py); never read here.
RESOURCE_SECRETS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "LAKEHOUSE_SPARK_MASTER",
    "DATABRICKS_HOST",
    "DATABRICKS_TOKEN",
    "LAKEHOUSE_DATABRICKS_PYTHON_FILE",
    "LAKEHOUSE_DATABRICKS_WHEEL",
)


# user:password@ in a URL (a webserver's, a tracking server's, a proxy's): never shown
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``.

    For messages and log lines that name a URL a user gave (``--dagster-url``,
    ``MLFLOW_TRACKING_URI``): its ``user:password@`` is a secret like any other.
    """
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


def env(name: str) -> str | None:
    """The value of a registered variable, None when unset (its default is the caller's).

    A name not in :data:`VARIABLES` is a bug: register it (and the docs list it).
    """
    if name not in VARIABLES:
        raise KeyError(f"environment variable {name} is not registered in VARIABLES")
    return os.environ.get(name)


def process_environment() -> dict[str, str]:
    """A copy of the whole environment, for what hands it on (Pipes' parameters, a child)."""
    return dict(os.environ)


class ConfigError(ValueError):
    """The configuration is wrong or incomplete; the message says what and where."""


DEFAULT_START_DATE = dt.date(2026, 9, 1)


def config_path() -> Path:
    """Path of the configuration file (``LAKEHOUSE_CONFIG`` overrides the project's own)."""
    return Path(env("LAKEHOUSE_CONFIG") or PROJECT_ROOT / "lakehouse.yaml")


def lake_home() -> Path:
    """Folder that relative location roots and local state are resolved against."""
    home = Path(env("LAKEHOUSE_HOME") or PROJECT_ROOT).resolve()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"LAKEHOUSE_HOME={home} is a file, not a folder")
    return home


class _Loader(yaml.SafeLoader):
    """YAML's safe loader with dates kept as text.

    pydantic then checks each where a date is expected and names its key (YAML's own error
    for ``2026-02-30`` names neither).
    """


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_config_file(path: str) -> dict[str, Any]:
    """The configuration file as a mapping; a one-line error naming the file if it is not one."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"configuration {path} is a folder, not a YAML file (LAKEHOUSE_CONFIG)")
    try:
        data = yaml.load(file.read_text(), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"configuration file {path} is not valid YAML{at}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise ConfigError(f"configuration file {path} is {kind}; see lakehouse.yaml for the shape")
    return data


def current_environment() -> str:
    """The environment named by ``LAKEHOUSE_ENV`` (default ``local``), validated."""
    name = env("LAKEHOUSE_ENV")
    name = "local" if name is None else name
    if name not in ENVIRONMENTS:
        raise ConfigError(f"LAKEHOUSE_ENV={name!r} is not one of {', '.join(ENVIRONMENTS)}")
    return name


def resolve_placeholders(value: str, where: str, first: Mapping[str, str] | None = None) -> str:
    """Replace ``${NAME}`` with ``first[NAME]``, else the environment variable NAME.

    Fails naming the variable when neither has it.
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if first and name in first:
            return first[name]
        if name not in os.environ:
            raise ConfigError(f"{where} needs environment variable {name}, which is not set")
        return os.environ[name]

    return _PLACEHOLDER.sub(sub, value)
