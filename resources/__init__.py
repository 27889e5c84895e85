"""One set of resources per environment, picked by ``LAKEHOUSE_ENV``."""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines.config import ENVIRONMENTS, ConfigError
from resources.lake import LakeResource
from resources.mlflow import MLflowResource
from resources.pii import PiiKeyResource
from resources.spark import SparkResource

__all__ = ["LakeResource", "MLflowResource", "PiiKeyResource", "SparkResource", "resources_for"]


def resources_for(environment: str) -> dict[str, Any]:
    """The resources of an environment; secrets are EnvVars Dagster resolves at launch."""
    pii = PiiKeyResource(key=dg.EnvVar("LAKEHOUSE_PII_KEY"))
    if environment == "local":
        return {
            "lake": LakeResource(environment="local"),
            "spark": SparkResource(),
            "mlflow": MLflowResource(),
            "pii": pii,
        }
    if environment == "emulated":
        return {
            "lake": LakeResource(environment="emulated"),
            "spark": SparkResource(),
            # a local MLflow server on 127.0.0.1 (tests/integration starts one)
            "mlflow": MLflowResource(tracking_uri=dg.EnvVar("LAKEHOUSE_MLFLOW_TRACKING_URI")),
            "pii": pii,
        }
    if environment == "prod":
        return {
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
    raise ConfigError(f"environment {environment!r} is not one of {', '.join(ENVIRONMENTS)}")
