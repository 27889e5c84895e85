"""Training the demand forecaster: window, time holdout, baseline, metrics, fit, promotion gate.

Free of Dagster and of MLflow (``pipelines.ml.tracking`` logs and registers). The holdout is the
last ``holdout_days`` dates of the window; training uses the ``window_days`` dates before it, so
no row of the holdout's days is seen in training. The baseline is seasonal-naive: the quantity
sold on the same weekday a week before (``qty_lag_7``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.lake.schemas import FEATURE_CATEGORICAL, FEATURE_NUMERIC, TARGET
from pipelines.lake.tables import FEATURES

MODEL_INPUTS = [*FEATURE_CATEGORICAL, *FEATURE_NUMERIC]
BASELINE = "qty_lag_7"
METRICS = ("mae", "rmse", "wape")


# The features' longest look-back (lag and window of 28 calendar days).
WARMUP_DAYS = 28


class TrainingError(ValueError):
    """The data cannot train a model; the message says what is missing and where."""


@dataclass(frozen=True)
class Window:
    """Training and holdout dates (inclusive)."""

    train_start: dt.date
    train_end: dt.date
    holdout_start: dt.date
    holdout_end: dt.date

    def as_params(self) -> dict[str, str]:
        """The window as MLflow parameters."""
        return {k: v.isoformat() for k, v in self.__dict__.items()}


def plan_window(
    dates: Sequence[dt.date],
    window_days: int,
    holdout_days: int,
    end: dt.date | None = None,
    source: str = FEATURES.name,
    warmup_days: int = WARMUP_DAYS,
) -> Window:
    """The holdout ends at ``end`` (default: the last date); training is the days before it.

    The first ``warmup_days`` of the data are never trained on: their lags and rolling windows
    reach back before the first event, so they look unlike any later day (and a drift
    reference built from them would flag every later day).
    """
    available = sorted(d for d in set(dates) if end is None or d <= end)
    if not available:
        raise TrainingError(f"{source} has no rows{f' up to {end}' if end else ''}")
    last = available[-1]
    holdout_start = last - dt.timedelta(days=holdout_days - 1)
    train_end = holdout_start - dt.timedelta(days=1)
    train_start = max(
        train_end - dt.timedelta(days=window_days - 1),
        available[0] + dt.timedelta(days=warmup_days),
    )
    in_train = [d for d in available if train_start <= d <= train_end]
    if len(in_train) < max(7, window_days // 4):
        raise TrainingError(
            f"{source} has {len(in_train)} day(s) between {train_start} and {train_end}; "
            f"training needs at least {max(7, window_days // 4)} before the "
            f"{holdout_days}-day holdout ending {last} (available {available[0]}..{last}; "
            f"the first {warmup_days} days are look-back warm-up)"
        )
    return Window(train_start, train_end, holdout_start, last)


def split(frame: pd.DataFrame, window: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and holdout rows of a feature frame (``date`` column of dates)."""
    dates = pd.to_datetime(frame["date"]).dt.date
    train = frame[(dates >= window.train_start) & (dates <= window.train_end)]
    holdout = frame[(dates >= window.holdout_start) & (dates <= window.holdout_end)]
    train = train[train[TARGET].notna()]
    holdout = holdout[holdout[TARGET].notna()]
    if train.empty or holdout.empty:
        raise TrainingError(f"no labelled rows in training or holdout of window {window}")
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def check_columns(frame: pd.DataFrame, source: str = FEATURES.name) -> None:
    """Fail naming the columns the model needs that the frame lacks."""
    missing = [c for c in [*MODEL_INPUTS, TARGET, "date"] if c not in frame.columns]
    if missing:
        raise TrainingError(f"{source} lacks column(s) {', '.join(missing)}")


def choose_window(
    features: pd.DataFrame,
    window_days: int,
    holdout_days: int,
    end: dt.date | None = None,
    source: str = FEATURES.name,
    window: Window | None = None,
) -> tuple[Window, pd.DataFrame, pd.DataFrame]:
    """The window over a feature frame's own dates, with its training and holdout rows.

    ``window``: planned already on the table's dates (the frame holds only its rows).
    ``source`` (the table's URI) names the data in every error.
    """
    check_columns(features, source)
    if window is None:
        dates = pd.to_datetime(features["date"]).dt.date
        window = plan_window(list(dates.unique()), window_days, holdout_days, end, source=source)
    train, holdout = split(features, window)
    return window, train, holdout


def metrics(y: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and WAPE (sum of absolute errors over sum of actuals)."""
    y = np.asarray(y, dtype=np.float64)
    err = np.asarray(yhat, dtype=np.float64) - y
    denom = float(np.abs(y).sum())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "wape": float(np.abs(err).sum() / denom) if denom > 0 else float("nan"),
    }


def seasonal_naive(frame: pd.DataFrame) -> np.ndarray:
    """The baseline forecast: what sold the same weekday a week before (0 when nothing)."""
    return frame[BASELINE].fillna(0.0).to_numpy(dtype=np.float64)


DEFAULT_PARAMS: dict[str, Any] = {
    "loss": "poisson",
    "learning_rate": 0.08,
    "max_iter": 200,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 0.0,
    "random_state": 0,
}


def build_model(params: Mapping[str, Any] | None = None) -> Any:
    """An sklearn pipeline: ordinal-encoded categoricals into HistGradientBoostingRegressor."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                list(FEATURE_CATEGORICAL),
            ),
            ("numeric", "passthrough", list(FEATURE_NUMERIC)),
        ],
        verbose_feature_names_out=False,
    )
    n_cat = len(FEATURE_CATEGORICAL)
    hgb = HistGradientBoostingRegressor(
        categorical_features=[i < n_cat for i in range(len(MODEL_INPUTS))],
        **{**DEFAULT_PARAMS, **(params or {})},
    )
    return Pipeline([("encode", encode), ("model", hgb)])


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns, in order, with stable dtypes (str categoricals, floats)."""
    out = frame[MODEL_INPUTS].copy()
    for c in FEATURE_CATEGORICAL:
        out[c] = out[c].astype(object)
    for c in FEATURE_NUMERIC:
        out[c] = out[c].astype(np.float64)
    return out


def fit(train: pd.DataFrame, params: Mapping[str, Any] | None = None) -> Any:
    """Fit the forecaster on training rows."""
    model = build_model(params)
    model.fit(model_inputs(train), train[TARGET].to_numpy(dtype=np.float64))
    return model


def predict(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Forecasts (never negative) for feature rows."""
    return np.clip(np.asarray(model.predict(model_inputs(frame)), dtype=np.float64), 0.0, None)


def holdout_metrics(model: Any, holdout: pd.DataFrame) -> dict[str, float]:
    """A fitted model's metrics on labelled holdout rows."""
    return metrics(holdout[TARGET].to_numpy(dtype=np.float64), predict(model, holdout))


@dataclass(frozen=True, eq=False)
class Evaluation:
    """A challenger fitted on a window's training rows, scored beside the baseline."""

    window: Window
    train: pd.DataFrame
    holdout: pd.DataFrame
    model: Any
    params: dict[str, Any]
    scores: dict[str, dict[str, float]]


def fit_and_score(
    window: Window,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Fit the challenger; score it and the seasonal-naive baseline on the same holdout rows."""
    model = fit(train, params)
    y = holdout[TARGET].to_numpy(dtype=np.float64)
    scores = {
        "challenger": metrics(y, predict(model, holdout)),
        "baseline": metrics(y, seasonal_naive(holdout)),
    }
    used = {**DEFAULT_PARAMS, **(params or {})}
    return Evaluation(window, train, holdout, model, used, scores)


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger becomes champion, and why."""

    promote: bool
    reason: str
    metric: str
    margin: float
    challenger: dict[str, float]
    baseline: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def decide_promotion(
    challenger: Mapping[str, float],
    baseline: Mapping[str, float],
    champion: Mapping[str, float] | None,
    *,
    metric: str = "wape",
    margin: float = 0.02,
    champion_version: str | None = None,
    note: str = "",
) -> PromotionDecision:
    """Promote when the challenger beats the baseline, and the champion by ``margin`` (relative).

    All metrics are lower-is-better and computed on the same holdout rows; a tie is not a win.
    ``note`` (for example why a registered champion could not be scored) ends the reason.
    """
    if metric not in METRICS:
        raise ValueError(f"promotion metric {metric!r} is not one of {', '.join(METRICS)}")
    promote, reason = _verdict(
        float(challenger[metric]),
        float(baseline[metric]),
        None if champion is None else float(champion[metric]),
        metric,
        margin,
        champion_version,
    )
    return PromotionDecision(
        promote=promote,
        reason=f"{reason} ({note})" if note else reason,
        metric=metric,
        margin=margin,
        challenger=dict(challenger),
        baseline=dict(baseline),
        champion=dict(champion) if champion else None,
        champion_version=champion_version,
    )


def _verdict(
    c: float, b: float, h: float | None, metric: str, margin: float, champion_version: str | None
) -> tuple[bool, str]:
    """Challenger ``c``, baseline ``b``, champion ``h`` (None: none yet): promote?, and why."""
    if not np.isfinite(c) or c >= b:
        return (
            False,
            f"challenger {metric} {c:.4f} does not beat the seasonal-naive baseline {b:.4f}",
        )
    if h is None:
        return True, (
            f"no champion yet; challenger {metric} {c:.4f} beats the seasonal-naive "
            f"baseline {b:.4f}"
        )
    needed = h * (1 - margin)
    if c < needed:
        return True, (
            f"challenger {metric} {c:.4f} beats champion v{champion_version} {h:.4f} by more "
            f"than {margin:.1%} (needed < {needed:.4f}) on the same holdout"
        )
    return False, (
        f"challenger {metric} {c:.4f} does not beat champion v{champion_version} {h:.4f} by "
        f"{margin:.1%} (needed < {needed:.4f}) on the same holdout; champion kept"
    )


def reference_sample(
    train: pd.DataFrame, predictions: np.ndarray, rows: int, seed: int = 0
) -> pd.DataFrame:
    """A capped random sample of the training rows with their predictions, for drift later."""
    ref = train[["date", *MODEL_INPUTS, TARGET]].copy()
    ref["prediction"] = predictions
    if len(ref) > rows:
        ref = ref.sample(n=rows, random_state=seed)
    return ref.reset_index(drop=True)
