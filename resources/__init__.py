"""One set of resources per environment, picked by ``LAKEHOUSE_ENV``."""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines.lake.config import ENVIRONMENTS, ConfigError, load_config
from pipelines.lake.config.environment import env
from resources.databricks import DatabricksPiiKey, DatabricksResource
from resources.lake import LakeResource
from resources.mlflow import MLflowResource
from resources.pii import PiiKeyResource
from resources.spark import SparkResource, SparkStepRunner

__all__ = [
    "DatabricksResource",
    "LakeResource",
    "MLflowResource",
    "PiiKeyResource",
    "SparkResource",
    "SparkStepRunner",
    "resources_for",
]

# Optional: without it every step gets a new job cluster.
DATABRICKS_CLUSTER_VAR = "LAKEHOUSE_DATABRICKS_CLUSTER_ID"


def resources_for(environment: str, spark_backend: str | None = None) -> dict[str, Any]:
    """The resources of an environment; secrets are EnvVars Dagster resolves at launch.

    ``spark_backend`` (``session`` or ``databricks``) defaults to the environment's
    ``spark.backend`` in lakehouse.yaml; either way the Spark steps' resource is ``spark``.
    """
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"environment {environment!r} is not one of {', '.join(ENVIRONMENTS)}")
    backend = spark_backend or load_config(environment).spark_backend
    pii = PiiKeyResource(key=dg.EnvVar("LAKEHOUSE_PII_KEY"))
    resources: dict[str, Any]
    if environment == "local":
        resources = {
            "lake": LakeResource(environment="local"),
            "spark": SparkResource(),
            "mlflow": MLflowResource(),
            "pii": pii,
        }
    elif environment == "emulated":
        resources = {
            "lake": LakeResource(environment="emulated"),
            "spark": SparkResource(),
            # a local MLflow server on 127.0.0.1 (tests/integration starts one)
            "mlflow": MLflowResource(tracking_uri=dg.EnvVar("LAKEHOUSE_MLFLOW_TRACKING_URI")),
            "pii": pii,
        }
    else:
        resources = {
            "lake": LakeResource(
                environment="prod",
                aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
                azure_storage_account_key=dg.EnvVar("AZURE_STORAGE_ACCOUNT_KEY"),
                google_service_account=dg.EnvVar("GOOGLE_APPLICATION_CREDENTIALS"),
            ),
            "spark": SparkResource(master=dg.EnvVar("LAKEHOUSE_SPARK_MASTER")),
            "mlflow": MLflowResource(
                tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"),
                tracking_token=dg.EnvVar("MLFLOW_TRACKING_TOKEN"),
            ),
            "pii": pii,
        }
    if backend == "databricks":
        resources.update(spark=databricks_runner(), pii=DatabricksPiiKey())
    return resources


def databricks_runner() -> SparkStepRunner:
    """The Databricks backend of the Spark steps, configured from environment variables.

    The cluster id is optional, and an EnvVar cannot be: whether it is set is looked at when
    the code location is built (not at import); its value is resolved at launch like the rest.
    """
    return DatabricksResource(
        host=dg.EnvVar("DATABRICKS_HOST"),
        token=dg.EnvVar("DATABRICKS_TOKEN"),
        python_file=dg.EnvVar("LAKEHOUSE_DATABRICKS_PYTHON_FILE"),
        wheel=dg.EnvVar("LAKEHOUSE_DATABRICKS_WHEEL"),
        existing_cluster_id=(
            dg.EnvVar(DATABRICKS_CLUSTER_VAR) if env(DATABRICKS_CLUSTER_VAR) else None
        ),
    )
