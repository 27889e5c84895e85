"""The MLflow resource: where runs and registered models live, for training and scoring."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from pipelines.lake.config import lake_home, load_ml_settings
from pipelines.ml.tracking import Tracking


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry: a local SQLite store by default, any server by config."""

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default sqlite under LAKEHOUSE_HOME/.mlflow.",
    )
    registry_uri: str | None = Field(default=None, description="Registry URI (default: tracking).")
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root of a new experiment; default LAKEHOUSE_HOME/.mlflow/artifacts "
        "for the local store, the server's default otherwise.",
    )
    experiment: str | None = Field(default=None, description="Experiment (default: ml.experiment).")
    model_name: str | None = Field(
        default=None, description="Registered model name (default: ml.model_name)."
    )
    tracking_token: str | None = Field(
        default=None, description="Bearer token of a remote tracking server (EnvVar)."
    )

    def tracking(self) -> Tracking:
        """The tracking location; the local store's folder is created on first use."""
        settings = load_ml_settings()
        uri, artifacts = self.tracking_uri, self.artifact_location
        if not uri:
            folder = lake_home() / ".mlflow"
            folder.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{folder / 'mlflow.db'}"
            artifacts = artifacts or str(folder / "artifacts")
        return Tracking(
            tracking_uri=uri,
            experiment=self.experiment or settings.experiment,
            model_name=self.model_name or settings.model_name,
            registry_uri=self.registry_uri,
            artifact_location=artifacts,
            # set only inside Tracking.session (MLflow's REST client reads it from there)
            token=self.tracking_token or None,
        )
