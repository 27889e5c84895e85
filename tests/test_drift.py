"""Drift statistics and the decision rule: known shifts are found, unshifted data is not."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipelines.lake.config import DriftSettings, RetrainSettings
from pipelines.ml import drift, monitoring
from pipelines.simulation.simulate import Drift
from tests.synthetic import synthetic_features

RULE = drift.DriftRule()


def _sorted(x):
    return np.sort(np.asarray(x, dtype=float))


@pytest.mark.parametrize("shape", ["normal", "gamma", "poisson"])
def test_statistics_match_scipy(shape):
    rng = np.random.default_rng(1)
    draw = {
        "normal": lambda n: rng.normal(0, 1, n),
        "gamma": lambda n: rng.gamma(2, 3, n),
        "poisson": lambda n: rng.poisson(3, n).astype(float),
    }[shape]
    a, b = draw(20_000), draw(15_000) * 1.1
    s = drift.sorted_stats(_sorted(a), _sorted(b))
    ks = stats.ks_2samp(a, b)
    assert s["ks"] == pytest.approx(ks.statistic, abs=2e-3)
    assert s["wn"] == pytest.approx(stats.wasserstein_distance(a, b) / np.std(a), rel=0.02)


def test_psi_matches_a_plain_decile_psi():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 50_000), rng.normal(0.3, 1, 50_000)
    edges = np.quantile(a, np.linspace(0, 1, 11)[1:-1])
    p = np.bincount(np.searchsorted(edges, a, side="right"), minlength=10) / len(a)
    q = np.bincount(np.searchsorted(edges, b, side="right"), minlength=10) / len(b)
    plain = float(np.sum((q - p) * np.log(q / p)))
    assert drift.sorted_stats(_sorted(a), _sorted(b))["psi"] == pytest.approx(plain, rel=0.02)
    assert 0.06 < plain < 0.12  # why PSI > 0.2 misses a 0.3-sd shift


def test_shifted_columns_flagged_and_only_those():
    rng = np.random.default_rng(3)
    n = 5_000
    ref = {f"c{i}": rng.normal(10, 2, 50_000) for i in range(20)}
    cur = {f"c{i}": rng.normal(10, 2, n) for i in range(20)}
    for i in (2, 7, 11):
        cur[f"c{i}"] = cur[f"c{i}"] + 0.3 * 2
    res = drift.numeric_drift(drift.sort_columns(ref), cur, RULE)
    assert {r.feature for r in res if r.drifted} == {"c2", "c7", "c11"}


def test_false_alarm_rate_over_400_unshifted_feature_days():
    rng = np.random.default_rng(4)
    ref = drift.sort_columns({f"c{i}": rng.gamma(2, 1, 40_000) for i in range(20)})
    flagged = 0
    for _ in range(20):
        day = {f"c{i}": rng.gamma(2, 1, 1_000) for i in range(20)}
        flagged += sum(r.drifted for r in drift.numeric_drift(ref, day, RULE))
    assert flagged <= 4  # <= 1 % of 400


def test_power_on_0_3_sd_shifts_at_a_few_hundred_rows():
    rng = np.random.default_rng(5)
    ref = drift.sort_columns({"x": rng.normal(0, 1, 40_000)})
    hits = sum(
        drift.numeric_drift(ref, {"x": rng.normal(0.3, 1, 800)}, RULE, tests=20)[0].drifted
        for _ in range(100)
    )
    assert hits >= 95


def test_large_sample_tiny_shift_is_not_material():
    rng = np.random.default_rng(6)
    ref = drift.sort_columns({"x": rng.normal(0, 1, 500_000)})
    res = drift.numeric_drift(ref, {"x": rng.normal(0.05, 1, 500_000)}, RULE)[0]
    assert res.p_value < 1e-6 and not res.drifted  # significant, but below the effect size


def test_categorical_mix_shift():
    rng = np.random.default_rng(7)
    cats = np.array(["a", "b", "c", "d"])
    ref = {"cat": rng.choice(cats, 20_000, p=[0.4, 0.3, 0.2, 0.1])}
    same = {"cat": rng.choice(cats, 3_000, p=[0.4, 0.3, 0.2, 0.1])}
    moved = {"cat": rng.choice(cats, 3_000, p=[0.15, 0.3, 0.2, 0.35])}
    assert not drift.categorical_drift(ref, same, RULE)[0].drifted
    got = drift.categorical_drift(ref, moved, RULE)[0]
    assert got.drifted and got.psi > 0.2 and got.p_value < 1e-10


def test_missing_reference_column_is_named():
    with pytest.raises(KeyError, match="reference lacks column"):
        drift.numeric_drift({}, {"price": np.ones(3)})


@pytest.fixture(scope="module")
def shifted_days():
    start = dt.date(2026, 9, 1)
    shift = Drift(region="eu", start=dt.date(2026, 10, 20), price_shift=1.25, demand_shift=0.85)
    data = synthetic_features(start, 56, stores=6, skus=30, drift=(shift,)).to_pandas()
    data["date"] = pd.to_datetime(data["date"]).dt.date
    ref = data[data["date"] < dt.date(2026, 10, 13)]
    return ref, data


def test_simulated_eu_price_drift_found_on_the_right_day_in_the_right_region(shifted_days):
    ref, data = shifted_days
    settings = DriftSettings()
    before, how = monitoring.day_drift(ref, data[data["date"] == dt.date(2026, 10, 19)], settings)
    after, _ = monitoring.day_drift(ref, data[data["date"] == dt.date(2026, 10, 20)], settings)
    assert "weekday" in how
    assert not before["drifted"].any(), before[before["drifted"]]
    eu = after[after["drifted"] & (after["segment"] == "region=eu")]
    assert {"avg_price", "price_rel_28"} <= set(eu["feature"])
    others = after[after["drifted"] & after["segment"].isin(["region=us", "region=apac"])]
    assert others.empty, others
    verdict = monitoring.retrain_verdict(after, RetrainSettings(min_drifted_features=2))
    assert verdict.retrain and "region=eu" in verdict.reason
    assert not monitoring.retrain_verdict(before, RetrainSettings()).retrain


def test_prediction_drift_and_forecast_error(shifted_days):
    ref, data = shifted_days
    ref = ref.assign(prediction=ref["qty_mean_7"])
    day = data[data["date"] == dt.date(2026, 10, 21)]
    report, _ = monitoring.day_drift(ref, day, DriftSettings(), day["qty_mean_7"].to_numpy() * 2)
    pred = report[report["kind"] == "prediction"]
    assert pred[pred["segment"] == "all"]["drifted"].item()
    err = monitoring.forecast_error(np.array([1.0, np.nan, 3.0]), np.array([2.0, 5.0, 3.0]))
    assert err == {"mae": 0.5, "rmse": pytest.approx(np.sqrt(0.5)), "wape": 0.25, "rows": 2.0}
    assert monitoring.forecast_error(np.array([np.nan]), np.array([1.0])) is None
    table = monitoring.to_table(report, dt.date(2026, 10, 21), "3", err)
    assert table.schema == monitoring.DRIFT_SCHEMA
    assert set(table.column("kind").to_pylist()) >= {"numeric", "prediction", "forecast_error"}
    png = monitoring.plot_png(report, "drift")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
