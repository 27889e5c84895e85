"""Drift detection: ours (sort once, derive PSI/KS/JS/normed Wasserstein) against Evidently.

Knobs (environment): DRIFT_BENCH_ROWS (default 2,000,000), DRIFT_BENCH_FEATURES (20),
DRIFT_BENCH_EVIDENTLY_ROWS (200,000; 0 skips Evidently), DRIFT_BENCH_DAYS (40 trial days),
DRIFT_BENCH_DAY_ROWS (2,000 rows per trial day). The last stdout line is one JSON object.

Data: 20 numeric columns of mixed shapes (normal, log-normal, gamma, Poisson counts, uniform,
bimodal, a heavy-tailed t). In the current sample 5 columns are shifted by 0.3 of their
standard deviation. Power and false-positive rate come from trial days: each day draws fresh
rows, shifts 5 random columns by 0.3 sd, and the rule of pipelines.ml.drift decides per column.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd

from pipelines.ml.drift import DriftRule, numeric_drift, sort_columns

ROWS = int(os.environ.get("DRIFT_BENCH_ROWS", 2_000_000))
FEATURES = int(os.environ.get("DRIFT_BENCH_FEATURES", 20))
EVIDENTLY_ROWS = int(os.environ.get("DRIFT_BENCH_EVIDENTLY_ROWS", 200_000))
DAYS = int(os.environ.get("DRIFT_BENCH_DAYS", 40))
DAY_ROWS = int(os.environ.get("DRIFT_BENCH_DAY_ROWS", 2_000))
SHIFTED = 5
SHIFT_SD = 0.3
RULE = DriftRule()


def _column(kind: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Values of one column shape and its population standard deviation."""
    k = kind % 7
    if k == 0:
        return rng.normal(10, 2, n), 2.0
    if k == 1:
        return rng.lognormal(1, 0.5, n), float(np.sqrt((np.exp(0.25) - 1) * np.exp(2 + 0.25)))
    if k == 2:
        return rng.gamma(2.0, 3.0, n), float(np.sqrt(2.0) * 3.0)
    if k == 3:
        return rng.poisson(4.0, n).astype(np.float64), 2.0
    if k == 4:
        return rng.uniform(0, 1, n), float(np.sqrt(1 / 12))
    if k == 5:
        half = rng.random(n) < 0.5
        return np.where(half, rng.normal(-2, 1, n), rng.normal(2, 1, n)), float(np.sqrt(5))
    return rng.standard_t(5, n), float(np.sqrt(5 / 3))


def make_data(
    n: int, rng: np.random.Generator, shifted: set[int] | frozenset[int] = frozenset()
) -> dict[str, np.ndarray]:
    """``n`` rows of FEATURES columns; columns in ``shifted`` moved by SHIFT_SD sd."""
    out = {}
    for j in range(FEATURES):
        values, sd = _column(j, n, rng)
        out[f"f{j:02d}"] = values + (SHIFT_SD * sd if j in shifted else 0.0)
    return out


def ours(reference: dict[str, np.ndarray], current: dict[str, np.ndarray]) -> tuple[float, set]:
    """Seconds for the whole comparison (both sides sorted here) and the flagged columns."""
    t0 = time.perf_counter()
    res = numeric_drift(sort_columns(reference), current, RULE)
    return time.perf_counter() - t0, {r.feature for r in res if r.drifted}


def evidently(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[float, float, set]:
    """Seconds to import and to run Evidently's DataDriftPreset, and the flagged columns."""
    t0 = time.perf_counter()
    from evidently import Report
    from evidently.presets import DataDriftPreset

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    seconds = time.perf_counter() - t0
    flagged = set()
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config") or {}
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        # per-column drift score; p-value methods drift below the threshold, distances above
        value, threshold = float(metric["value"]), float(config["threshold"])
        is_p_value = "p_value" in str(config.get("method", "")).lower()
        if (value < threshold) if is_p_value else (value >= threshold):
            flagged.add(config["column"])
    return t_import, seconds, flagged


def trials(reference_sorted: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, float]:
    """Power and false-positive rate of the rule over DAYS trial days."""
    hits = shifted_total = false_alarms = unshifted_total = 0
    for _ in range(DAYS):
        shifted = set(rng.choice(FEATURES, SHIFTED, replace=False).tolist())
        day = make_data(DAY_ROWS, rng, shifted)
        for r in numeric_drift(reference_sorted, day, RULE):
            j = int(r.feature[1:])
            if j in shifted:
                shifted_total += 1
                hits += r.drifted
            else:
                unshifted_total += 1
                false_alarms += r.drifted
    return {
        "power": hits / shifted_total,
        "fpr": false_alarms / unshifted_total,
        "trials_shifted": shifted_total,
        "trials_unshifted": unshifted_total,
    }


def main() -> None:
    rng = np.random.default_rng(42)
    shifted = set(range(0, FEATURES, max(FEATURES // SHIFTED, 1))[:SHIFTED])
    expected = {f"f{j:02d}" for j in shifted}

    reference = make_data(ROWS, rng)
    current = make_data(ROWS, rng, shifted)
    ours(reference, current)  # warm up (thread pool, scipy)
    runs = [ours(reference, current) for _ in range(3)]
    seconds = float(np.median([r[0] for r in runs]))
    flagged = runs[0][1]
    print(f"ours {ROWS:,} x {FEATURES}: {seconds:.3f} s, flagged {sorted(flagged)}")

    small = min(EVIDENTLY_ROWS or 200_000, ROWS)
    ref_small = {k: v[:small] for k, v in reference.items()}
    cur_small = {k: v[:small] for k, v in current.items()}
    runs_small = [ours(ref_small, cur_small) for _ in range(3)]
    seconds_small = float(np.median([r[0] for r in runs_small]))
    print(f"ours {small:,} x {FEATURES}: {seconds_small:.3f} s")

    ev_seconds = ev_import = None
    ev_flagged: set = set()
    if EVIDENTLY_ROWS:
        ev_import, ev_seconds, ev_flagged = evidently(
            pd.DataFrame(ref_small), pd.DataFrame(cur_small)
        )
        # ours again right after Evidently, so both sides saw the same (shared, noisy) machine
        runs_small += [ours(ref_small, cur_small) for _ in range(3)]
        seconds_small = float(np.median([r[0] for r in runs_small]))
        print(f"evidently {small:,} x {FEATURES}: {ev_seconds:.1f} s (+{ev_import:.1f} s import)")

    quality = trials(sort_columns(reference), rng)
    print(f"trials: {quality}")
    out = {
        "rows": ROWS,
        "features": FEATURES,
        "seconds": round(seconds, 3),
        "seconds_200k": round(seconds_small, 3),
        "evidently_seconds_200k": None if ev_seconds is None else round(ev_seconds, 2),
        "evidently_import_seconds": None if ev_import is None else round(ev_import, 2),
        "speedup_vs_evidently": None
        if ev_seconds is None
        else round(ev_seconds / seconds_small, 1),
        "power": round(quality["power"], 4),
        "fpr": round(quality["fpr"], 4),
        "trials_shifted": quality["trials_shifted"],
        "trials_unshifted": quality["trials_unshifted"],
        "day_rows": DAY_ROWS,
        "shift_sd": SHIFT_SD,
        "flagged_match_injected": flagged == expected,
        "evidently_flagged_match_injected": None if ev_seconds is None else ev_flagged == expected,
        "evidently_flagged": None if ev_seconds is None else sorted(ev_flagged),
        "rule": "KS p < alpha/k (Bonferroni, alpha=0.01) and normed Wasserstein >= 0.1",
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
