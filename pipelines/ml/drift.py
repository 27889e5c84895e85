"""Feature and prediction drift, vectorized: sort each column once, derive every statistic.

Numeric columns get PSI (10 reference-quantile bins), Kolmogorov-Smirnov (statistic and
asymptotic p-value), Jensen-Shannon distance (20 reference-quantile bins) and the Wasserstein-1
distance normed by the reference standard deviation. After sorting, everything is evaluated on
a grid of 1024 quantiles of each side (``searchsorted`` into the sorted arrays), so the cost
beyond the sort is O(grid x log n) per column. The grid KS is a lower bound on the exact KS
(off by at most about 1/1024), so p-values err on the conservative side.

Categorical columns get PSI, the chi-square test of homogeneity and Jensen-Shannon.

**Decision rule** (calibrated in benchmarks/drift.py and tests/test_drift.py). A column has
drifted when both hold:

1. its test rejects at ``alpha / k`` (Bonferroni over the k columns tested in that segment and
   day; KS for numeric, chi-square for categorical), so the chance of flagging any unshifted
   column on a day is at most ``alpha`` whatever the sample size, and
2. its effect size is material: normed Wasserstein >= ``min_normed_wasserstein`` (0.1, the
   threshold Evidently uses) for numeric, PSI >= ``min_psi_categorical`` for categorical, so
   very large days do not flag shifts too small to matter.

PSI > 0.2 alone misses 0.3-sd shifts (their PSI is about 0.09) and raw KS at 0.05 flags about
5 % of unshifted columns (/work/shared/ANCHORS.md); this rule catches 0.3-sd shifts at a few
hundred rows per day and keeps false alarms well under 1 %.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

GRID = 1024
PSI_BINS = 10
JS_BINS = 20
_EPS = 1e-4


@dataclass(frozen=True)
class DriftRule:
    """Thresholds of the decision rule (see the module docstring)."""

    alpha: float = 0.01
    min_normed_wasserstein: float = 0.1
    min_psi_categorical: float = 0.1


@dataclass(frozen=True)
class ColumnDrift:
    """Drift statistics of one column in one segment, and the decision."""

    segment: str
    feature: str
    kind: str
    n_reference: int
    n_current: int
    psi: float
    ks: float
    p_value: float
    js: float
    normed_wasserstein: float
    drifted: bool

    def as_dict(self) -> dict[str, object]:
        """A plain dict (a row of the monitoring table)."""
        return asdict(self)


def _binned_shares(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of a sorted array in bins (-inf, e1), [e1, e2), ..., [ek, inf)."""
    cuts = np.searchsorted(sorted_values, edges, side="left")
    counts = np.diff(np.concatenate([[0], cuts, [len(sorted_values)]]))
    return counts / max(len(sorted_values), 1)


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.clip(p, _EPS, None)
    q = np.clip(q, _EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0)
    return float(np.sqrt(max(0.5 * (kl_p.sum() + kl_q.sum()), 0.0)))


def _quantile_edges(sorted_ref: np.ndarray, bins: int) -> np.ndarray:
    n = len(sorted_ref)
    idx = (np.arange(1, bins) * n) // bins
    return np.unique(sorted_ref[idx])


def sorted_stats(
    ref: np.ndarray, cur: np.ndarray, ref_std: float | None = None
) -> dict[str, float]:
    """PSI, KS (statistic, p-value), JS and normed Wasserstein from two sorted arrays."""
    from scipy import stats  # not at import: loading the code location should not pay for it

    n, m = len(ref), len(cur)
    if n == 0 or m == 0:
        return {"psi": np.nan, "ks": np.nan, "p_value": 1.0, "js": np.nan, "wn": np.nan}
    levels = (np.arange(GRID) + 0.5) / GRID
    grid = np.unique(
        np.concatenate(
            [
                ref[(levels * n).astype(np.int64)],
                cur[(levels * m).astype(np.int64)],
                ref[[0, -1]],
                cur[[0, -1]],
            ]
        )
    )
    f_ref = np.searchsorted(ref, grid, side="right") / n
    f_cur = np.searchsorted(cur, grid, side="right") / m
    gap = np.abs(f_ref - f_cur)
    ks = float(gap.max())
    n_eff = n * m / (n + m)
    p_value = float(stats.kstwobign.sf(ks * np.sqrt(n_eff)))
    wasserstein = float(np.sum(gap[:-1] * np.diff(grid)))
    std = float(np.std(ref)) if ref_std is None else ref_std
    wn = wasserstein / std if std > 0 else (0.0 if wasserstein == 0 else np.inf)
    psi_edges = _quantile_edges(ref, PSI_BINS)
    js_edges = _quantile_edges(ref, JS_BINS)
    return {
        "psi": _psi(_binned_shares(ref, psi_edges), _binned_shares(cur, psi_edges)),
        "ks": ks,
        "p_value": p_value,
        "js": _js(_binned_shares(ref, js_edges), _binned_shares(cur, js_edges)),
        "wn": wn,
    }


def _finite_sorted(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr)
    arr = np.array(arr, copy=True) if finite.all() else arr[finite]
    arr.sort()
    return arr


def sort_columns(columns: Mapping[str, np.ndarray], threads: int = 2) -> dict[str, np.ndarray]:
    """Each column as a sorted float64 array without NaN/inf (numpy sorts release the GIL)."""
    names = list(columns)
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        done = list(pool.map(lambda c: _finite_sorted(columns[c]), names))
    return dict(zip(names, done, strict=True))


def numeric_drift(
    reference_sorted: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    rule: DriftRule = DriftRule(),
    segment: str = "all",
    tests: int | None = None,
    current_is_sorted: bool = False,
    threads: int = 2,
) -> list[ColumnDrift]:
    """Drift of each numeric column of ``current`` against the sorted reference columns.

    ``tests`` is the Bonferroni count (default: the number of columns compared here).
    """
    missing = [c for c in current if c not in reference_sorted]
    if missing:
        raise KeyError(f"drift: reference lacks column(s) {', '.join(missing)}")
    cur_sorted = dict(current) if current_is_sorted else sort_columns(current, threads)
    k = tests or max(len(cur_sorted), 1)
    out = []
    for name, cur in cur_sorted.items():
        ref = reference_sorted[name]
        s = sorted_stats(ref, cur)
        drifted = bool(s["p_value"] < rule.alpha / k and s["wn"] >= rule.min_normed_wasserstein)
        out.append(
            ColumnDrift(
                segment, name, "numeric", len(ref), len(cur),
                s["psi"], s["ks"], s["p_value"], s["js"], s["wn"], drifted,
            )
        )  # fmt: skip
    return out


def categorical_drift(
    reference: Mapping[str, Sequence[object] | np.ndarray],
    current: Mapping[str, Sequence[object] | np.ndarray],
    rule: DriftRule = DriftRule(),
    segment: str = "all",
    tests: int | None = None,
) -> list[ColumnDrift]:
    """PSI, chi-square and JS of each categorical column of ``current`` against the reference."""
    from scipy import stats

    k = tests or max(len(current), 1)
    out = []
    for name, cur_values in current.items():
        ref_s = pd.Series(np.asarray(reference[name], dtype=object)).dropna()
        cur_s = pd.Series(np.asarray(cur_values, dtype=object)).dropna()
        cats = sorted(set(ref_s.unique()) | set(cur_s.unique()), key=str)
        ref_c = ref_s.value_counts().reindex(cats, fill_value=0).to_numpy(dtype=np.float64)
        cur_c = cur_s.value_counts().reindex(cats, fill_value=0).to_numpy(dtype=np.float64)
        n, m = ref_c.sum(), cur_c.sum()
        if n == 0 or m == 0:
            continue
        p, q = ref_c / n, cur_c / m
        keep = (ref_c + cur_c) > 0
        table = np.vstack([ref_c[keep], cur_c[keep]])
        p_value = (
            float(stats.chi2_contingency(table, correction=False).pvalue)
            if table.shape[1] > 1
            else 1.0
        )
        psi = _psi(p, q)
        drifted = bool(p_value < rule.alpha / k and psi >= rule.min_psi_categorical)
        out.append(
            ColumnDrift(
                segment, name, "categorical", int(n), int(m),
                psi, float(np.abs(np.cumsum(p - q)).max()), p_value, _js(p, q), np.nan, drifted,
            )
        )  # fmt: skip
    return out


def frame_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    rule: DriftRule = DriftRule(),
    segment_by: str | None = None,
    prediction: str | None = None,
    min_rows: int = 30,
) -> list[ColumnDrift]:
    """Drift of a day's frame against a reference frame: over all rows and per segment.

    Each segment is tested separately (drift is often local: one region's prices). The
    ``prediction`` column, if given, is reported as feature ``prediction`` with kind
    ``prediction`` and tested on its own (alpha not shared with the features).
    """
    for col in [*numeric, *categorical, *([prediction] if prediction else [])]:
        for label, frame in (("reference", reference), ("current", current)):
            if col not in frame.columns:
                raise KeyError(f"drift: {label} frame lacks column {col!r}")
    segments: list[tuple[str, pd.DataFrame, pd.DataFrame]] = [("all", reference, current)]
    if segment_by:
        for value in sorted(current[segment_by].dropna().unique(), key=str):
            ref_part = reference[reference[segment_by] == value]
            cur_part = current[current[segment_by] == value]
            segments.append((f"{segment_by}={value}", ref_part, cur_part))
    out: list[ColumnDrift] = []
    for label, ref, cur in segments:
        if len(ref) < min_rows or len(cur) < min_rows:
            continue
        cats = [c for c in categorical if not (segment_by and c == segment_by and label != "all")]
        tests = len(numeric) + len(cats)
        ref_sorted = sort_columns({c: ref[c].to_numpy() for c in numeric})
        cur_cols = {c: cur[c].to_numpy() for c in numeric}
        out += numeric_drift(ref_sorted, cur_cols, rule, label, tests=tests)
        out += categorical_drift(
            {c: ref[c].to_numpy() for c in cats},
            {c: cur[c].to_numpy() for c in cats},
            rule,
            label,
            tests=tests,
        )
        if prediction:
            pred = numeric_drift(
                {prediction: _finite_sorted(ref[prediction].to_numpy())},
                {prediction: cur[prediction].to_numpy()},
                rule,
                label,
                tests=1,
            )[0]
            out.append(dataclasses.replace(pred, feature="prediction", kind="prediction"))
    return out


def to_frame(results: Sequence[ColumnDrift]) -> pd.DataFrame:
    """Drift results as a DataFrame (one row per segment and column)."""
    cols = list(ColumnDrift.__dataclass_fields__)
    return pd.DataFrame([r.as_dict() for r in results], columns=cols)
