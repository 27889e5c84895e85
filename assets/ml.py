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

from assets.factory import checked_asset
from assets.health import rounded
from assets.partitions import Partitions
from data_quality import gx
from data_quality.suites import Suite, Suites
from pipelines.lake import delta, tables
from pipelines.lake.config import DriftSettings, LakeLocation, MLSettings, RetrainSettings
from pipelines.lake.schemas import FEATURE_KEYS, FORECAST_SCHEMA, TARGET
from pipelines.ml import monitoring, tracking
from pipelines.ml import train as training
from pipelines.ml.lineage import upstream_lineage
from resources.lake import LakeResource
from resources.mlflow import MLflowResource

FEATURES = tables.FEATURES.name
FORECAST = tables.FORECAST.name
DRIFT = tables.DRIFT.name
MODEL = "demand_model"
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
    days: tuple[dt.date, dt.date] | None = None,
    version: int | None = None,
) -> tuple[pd.DataFrame, str, int]:
    """Rows of demand_features, the table URI and the version read.

    ``days`` (first, last): only those dates, else every row. A range reads only its
    partitions' files (and counts their bytes as the lake's reads).
    """
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
    if days is None:
        data = delta.read_partition(uri, opts, None, version=version)
    else:
        data = delta.read_between(uri, opts, "date", days[0], days[1], version=version)
    frame = data.to_pandas()
    if days is not None and days[0] == days[1] and frame.empty:
        raise ValueError(f"{FEATURES} at {uri} (version {version}) has no rows for {days[0]}")
    if not frame.empty:
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
        # one order whatever the files' order: a retrain on the same window fits the same rows
        frame = frame.sort_values(list(FEATURE_KEYS), ignore_index=True)
    return frame, uri, version


def _training_rows(
    lake: LakeResource, home: LakeLocation, settings: MLSettings, config: "DemandModelConfig"
) -> tuple[pd.DataFrame, str, int, training.Window | None]:
    """The features of the training window only: planned on the dates in the log, then read.

    The window's dates come from the table's partitions (no data file opened), so a retrain
    reads its window and holdout whatever the history. A table not partitioned by date is
    read whole and the window planned on its rows.
    """
    uri = home.table_uri(FEATURES)
    version = config.features_version
    dates = delta.partition_dates(uri, lake.storage_options(home), "date", version)
    if not dates:
        frame, uri, read_version = _read_features(lake, home, version=version)
        return frame, uri, read_version, None
    end = dt.date.fromisoformat(config.end_date) if config.end_date else None
    window = training.plan_window(
        dates, settings.training_window_days, settings.holdout_days, end, source=uri
    )
    frame, uri, read_version = _read_features(
        lake, home, (window.train_start, window.holdout_end), version
    )
    return frame, uri, read_version, window


def training_settings(settings: MLSettings, config: DemandModelConfig) -> MLSettings:
    """The ``ml:`` settings with a run's overrides applied."""
    overrides: dict[str, Any] = {
        "training_window_days": config.window_days,
        "holdout_days": config.holdout_days,
        "promotion_margin": config.promotion_margin,
    }
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def drift_settings(
    settings: MLSettings, config: FeatureDriftConfig
) -> tuple[DriftSettings, RetrainSettings]:
    """The drift and retraining settings with a run's overrides applied."""
    drift: dict[str, Any] = {
        "alpha": config.alpha,
        "min_normed_wasserstein": config.min_normed_wasserstein,
    }
    retrain: dict[str, Any] = {"min_drifted_features": config.min_drifted_features}
    return (
        settings.drift.model_copy(update={k: v for k, v in drift.items() if v is not None}),
        settings.retrain.model_copy(update={k: v for k, v in retrain.items() if v is not None}),
    )


def _model_metadata(outcome: tracking.TrainingOutcome, uri: str, version: int) -> dict[str, Any]:
    m = outcome.metrics
    return {
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
    }


def build_model(suite: Suite) -> dg.AssetsDefinition:
    """The demand model asset: train, register in MLflow, gate the promotion."""

    @checked_asset(MODEL, suite, group="ml", kinds={"mlflow", "scikitlearn"}, deps=[FEATURES])
    def demand_model(
        context: dg.AssetExecutionContext,
        config: DemandModelConfig,
        lake: LakeResource,
        mlflow: MLflowResource,
    ) -> dg.MaterializeResult:
        """Demand forecaster trained on a window of demand_features, registered and gated."""
        params = {"max_iter": config.max_iter, "learning_rate": config.learning_rate}
        settings = training_settings(lake.config().ml, config)
        features, uri, version, window = _training_rows(lake, lake.config().home, settings, config)
        trigger = {
            k.removeprefix("lakehouse/"): v
            for k, v in context.run.tags.items()
            if k.startswith("lakehouse/")
        }
        outcome = tracking.train_and_register(
            mlflow.tracking(),
            features,
            [
                tracking.Lineage(FEATURES, uri, version, len(features)),
                # the gold, silver and bronze versions behind them: an erasure costing one
                # marks this model (docs/privacy.md)
                *upstream_lineage(lake.config(), uri, version, lake.storage_options),
            ],
            settings,
            params={k: v for k, v in params.items() if v is not None},
            end=dt.date.fromisoformat(config.end_date) if config.end_date else None,
            trigger=trigger,
            window=window,
        )
        context.log.info(f"model v{outcome.version}: {outcome.reason}")
        return dg.MaterializeResult(
            metadata={**_model_metadata(outcome, uri, version), "dagster/row_count": len(features)},
            check_results=[gx.check(suite, outcome.metrics_frame())],
        )

    return demand_model


def _day(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


def build_forecast(parts: Partitions, suite: Suite) -> dg.AssetsDefinition:
    """The daily forecast asset: the champion's predictions for each feature row."""

    @checked_asset(
        FORECAST,
        suite,
        group="ml",
        kinds={"mlflow", "delta"},
        deps=[MODEL, FEATURES],
        partitions_def=parts.daily,
    )
    def demand_forecast(
        context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MLflowResource
    ) -> dg.MaterializeResult:
        """The champion model's forecast for each store and SKU of the day, with its version."""
        day = _day(context)
        home = lake.config().home
        features, uri, version = _read_features(lake, home, (day, day))
        track = mlflow.tracking()
        predictions, model_version = tracking.score_with_champion(track, features)
        out = pa.Table.from_pandas(
            features[list(FEATURE_KEYS)].assign(
                prediction=predictions, model_name=track.model_name, model_version=model_version
            )[FORECAST_SCHEMA.names],
            schema=FORECAST_SCHEMA,
            preserve_index=False,
        )
        written = lake.write_partition(
            home, FORECAST, out, {"date": day}, partition_by=list(tables.FORECAST.partition_by)
        )
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
            check_results=[gx.check(suite, out, {"expected_rows": len(features)})],
        )

    return demand_forecast


def _forecast_for(
    lake: LakeResource, home: LakeLocation, day: dt.date, model_version: str
) -> pd.DataFrame | None:
    data = delta.read_partition(home.table_uri(FORECAST), lake.storage_options(home), {"date": day})
    if data.num_rows == 0:
        return None
    frame = data.to_pandas()
    frame = frame[frame["model_version"] == model_version]
    return None if frame.empty else frame


def day_predictions(
    lake: LakeResource,
    home: LakeLocation,
    track: tracking.Tracking,
    day: dt.date,
    features: pd.DataFrame,
    model_version: str,
) -> np.ndarray:
    """The champion's predictions of a day: its stored forecast, else scored now."""
    forecast = _forecast_for(lake, home, day, model_version)
    if forecast is None:
        return tracking.score_with_champion(track, features)[0]
    keys = [k for k in FEATURE_KEYS if k != "date"]
    merged = features.merge(forecast[[*keys, "prediction"]], on=keys, how="left")
    return merged["prediction"].to_numpy(dtype=np.float64)


def _publish_plot(
    lake: LakeResource, home: LakeLocation, day: dt.date, png: bytes
) -> dict[str, Any]:
    """Store the drift heatmap beside the tables; its URI and an inline copy for the UI."""
    path = f"reports/{DRIFT}/{day.isoformat()}.png"
    lake.storage(home).put(path, png)
    return {
        "plot_uri": home.uri(path),
        "plot": dg.MetadataValue.md(
            f"![feature drift {day}](data:image/png;base64,{base64.b64encode(png).decode()})"
        ),
    }


def _drift_metadata(report: pd.DataFrame, verdict: Any, table: pa.Table) -> dict[str, Any]:
    numeric = report[report["kind"] != "categorical"]
    return {
        "drift_detected": bool(report["drifted"].any()),
        "retrain_recommended": verdict.retrain,
        "drift_reason": verdict.reason,
        "drifted": dg.MetadataValue.json(verdict.drifted),
        "max_normed_wasserstein": rounded(float(numeric["normed_wasserstein"].max()))
        if len(numeric)
        else 0.0,
        "summary": dg.MetadataValue.md(
            "\n".join(f"- {line}" for line in monitoring.summary_lines(report))
        ),
        "dagster/row_count": table.num_rows,
    }


def build_drift(parts: Partitions, suite: Suite) -> dg.AssetsDefinition:
    """The daily drift asset: features and predictions against the champion's reference."""

    @checked_asset(
        DRIFT,
        suite,
        group="ml",
        kinds={"python", "delta"},
        deps=[FORECAST, FEATURES],
        partitions_def=parts.daily,
    )
    def feature_drift(
        context: dg.AssetExecutionContext,
        config: FeatureDriftConfig,
        lake: LakeResource,
        mlflow: MLflowResource,
    ) -> dg.MaterializeResult:
        """Per-feature and prediction drift of the day against the champion's training data."""
        drift_cfg, retrain_cfg = drift_settings(lake.config().ml, config)
        day = _day(context)
        home = lake.config().home
        features, uri, version = _read_features(lake, home, (day, day))
        track = mlflow.tracking()
        champion = track.version_by_alias(tracking.CHAMPION)
        if champion is None:
            raise LookupError(f"model {track.model_name!r} has no champion: train {MODEL} first")
        model_version = str(champion.version)
        predictions = day_predictions(lake, home, track, day, features, model_version)
        report, how = monitoring.day_drift(
            track.load_reference(champion), features, drift_cfg, predictions
        )
        error = monitoring.forecast_error(features[TARGET].to_numpy(dtype=np.float64), predictions)
        verdict = monitoring.retrain_verdict(report, retrain_cfg)
        table = monitoring.to_table(report, day, model_version, error)
        written = lake.write_partition(
            home, DRIFT, table, {"date": day}, partition_by=list(tables.DRIFT.partition_by)
        )
        png = monitoring.plot_png(
            report,
            f"feature drift {day} vs model v{model_version} ({how})",
            drift_cfg.min_normed_wasserstein,
        )
        context.log.info(f"drift {day}: {verdict.reason}; {json.dumps(verdict.drifted)}")
        return dg.MaterializeResult(
            metadata={
                **_drift_metadata(report, verdict, table),
                **_publish_plot(lake, home, day, png),
                **{f"forecast_{k}": rounded(v) for k, v in (error or {}).items() if k != "rows"},
                "model_version": model_version,
                "reference": how,
                "features_uri": uri,
                "features_version": version,
                "table_uri": home.table_uri(DRIFT),
                "delta_version": written,
            },
            check_results=[gx.check(suite, table)],
        )

    return feature_drift


def build_ml_assets(parts: Partitions, suites: Suites) -> list[dg.AssetsDefinition]:
    """The model, its daily forecast and the daily drift monitoring."""
    return [
        build_model(suites[MODEL]),
        build_forecast(parts, suites[FORECAST]),
        build_drift(parts, suites[DRIFT]),
    ]
