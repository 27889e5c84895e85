"""ML: the demand model (MLflow), the champion's daily forecast, and daily drift monitoring."""

import base64
import datetime as dt
import json
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from assets.partitions import daily
from data_quality import gx
from pipelines import delta, monitoring, tracking
from pipelines.config import LakeLocation, load_ml_settings
from pipelines.schemas import FEATURE_KEYS, FORECAST_SCHEMA, TARGET
from resources.lake import LakeResource
from resources.mlflow import MLflowResource

FEATURES = "demand_features"
FORECAST = "demand_forecast"
DRIFT = "feature_drift"
TRIGGER_TAG = "lakehouse/trigger"
REASON_TAG = "lakehouse/drift_reason"
SOURCE_TAG = "lakehouse/drift_partition"


class DemandModelConfig(dg.Config):
    """Training options; unset values come from the ``ml:`` section of lakehouse.yaml."""

    window_days: int | None = Field(default=None, description="Training days before holdout.")
    holdout_days: int | None = Field(default=None, description="Days in the time holdout.")
    promotion_margin: float | None = Field(
        default=None, description="Relative improvement over the champion needed to promote."
    )
    end_date: str | None = Field(
        default=None, description="Last holdout day (YYYY-MM-DD); default the newest date."
    )
    features_version: int | None = Field(
        default=None,
        description="Delta version of demand_features to read (default: the latest); with "
        "end_date and the window, a past model's lineage params retrain it on exactly its data.",
    )
    max_iter: int | None = Field(default=None, description="Boosting iterations.")
    learning_rate: float | None = Field(default=None, description="Boosting learning rate.")


class FeatureDriftConfig(dg.Config):
    """Drift thresholds; unset values come from the ``ml:`` section of lakehouse.yaml."""

    alpha: float | None = Field(default=None, description="Family-wise test level per segment.")
    min_normed_wasserstein: float | None = Field(
        default=None, description="Effect size a numeric feature must reach."
    )
    min_drifted_features: int | None = Field(
        default=None, description="Drifted features in one segment that ask for retraining."
    )


def _read_features(
    lake: LakeResource,
    home: LakeLocation,
    day: dt.date | None = None,
    version: int | None = None,
) -> tuple[pd.DataFrame, str, int]:
    """Rows of demand_features (one day's, or all), the table URI and the version read."""
    uri = home.table_uri(FEATURES)
    opts = lake.storage_options(home)
    table = delta.open_table(uri, opts)
    if table is None:
        raise FileNotFoundError(
            f"{FEATURES} does not exist at {uri}: materialize demand_features first"
        )
    if version is not None and not 0 <= version <= table.version():
        raise ValueError(f"{FEATURES} at {uri} has versions 0..{table.version()}, not {version}")
    version = table.version() if version is None else version
    data = delta.read_partition(uri, opts, {"date": day} if day else None, version=version)
    frame = data.to_pandas()
    if day is not None and frame.empty:
        raise ValueError(f"{FEATURES} at {uri} (version {version}) has no rows for {day}")
    if not frame.empty:
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
    return frame, uri, version


@dg.asset(
    deps=[FEATURES],
    group_name="ml",
    kinds={"mlflow", "scikitlearn"},
    check_specs=[gx.check_spec("demand_model")],
)
def demand_model(
    context: dg.AssetExecutionContext,
    config: DemandModelConfig,
    lake: LakeResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    """Demand forecaster trained on a window of demand_features, registered and gated in MLflow."""
    settings = load_ml_settings()
    overrides = {
        k: v
        for k, v in {
            "training_window_days": config.window_days,
            "holdout_days": config.holdout_days,
            "promotion_margin": config.promotion_margin,
        }.items()
        if v is not None
    }
    settings = type(settings)(**{**settings.__dict__, **overrides})
    params = {
        k: v
        for k, v in {"max_iter": config.max_iter, "learning_rate": config.learning_rate}.items()
        if v is not None
    }
    home = lake.config().home
    features, uri, version = _read_features(lake, home, version=config.features_version)
    trigger = {
        k.removeprefix("lakehouse/"): v
        for k, v in context.run.tags.items()
        if k.startswith("lakehouse/")
    }
    outcome = tracking.train_and_register(
        mlflow.tracking(),
        features,
        [tracking.Lineage(FEATURES, uri, version, len(features))],
        settings,
        params=params,
        end=dt.date.fromisoformat(config.end_date) if config.end_date else None,
        trigger=trigger,
    )
    context.log.info(f"model v{outcome.version}: {outcome.reason}")
    check = gx.check_result("demand_model", gx.validate("demand_model", outcome.metrics_frame()))
    m = outcome.metrics
    return dg.MaterializeResult(
        metadata={
            "model_name": outcome.model_name,
            "model_version": outcome.version,
            "mlflow_run_id": outcome.run_id,
            "promoted": outcome.promoted,
            "promotion_reason": outcome.reason,
            "champion_version": outcome.champion_version,
            "holdout_wape": m["challenger"]["wape"],
            "holdout_mae": m["challenger"]["mae"],
            "holdout_rmse": m["challenger"]["rmse"],
            "baseline_wape": m["baseline"]["wape"],
            "champion_wape": m["champion"]["wape"] if "champion" in m else None,
            "lineage": dg.MetadataValue.json(
                [{"table": x.table, "uri": x.uri, "version": x.version} for x in outcome.lineage]
            ),
            "table_uri": uri,
            "delta_version": version,
            "window": dg.MetadataValue.json(outcome.window.as_params()),
            "trigger": dg.MetadataValue.json(outcome.trigger),
            "dagster/row_count": len(features),
        },
        check_results=[check],
    )


def _day(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


@dg.asset(
    deps=[demand_model, FEATURES],
    partitions_def=daily,
    group_name="ml",
    kinds={"mlflow", "delta"},
    check_specs=[gx.check_spec(FORECAST)],
)
def demand_forecast(
    context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MLflowResource
) -> dg.MaterializeResult:
    """The champion model's forecast for each store and SKU of the day, with its version."""
    day = _day(context)
    home = lake.config().home
    features, uri, version = _read_features(lake, home, day)
    track = mlflow.tracking()
    predictions, model_version = tracking.score_with_champion(track, features)
    out = pa.Table.from_pandas(
        features[list(FEATURE_KEYS)].assign(
            prediction=predictions, model_name=track.model_name, model_version=model_version
        )[FORECAST_SCHEMA.names],
        schema=FORECAST_SCHEMA,
        preserve_index=False,
    )
    written = lake.write_partition(home, FORECAST, out, {"date": day}, partition_by=["date"])
    check = gx.check_result(FORECAST, gx.validate(FORECAST, out, {"expected_rows": len(features)}))
    return dg.MaterializeResult(
        metadata={
            "model_name": track.model_name,
            "model_version": model_version,
            "table_uri": home.table_uri(FORECAST),
            "delta_version": written,
            "features_uri": uri,
            "features_version": version,
            "mean_prediction": float(np.mean(predictions)) if len(predictions) else 0.0,
            "dagster/row_count": out.num_rows,
        },
        check_results=[check],
    )


def _forecast_for(
    lake: LakeResource, home: LakeLocation, day: dt.date, model_version: str
) -> pd.DataFrame | None:
    data = delta.read_partition(home.table_uri(FORECAST), lake.storage_options(home), {"date": day})
    if data.num_rows == 0:
        return None
    frame = data.to_pandas()
    frame = frame[frame["model_version"] == model_version]
    return None if frame.empty else frame


@dg.asset(
    deps=[demand_forecast, FEATURES],
    partitions_def=daily,
    group_name="ml",
    kinds={"python", "delta"},
    check_specs=[gx.check_spec(DRIFT)],
)
def feature_drift(
    context: dg.AssetExecutionContext,
    config: FeatureDriftConfig,
    lake: LakeResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    """Per-feature and prediction drift of the day against the champion's training reference."""
    settings = load_ml_settings()
    drift_settings = settings.drift
    if config.alpha is not None or config.min_normed_wasserstein is not None:
        drift_settings = type(drift_settings)(
            **{
                **drift_settings.__dict__,
                **({"alpha": config.alpha} if config.alpha is not None else {}),
                **(
                    {"min_normed_wasserstein": config.min_normed_wasserstein}
                    if config.min_normed_wasserstein is not None
                    else {}
                ),
            }
        )
    retrain_settings = settings.retrain
    if config.min_drifted_features is not None:
        retrain_settings = type(retrain_settings)(
            **{**retrain_settings.__dict__, "min_drifted_features": config.min_drifted_features}
        )
    day = _day(context)
    home = lake.config().home
    features, uri, version = _read_features(lake, home, day)
    track = mlflow.tracking()
    champion = track.version_by_alias(tracking.CHAMPION)
    if champion is None:
        raise LookupError(f"model {track.model_name!r} has no champion: train demand_model first")
    model_version = str(champion.version)
    reference = track.load_reference(champion)
    forecast = _forecast_for(lake, home, day, model_version)
    if forecast is not None:
        keys = [k for k in FEATURE_KEYS if k != "date"]
        merged = features.merge(forecast[[*keys, "prediction"]], on=keys, how="left")
        predictions = merged["prediction"].to_numpy(dtype=np.float64)
    else:
        predictions, _ = tracking.score_with_champion(track, features)
    report, how = monitoring.day_drift(reference, features, drift_settings, predictions)
    error = monitoring.forecast_error(features[TARGET].to_numpy(dtype=np.float64), predictions)
    verdict = monitoring.retrain_verdict(report, retrain_settings)
    table = monitoring.to_table(report, day, model_version, error)
    written = lake.write_partition(home, DRIFT, table, {"date": day}, partition_by=["date"])
    png = monitoring.plot_png(
        report,
        f"feature drift {day} vs model v{model_version} ({how})",
        drift_settings.min_normed_wasserstein,
    )
    plot_path = f"reports/{DRIFT}/{day.isoformat()}.png"
    lake.storage(home).put(plot_path, png)
    check = gx.check_result(DRIFT, gx.validate(DRIFT, table))
    numeric = report[report["kind"] != "categorical"]
    metadata: dict[str, Any] = {
        "drift_detected": bool(report["drifted"].any()),
        "retrain_recommended": verdict.retrain,
        "drift_reason": verdict.reason,
        "drifted": dg.MetadataValue.json(verdict.drifted),
        "max_normed_wasserstein": float(numeric["normed_wasserstein"].max())
        if len(numeric)
        else 0.0,
        "model_version": model_version,
        "reference": how,
        "features_uri": uri,
        "features_version": version,
        "table_uri": home.table_uri(DRIFT),
        "delta_version": written,
        "plot_uri": home.uri(plot_path),
        "plot": dg.MetadataValue.md(
            f"![feature drift {day}](data:image/png;base64,{base64.b64encode(png).decode()})"
        ),
        "summary": dg.MetadataValue.md(
            "\n".join(f"- {line}" for line in monitoring.summary_lines(report))
        ),
        "dagster/row_count": table.num_rows,
    }
    if error:
        metadata.update({f"forecast_{k}": v for k, v in error.items() if k != "rows"})
    context.log.info(f"drift {day}: {verdict.reason}; {json.dumps(verdict.drifted)}")
    return dg.MaterializeResult(metadata=metadata, check_results=[check])
