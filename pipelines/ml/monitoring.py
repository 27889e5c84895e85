"""A day's monitoring: drift against the training reference, forecast error, retrain verdict.

Also the plot a person reads in the UI. Free of Dagster. The reference is the sample of
training rows stored with the model (see ``pipelines.ml.tracking``); with ``match_day_of_week`` a
day is compared with reference rows of the same weekday, so weekly seasonality in lags is not
mistaken for drift.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.lake.config import DriftSettings, RetrainSettings
from pipelines.lake.schemas import DRIFT_SCHEMA, FEATURE_CATEGORICAL, FEATURE_NUMERIC
from pipelines.ml import drift
from pipelines.ml.train import metrics

MIN_MATCHED_REFERENCE = 500


def rule_of(settings: DriftSettings) -> drift.DriftRule:
    """The statistical rule of the drift settings."""
    return drift.DriftRule(
        alpha=settings.alpha,
        min_normed_wasserstein=settings.min_normed_wasserstein,
        min_psi_categorical=settings.min_psi_categorical,
    )


def matched_reference(
    reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings
) -> tuple[pd.DataFrame, str]:
    """The reference rows to compare a day with, and how they were chosen."""
    if settings.match_day_of_week and "day_of_week" in reference and "day_of_week" in current:
        days = current["day_of_week"].dropna().unique()
        if len(days) == 1:
            same = reference[reference["day_of_week"] == days[0]]
            if len(same) >= MIN_MATCHED_REFERENCE:
                return same, f"training rows of weekday {int(days[0])}"
    return reference, "all training rows"


def day_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: DriftSettings,
    predictions: np.ndarray | None = None,
) -> tuple[pd.DataFrame, str]:
    """Per-feature (and prediction) drift of a day's features; and the reference used."""
    ref, how = matched_reference(reference, current, settings)
    numeric = [c for c in FEATURE_NUMERIC if c not in settings.exclude]
    categorical = [c for c in FEATURE_CATEGORICAL if c not in settings.exclude]
    cur = current
    if predictions is not None:
        cur = current.assign(prediction=predictions)
    results = drift.frame_drift(
        ref,
        cur,
        numeric,
        categorical,
        rule_of(settings),
        segment_by=settings.segment_by,
        prediction="prediction" if predictions is not None and "prediction" in ref else None,
    )
    return drift.to_frame(results), how


def forecast_error(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float] | None:
    """MAE, RMSE and WAPE of the forecast where actuals are known; None before they arrive."""
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    known = np.isfinite(actual) & np.isfinite(predicted)
    if not known.any():
        return None
    return {**metrics(actual[known], predicted[known]), "rows": float(known.sum())}


@dataclass(frozen=True)
class RetrainVerdict:
    """Whether a day's drift asks for retraining, and the reason in words."""

    retrain: bool
    reason: str
    drifted: list[str]


def retrain_verdict(report: pd.DataFrame, settings: RetrainSettings) -> RetrainVerdict:
    """Retrain when a segment has enough drifted features, or its predictions drifted."""
    drifted = report[report["drifted"].astype(bool)]
    names = [f"{r.segment}:{r.feature}" for r in drifted.itertuples()]
    reasons = []
    for segment, rows in drifted.groupby("segment", sort=True):
        feats = rows[rows["kind"] != "prediction"]
        parts = []
        if len(feats) >= settings.min_drifted_features:
            parts.append(f"{len(feats)} features drifted ({', '.join(feats['feature'])})")
        if settings.prediction_drift and (rows["kind"] == "prediction").any():
            parts.append("prediction distribution drifted")
        if parts:
            reasons.append(f"{segment}: " + "; ".join(parts))
    if reasons:
        return RetrainVerdict(True, " | ".join(reasons), names)
    if names:
        return RetrainVerdict(
            False, f"drift below retraining thresholds: {', '.join(names)}", names
        )
    return RetrainVerdict(False, "no drift", names)


def to_table(
    report: pd.DataFrame,
    day: dt.date,
    model_version: str,
    error: dict[str, float] | None,
) -> pa.Table:
    """The monitoring table's rows for a day: drift rows, then forecast error rows."""
    rows = report.copy()
    rows["value"] = np.where(rows["kind"] == "categorical", rows["psi"], rows["normed_wasserstein"])
    if error:
        extra = pd.DataFrame(
            [
                {"segment": "all", "feature": k, "kind": "forecast_error", "value": v,
                 "drifted": False, "n_current": int(error["rows"])}
                for k, v in error.items()
                if k != "rows"
            ]
        )  # fmt: skip
        rows = pd.concat([rows, extra], ignore_index=True)
    rows["date"] = day
    rows["model_version"] = model_version
    rows["drifted"] = rows["drifted"].fillna(False).astype(bool)
    for c in ("n_reference", "n_current"):
        rows[c] = rows[c].fillna(0).astype(np.int64)
    return pa.Table.from_pandas(rows[DRIFT_SCHEMA.names], schema=DRIFT_SCHEMA, preserve_index=False)


def plot_png(report: pd.DataFrame, title: str, threshold: float = 0.1) -> bytes:
    """A heatmap of drift effect size (features x segments), drifted cells marked, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = report[report["kind"] != "forecast_error"].copy()
    data["effect"] = np.where(
        data["kind"] == "categorical", data["psi"], data["normed_wasserstein"]
    )
    grid = data.pivot_table(index="feature", columns="segment", values="effect", aggfunc="max")
    flags = data.pivot_table(index="feature", columns="segment", values="drifted", aggfunc="max")
    fig, ax = plt.subplots(figsize=(2.2 + 1.3 * grid.shape[1], 1.2 + 0.32 * grid.shape[0]))
    image = ax.imshow(
        grid.to_numpy(dtype=float), cmap="Reds", vmin=0, vmax=max(3 * threshold, 0.01),
        aspect="auto",
    )  # fmt: skip
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=8)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = grid.iat[i, j]
            if np.isfinite(v):
                mark = " *" if bool(flags.iat[i, j]) else ""
                dark = v > 2 * threshold
                ax.text(
                    j, i, f"{v:.2f}{mark}", ha="center", va="center", fontsize=7,
                    color="white" if dark else "black",
                )  # fmt: skip
    fig.colorbar(image, ax=ax, label="normed Wasserstein (PSI for categorical)")
    ax.set_title(f"{title}\n* = drifted (test significant and effect >= threshold)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def summary_lines(report: pd.DataFrame, segments: Sequence[str] | None = None) -> list[str]:
    """Short per-segment lines: how many features drifted and the largest effect."""
    out = []
    for segment, rows in report.groupby("segment", sort=True):
        if segments and segment not in segments:
            continue
        n = int(rows["drifted"].sum())
        top = rows.sort_values("normed_wasserstein", ascending=False).head(1)
        name = top["feature"].iloc[0] if len(top) else "-"
        out.append(f"{segment}: {n} drifted; largest {name}")
    return out
