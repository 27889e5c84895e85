"""Anomalies in the platform's own metrics: a robust per-region, per-weekday baseline.

A day's value is compared with the same region's values on the same weekday over the last
few weeks (weekly seasonality is large: Saturday is not an outlier of Friday). The baseline is
the median and the spread the MAD (median absolute deviation, scaled to a normal sd), so one
earlier bad day does not widen the band the way a mean and a standard deviation would. A
floor on the band (absolute and relative to the median) keeps a metric that hardly moves, whose
MAD is near zero, from flagging noise. Free of Dagster.

Each kept row carries the values it was judged against (:data:`HISTORY`: per metric, the
region's value on the same weekday 1..``weeks`` weeks before, ``None`` where there was none),
so judging a day needs the day and one kept row a week before it (its value and its history
are the day's baseline), and re-judging a kept day needs that day's row only: a run's reads do
not grow with the history (#28).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation
# The column of a kept row holding its same-weekday history, per metric (JSON text when stored)
HISTORY = "weekday_history"
WEEK = dt.timedelta(weeks=1)


@dataclass(frozen=True)
class MetricRule:
    """How one metric is judged: which direction is bad and the band's floors."""

    metric: str
    label: str
    direction: str  # "up": only highs are anomalies; "both": highs and lows
    abs_floor: float
    rel_floor: float


# Quarantine rate: a point of the landed records; events: a fifth of the weekday's median
# (weekly seasonality is in the baseline); run seconds and replica lag grow on a busy day.
RULES: tuple[MetricRule, ...] = (
    MetricRule("quarantine_rate", "quarantine rate", "up", abs_floor=0.01, rel_floor=0.5),
    MetricRule("ingested", "events per partition", "both", abs_floor=50, rel_floor=0.2),
    MetricRule("compute_seconds", "run duration (s)", "up", abs_floor=30.0, rel_floor=1.0),
    MetricRule("replica_lag_hours", "replica lag (h)", "up", abs_floor=2.0, rel_floor=1.0),
)


@dataclass(frozen=True)
class Baseline:
    """How the band is built: weeks looked back, points needed, width in robust sds."""

    weeks: int = 8
    min_points: int = 3
    threshold: float = 3.5


@dataclass(frozen=True)
class Anomaly:
    """A value outside its region-weekday band."""

    metric: str
    region: str
    date: dt.date
    value: float
    median: float
    low: float
    high: float
    points: int

    def describe(self) -> str:
        """One line an operator reads: what, where, when, how far off (in the metric's units)."""
        rule = next((r for r in RULES if r.metric == self.metric), None)
        label = rule.label if rule is not None else self.metric
        shown = lambda v: fmt(self.metric, v)  # noqa: E731
        if rule is not None and rule.direction == "up":
            band = f"alert above {shown(self.high)}"
        else:
            band = f"alert outside {shown(max(self.low, 0.0))}..{shown(self.high)}"
        return (
            f"{label} of {self.region} on {self.date} ({self.date:%a}) is {shown(self.value)}; "
            f"usual for the weekday {shown(self.median)} ({band}, {self.points} earlier weeks)"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "date": self.date.isoformat()}


UNITS = {"quarantine_rate": "percent", "compute_seconds": "s", "replica_lag_hours": "h"}


def fmt(metric: str, value: float) -> str:
    """A metric's value in its unit: rates as percentages, counts with separators."""
    unit = UNITS.get(metric)
    if unit == "percent":
        return f"{value:.2%}"
    if unit is not None:
        return f"{value:.1f} {unit}"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.3g}"


def band(history: Sequence[float], rule: MetricRule, baseline: Baseline) -> tuple[float, float]:
    """``(median, half-width)`` of the band around a metric's history."""
    values = np.asarray(history, dtype=np.float64)
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * MAD_TO_SD
    width = max(baseline.threshold * mad, rule.abs_floor, rule.rel_floor * abs(median))
    return median, width


def _series(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[tuple[str, dt.date], float]:
    """A metric's values by (region, date): the rows' own, and the earlier ones they carry.

    A row's own value wins over one another row carried (it may have been measured again);
    between carried values, the newer row's.
    """
    out: dict[tuple[str, dt.date], float] = {}
    own: dict[tuple[str, dt.date], float] = {}
    for row in sorted(rows, key=lambda r: r["date"]):
        region, day = str(row["region"]), row["date"]
        carried = (row.get(HISTORY) or {}).get(metric) or []
        for weeks, earlier in enumerate(carried, start=1):
            if (known := _number(earlier)) is not None:
                out[(region, day - weeks * WEEK)] = known
        if (value := _number(row.get(metric))) is not None:
            own[(region, day)] = value
    out.update(own)
    return out


def _number(value: Any) -> float | None:
    """A metric's value as a float; None when there is none (null or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def judge(
    series: Mapping[tuple[str, dt.date], float],
    region: str,
    day: dt.date,
    rule: MetricRule,
    baseline: Baseline,
) -> Anomaly | None:
    """The anomaly of one region-day's value, or None (normal, or too little history)."""
    value = series.get((region, day))
    if value is None:
        return None
    earlier = [day - dt.timedelta(weeks=w) for w in range(1, baseline.weeks + 1)]
    history = [series[(region, d)] for d in earlier if (region, d) in series]
    if len(history) < baseline.min_points:
        return None
    median, width = band(history, rule, baseline)
    low, high = median - width, median + width
    too_high = value > high
    too_low = rule.direction == "both" and value < low
    if not (too_high or too_low):
        return None
    return Anomaly(rule.metric, region, day, value, median, low, high, len(history))


def detect(
    rows: Iterable[Mapping[str, Any]],
    days: Iterable[dt.date],
    rules: Sequence[MetricRule] = RULES,
    baseline: Baseline | None = None,
) -> list[Anomaly]:
    """Anomalies of ``days`` in health rows (``region``, ``date`` and the metrics' columns).

    The baseline is the weeks before the days judged: rows of those weeks, or the
    :data:`HISTORY` a later row of the same weekday carries (the days' own rows carry theirs).
    """
    rows = list(rows)
    baseline = baseline or Baseline()
    regions = sorted({str(r["region"]) for r in rows})
    wanted = sorted(set(days))
    found: list[Anomaly] = []
    for rule in rules:
        series = _series(rows, rule.metric)
        for region in regions:
            for day in wanted:
                hit = judge(series, region, day, rule, baseline)
                if hit is not None:
                    found.append(hit)
    return found


def histories(
    rows: Iterable[Mapping[str, Any]],
    keys: Iterable[tuple[str, dt.date]],
    rules: Sequence[MetricRule] = RULES,
    baseline: Baseline | None = None,
) -> dict[tuple[str, dt.date], dict[str, list[float | None]]]:
    """The :data:`HISTORY` of each (region, day) in ``keys``: what :func:`detect` judges it by.

    Per metric, the values 1..``weeks`` weeks before the day in ``rows`` (``None``: none).
    """
    rows = list(rows)
    baseline = baseline or Baseline()
    series = {rule.metric: _series(rows, rule.metric) for rule in rules}
    return {
        (region, day): {
            metric: [values.get((region, day - w * WEEK)) for w in range(1, baseline.weeks + 1)]
            for metric, values in series.items()
        }
        for region, day in keys
    }


def precision_recall(
    flagged: Iterable[tuple[str, dt.date]], truth: Iterable[tuple[str, dt.date]]
) -> dict[str, float]:
    """Precision and recall of flagged region-days against the injected ones."""
    got, want = set(flagged), set(truth)
    hits = len(got & want)
    return {
        "flagged": float(len(got)),
        "injected": float(len(want)),
        "precision": hits / len(got) if got else 1.0,
        "recall": hits / len(want) if want else 1.0,
    }
