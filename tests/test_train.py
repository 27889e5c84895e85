"""Training engine: window and holdout by date, baseline, metrics, the promotion gate."""

import datetime as dt

import numpy as np
import pytest

from pipelines.ml import train
from tests.synthetic import synthetic_features

START = dt.date(2026, 9, 1)


@pytest.fixture(scope="module")
def frame():
    return synthetic_features(START, 63, stores=3, skus=12).to_pandas()


def test_window_holdout_is_last_days_and_training_precedes_it(frame):
    window = train.plan_window(list(frame["date"]), window_days=49, holdout_days=7, warmup_days=0)
    assert window.holdout_end == START + dt.timedelta(days=62)
    assert window.holdout_start == window.holdout_end - dt.timedelta(days=6)
    assert window.train_end == window.holdout_start - dt.timedelta(days=1)
    assert window.train_start == window.train_end - dt.timedelta(days=48)
    tr, ho = train.split(frame, window)
    assert max(tr["date"]) < min(ho["date"])
    assert set(ho["date"]) == {window.holdout_start + dt.timedelta(days=i) for i in range(7)}


def test_window_end_date_moves_the_holdout(frame):
    end = START + dt.timedelta(days=40)
    window = train.plan_window(list(frame["date"]), 28, 5, end=end, warmup_days=0)
    assert window.holdout_end == end
    assert window.train_start == end - dt.timedelta(days=5 + 28 - 1)


def test_too_few_days_is_a_clear_error(frame):
    with pytest.raises(train.TrainingError, match="demand_features has 2 day"):
        train.plan_window(
            list(frame["date"]), 56, 7, end=START + dt.timedelta(days=8), warmup_days=0
        )


def test_look_back_warm_up_days_are_never_trained_on(frame):
    # the first 28 days' lags reach before the first event: not training (or reference) data
    window = train.plan_window(list(frame["date"]), window_days=49, holdout_days=7)
    assert window.train_start == START + dt.timedelta(days=train.WARMUP_DAYS)
    assert window.train_end == START + dt.timedelta(days=55)
    with pytest.raises(train.TrainingError, match="first 28 days are look-back warm-up"):
        train.plan_window(list(frame["date"]), 56, 7, end=START + dt.timedelta(days=40))


def test_missing_column_is_named(frame):
    with pytest.raises(train.TrainingError, match=r"lacks column.*qty_lag_7"):
        train.check_columns(frame.drop(columns=["qty_lag_7"]), "s3://b/demand_features")


def test_metrics_and_seasonal_naive():
    y = np.array([2.0, 0.0, 4.0])
    m = train.metrics(y, np.array([1.0, 1.0, 4.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert m["wape"] == pytest.approx(2 / 6)
    import pandas as pd

    assert train.seasonal_naive(pd.DataFrame({"qty_lag_7": [3.0, None]})).tolist() == [3.0, 0.0]


def test_model_beats_seasonal_naive_on_known_structure(frame):
    window = train.plan_window(list(frame["date"]), 56, 7)
    tr, ho = train.split(frame, window)
    model = train.fit(tr)
    pred = train.predict(model, ho)
    assert (pred >= 0).all()
    ours = train.metrics(ho["target"], pred)["wape"]
    base = train.metrics(ho["target"], train.seasonal_naive(ho))["wape"]
    assert ours < 0.8 * base


BASE = {"mae": 3.0, "rmse": 4.0, "wape": 0.60}


def test_first_model_promoted_when_it_beats_baseline():
    d = train.decide_promotion({"mae": 2, "rmse": 3, "wape": 0.4}, BASE, None)
    assert d.promote and "no champion yet" in d.reason


def test_model_not_beating_baseline_is_never_promoted():
    d = train.decide_promotion({"mae": 3, "rmse": 4, "wape": 0.61}, BASE, None)
    assert not d.promote and "baseline" in d.reason


@pytest.mark.parametrize(
    ("challenger", "promote"),
    [(0.40, True), (0.489, True), (0.491, False), (0.50, False), (0.55, False)],
)
def test_promotion_needs_the_margin_over_the_champion(challenger, promote):
    d = train.decide_promotion(
        {"mae": 1, "rmse": 1, "wape": challenger},
        BASE,
        {"mae": 1, "rmse": 1, "wape": 0.50},
        margin=0.02,
        champion_version="4",
    )
    assert d.promote is promote
    assert "champion v4" in d.reason
    assert ("champion kept" in d.reason) is (not promote)


def test_unknown_metric_refused():
    with pytest.raises(ValueError, match="promotion metric"):
        train.decide_promotion(BASE, BASE, None, metric="r2")


def test_choose_window_ends_at_end_date_and_splits_by_it(frame):
    end = START + dt.timedelta(days=50)
    window, tr, ho = train.choose_window(frame, 14, 5, end=end)
    assert window == train.Window(
        train_start=end - dt.timedelta(days=18),
        train_end=end - dt.timedelta(days=5),
        holdout_start=end - dt.timedelta(days=4),
        holdout_end=end,
    )
    assert set(ho["date"]) == {end - dt.timedelta(days=i) for i in range(5)}
    assert min(tr["date"]) == window.train_start and max(tr["date"]) == window.train_end
    assert len(ho) == 5 * 3 * 3 * 12  # every region, store and SKU on each holdout day


def test_choose_window_without_end_holds_out_the_last_days(frame):
    window, _, ho = train.choose_window(frame, 14, 7)
    assert window.holdout_end == max(frame["date"]) == START + dt.timedelta(days=62)
    assert min(ho["date"]) == START + dt.timedelta(days=56)


def test_choose_window_names_the_source_in_its_errors(frame):
    with pytest.raises(train.TrainingError, match=r"^s3://b/f lacks column\(s\) target$"):
        train.choose_window(frame.drop(columns=["target"]), 14, 7, source="s3://b/f")
    with pytest.raises(train.TrainingError, match=r"^s3://b/f has no rows up to 2020-01-01$"):
        train.choose_window(frame, 14, 7, end=dt.date(2020, 1, 1), source="s3://b/f")


def test_fit_and_score_scores_challenger_and_baseline_on_the_same_holdout(frame):
    window, tr, ho = train.choose_window(frame, 14, 7)
    ev = train.fit_and_score(window, tr, ho, {"max_iter": 5})
    assert set(ev.scores) == {"challenger", "baseline"}
    y = ho["target"].to_numpy()
    assert ev.scores["baseline"] == train.metrics(y, train.seasonal_naive(ho))
    assert ev.scores["challenger"] == train.holdout_metrics(ev.model, ho)
    assert ev.params == {**train.DEFAULT_PARAMS, "max_iter": 5}
    assert ev.window is window and ev.train is tr and ev.holdout is ho


def _wape(value):
    return {"mae": 1.0, "rmse": 1.0, "wape": value}


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "words"),
    [
        (0.40, None, True, "no champion yet"),
        (0.60, None, False, "does not beat the seasonal-naive baseline"),  # tie with baseline
        (float("nan"), None, False, "does not beat the seasonal-naive baseline"),
        (0.50, 0.50, False, "champion kept"),  # tie with the champion
        (0.50 * (1 - 0.02), 0.50, False, "champion kept"),  # exactly at the margin
        (0.50 * (1 - 0.02) - 1e-9, 0.50, True, "by more than 2.0%"),
        (0.55, 0.50, False, "champion kept"),  # worse than the champion
    ],
)
def test_promotion_decision_edges(challenger, champion, promote, words):
    d = train.decide_promotion(
        _wape(challenger),
        BASE,
        None if champion is None else _wape(champion),
        metric="wape",
        margin=0.02,
        champion_version=None if champion is None else "7",
    )
    assert d.promote is promote
    assert words in d.reason
    assert (d.metric, d.margin, d.champion_version) == (
        "wape",
        0.02,
        None if champion is None else "7",
    )


def test_tie_with_the_champion_is_kept_even_with_no_margin():
    d = train.decide_promotion(_wape(0.5), BASE, _wape(0.5), margin=0.0, champion_version="2")
    assert not d.promote and "champion kept" in d.reason


def test_promotion_follows_the_chosen_metric():
    challenger = {"mae": 1.0, "rmse": 9.0, "wape": 0.1}
    champion = {"mae": 2.0, "rmse": 1.0, "wape": 0.5}
    base = {"mae": 3.0, "rmse": 10.0, "wape": 0.6}
    assert train.decide_promotion(challenger, base, champion, metric="mae").promote
    assert not train.decide_promotion(challenger, base, champion, metric="rmse").promote


def test_note_ends_the_reason_of_a_champion_that_could_not_score():
    d = train.decide_promotion(
        _wape(0.4), BASE, None, champion_version="3", note="champion v3 cannot score the holdout"
    )
    assert d.promote and d.champion is None and d.champion_version == "3"
    assert d.reason.startswith("no champion yet")
    assert d.reason.endswith("(champion v3 cannot score the holdout)")
