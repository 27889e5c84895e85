"""MLflow tracking and registry for the demand forecaster: train, log, register, promote, load.

Free of Dagster. ``mlflow`` is imported inside the functions: loading the code location must
not pay for it. Every training run records its lineage (each input table's URI and the exact
Delta version read) as run parameters and tags, as an MLflow dataset input and as
``lineage.json``, so any model can be retrained on exactly its data. The registry holds the
aliases ``challenger`` (the newest version) and ``champion`` (the one that scores), and every
version carries the promotion decision and its reason as tags.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines import train as training
from pipelines.config import MLSettings

CHAMPION = "champion"
CHALLENGER = "challenger"
REFERENCE_ARTIFACT = "reference/reference.parquet"
# Types in our own fitted pipeline that skops (MLflow 3's safe sklearn format) asks us to vouch
# for: we wrote these files ourselves, so they are trusted; nothing else is.
SKOPS_TRUSTED = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


@dataclass(frozen=True)
class Lineage:
    """One input table as read: URI and the exact Delta version."""

    table: str
    uri: str
    version: int
    rows: int


@dataclass(frozen=True)
class Tracking:
    """Where MLflow lives and what the model is called."""

    tracking_uri: str
    experiment: str = "demand_forecast"
    model_name: str = "demand_forecaster"
    registry_uri: str | None = None
    artifact_location: str | None = None

    def activate(self) -> str:
        """Point the MLflow client here; create the experiment if needed; its id."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)
        exp = mlflow.get_experiment_by_name(self.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        return str(
            mlflow.create_experiment(self.experiment, artifact_location=self.artifact_location)
        )

    def client(self) -> Any:
        """An ``MlflowClient`` on this tracking and registry URI."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def version_by_alias(self, alias: str) -> Any | None:
        """The model version holding ``alias``, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return None
            raise

    def load_model(self, version: str) -> Any:
        """The sklearn model of a registered version."""
        import mlflow

        self.activate()
        return mlflow.sklearn.load_model(f"models:/{self.model_name}/{version}")

    def load_reference(self, version: Any) -> pd.DataFrame:
        """The training reference sample stored with a model version."""
        import mlflow

        self.activate()
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp
            )
            return pd.read_parquet(path)


@dataclass(frozen=True)
class TrainingOutcome:
    """What a training run produced and decided."""

    run_id: str
    model_name: str
    version: str
    promoted: bool
    reason: str
    champion_version: str
    window: training.Window
    metrics: dict[str, dict[str, float]]
    lineage: list[Lineage]
    trigger: dict[str, str] = field(default_factory=dict)

    def metrics_frame(self) -> pd.DataFrame:
        """Holdout metrics per candidate (challenger, baseline, champion) with lineage."""
        rows = []
        lin = self.lineage[0] if self.lineage else None
        for candidate, m in self.metrics.items():
            rows.append(
                {
                    "candidate": candidate,
                    **{k: m.get(k) for k in training.METRICS},
                    "table_uri": lin.uri if lin else None,
                    "table_version": lin.version if lin else None,
                }
            )
        return pd.DataFrame(rows)


def _dataset(sample: pd.DataFrame, lin: Lineage) -> Any:
    """An MLflow dataset named table@vN whose source is the table URI where MLflow knows it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name = f"{lin.table}@v{lin.version}"
    try:
        return mlflow.data.from_pandas(sample, source=lin.uri, name=name)  # type: ignore[attr-defined]
    except MlflowException:
        # schemes MLflow has no resolver for (az://, emulator URLs): the URI stays in the
        # input's tags and in the run's lineage params, which is what retraining reads
        return mlflow.data.from_pandas(sample, name=name)  # type: ignore[attr-defined]


def train_and_register(
    tracking: Tracking,
    features: pd.DataFrame,
    lineage: list[Lineage],
    settings: MLSettings,
    *,
    params: Mapping[str, Any] | None = None,
    end: dt.date | None = None,
    trigger: Mapping[str, str] | None = None,
) -> TrainingOutcome:
    """Fit on the window, compare with baseline and champion on one holdout, log, register.

    The new version always gets alias ``challenger``; it gets ``champion`` only when
    :func:`pipelines.train.decide_promotion` says so. ``trigger`` (why this run happened, for
    example which drift) becomes run tags and parameters.
    """
    import mlflow
    from mlflow.models import infer_signature

    training.check_columns(features, lineage[0].uri if lineage else "demand_features")
    dates = pd.to_datetime(features["date"]).dt.date
    window = training.plan_window(
        list(dates.unique()),
        settings.training_window_days,
        settings.holdout_days,
        end,
        source=lineage[0].uri if lineage else "demand_features",
    )
    train, holdout = training.split(features, window)
    model = training.fit(train, params)
    y = holdout[training.TARGET].to_numpy(dtype=np.float64)
    scores = {
        "challenger": training.metrics(y, training.predict(model, holdout)),
        "baseline": training.metrics(y, training.seasonal_naive(holdout)),
    }
    experiment_id = tracking.activate()
    champion = tracking.version_by_alias(CHAMPION)
    champion_note = ""
    if champion is not None:
        try:
            scores["champion"] = training.metrics(
                y, training.predict(tracking.load_model(champion.version), holdout)
            )
        except Exception as exc:  # a champion that cannot score today's features is replaced
            champion_note = f"champion v{champion.version} cannot score the holdout: {exc}"
    decision = training.decide_promotion(
        scores["challenger"],
        scores["baseline"],
        scores.get("champion"),
        metric=settings.promotion_metric,
        margin=settings.promotion_margin,
        champion_version=None if champion is None else str(champion.version),
    )
    reason = f"{decision.reason} ({champion_note})" if champion_note else decision.reason
    trigger = {k: str(v) for k, v in (trigger or {}).items()}
    used_params = {**training.DEFAULT_PARAMS, **(params or {})}

    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"demand_model {window.holdout_end}",
        tags={f"trigger.{k}": v for k, v in trigger.items()},
    ) as run:
        mlflow.log_params({f"model.{k}": v for k, v in used_params.items()})
        mlflow.log_params(
            {
                **window.as_params(),
                "train_rows": len(train),
                "holdout_rows": len(holdout),
                "features": ",".join(training.MODEL_INPUTS),
                "baseline": f"seasonal_naive({training.BASELINE})",
                "promotion_metric": settings.promotion_metric,
                "promotion_margin": settings.promotion_margin,
                **{f"trigger.{k}": v[:500] for k, v in trigger.items()},
            }
        )
        for lin in lineage:
            mlflow.log_params(
                {f"lineage.{lin.table}.uri": lin.uri, f"lineage.{lin.table}.version": lin.version}
            )
            mlflow.set_tags(
                {f"lineage.{lin.table}.uri": lin.uri, f"lineage.{lin.table}.version": lin.version}
            )
            mlflow.log_input(
                _dataset(train.head(1000), lin),
                context="training",
                tags={"delta_version": str(lin.version), "uri": lin.uri},
            )
        mlflow.log_dict(
            {"inputs": [asdict(lin) for lin in lineage], "window": window.as_params()},
            "lineage.json",
        )
        for candidate, m in scores.items():
            mlflow.log_metrics({f"{candidate}_{k}": v for k, v in m.items() if np.isfinite(v)})
        inputs = training.model_inputs(holdout.head(5))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(inputs, training.predict(model, inputs)),
            input_example=inputs,
            registered_model_name=tracking.model_name,
            skops_trusted_types=SKOPS_TRUSTED,
        )
        ref = training.reference_sample(
            train, training.predict(model, train), settings.reference_rows
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "reference.parquet"
            ref.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="reference")
        mlflow.set_tags(
            {"promotion.decision": "promoted" if decision.promote else "rejected",
             "promotion.reason": reason[:5000]}
        )  # fmt: skip
        run_id = run.info.run_id

    version = str(info.registered_model_version)
    client = tracking.client()
    client.set_registered_model_alias(tracking.model_name, CHALLENGER, version)
    if decision.promote:
        client.set_registered_model_alias(tracking.model_name, CHAMPION, version)
    tags = {
        "promotion.decision": "promoted" if decision.promote else "rejected",
        "promotion.reason": reason[:5000],
        "promotion.metric": settings.promotion_metric,
        "promotion.margin": str(settings.promotion_margin),
        "promotion.compared_with": decision.champion_version or "none",
        **{f"holdout.{c}.{k}": f"{v:.6g}" for c, m in scores.items() for k, v in m.items()},
        **{f"lineage.{lin.table}.uri": lin.uri for lin in lineage},
        **{f"lineage.{lin.table}.version": str(lin.version) for lin in lineage},
        **{f"trigger.{k}": v[:500] for k, v in trigger.items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(tracking.model_name, version, key, value)
    champion_now = version if decision.promote else str(champion.version) if champion else ""
    return TrainingOutcome(
        run_id=run_id,
        model_name=tracking.model_name,
        version=version,
        promoted=decision.promote,
        reason=reason,
        champion_version=champion_now,
        window=window,
        metrics=scores,
        lineage=lineage,
        trigger=trigger,
    )


def champion_summary(tracking: Tracking) -> dict[str, Any]:
    """Which version is champion and why (for the demo summary and the UI)."""
    champ = tracking.version_by_alias(CHAMPION)
    challenger = tracking.version_by_alias(CHALLENGER)
    if champ is None:
        return {"model": tracking.model_name, "champion": None, "why": "no champion registered"}
    tags = dict(champ.tags or {})
    out: dict[str, Any] = {
        "model": tracking.model_name,
        "champion": str(champ.version),
        "why": tags.get("promotion.reason", ""),
        "holdout_wape": tags.get("holdout.challenger.wape"),
        "trained_on": {
            k[len("lineage.") :]: v for k, v in tags.items() if k.startswith("lineage.")
        },
        "trigger": {k[len("trigger.") :]: v for k, v in tags.items() if k.startswith("trigger.")},
    }
    if challenger is not None and str(challenger.version) != str(champ.version):
        ctags = dict(challenger.tags or {})
        out["latest_challenger"] = {
            "version": str(challenger.version),
            "decision": ctags.get("promotion.decision"),
            "why": ctags.get("promotion.reason"),
        }
    return out


def score_with_champion(tracking: Tracking, features: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Forecasts of the champion for feature rows, and the champion's version."""
    champ = tracking.version_by_alias(CHAMPION)
    if champ is None:
        raise LookupError(
            f"model {tracking.model_name!r} at {tracking.tracking_uri} has no 'champion' "
            "alias yet: materialize demand_model first"
        )
    model = tracking.load_model(str(champ.version))
    return training.predict(model, features), str(champ.version)
