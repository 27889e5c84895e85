"""ML assets through Dagster on real Delta tables and a real (SQLite) MLflow store: the
promotion gate both ways, lineage, the forecast's model version, drift, and the sensor."""

import datetime as dt
import json
import time
from pathlib import Path

import dagster as dg
import pytest
from deltalake import write_deltalake

from jobs.ml import build_drift_retrain_sensor, evaluate_drift_triggers
from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.ml import tracking
from pipelines.simulation.simulate import Drift
from resources import LakeResource, MLflowResource
from tests.helpers import asset
from tests.synthetic import synthetic_features

pytestmark = pytest.mark.slow  # MLflow training runs on a local store

START = dt.date(2026, 9, 1)
DRIFT_DAY = dt.date(2026, 11, 5)
CALM_DAY = dt.date(2026, 11, 4)
WEAK = {"max_iter": 3}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("ml_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_HOME", str(home))
        mp.setenv("LAKEHOUSE_ENV", "local")
        loc = load_config("local").home
        uri = loc.table_uri("demand_features")
        shift = Drift(region="eu", start=DRIFT_DAY, price_shift=1.25, demand_shift=0.85)
        data = synthetic_features(START, 70, stores=4, skus=20, drift=(shift,))
        write_deltalake(uri, data, partition_by=["date"], mode="overwrite")
        resources = {
            "lake": LakeResource(),
            "mlflow": MLflowResource(tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
                                     artifact_location=str(home / "artifacts")),
        }  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        yield {"home": home, "uri": uri, "resources": resources, "instance": instance}


def _train(env, params=None, tags=None):
    cfg = {"end_date": CALM_DAY.isoformat(), **(params or {})}
    result = dg.materialize(
        [asset("demand_model")],
        resources=env["resources"],
        instance=env["instance"],
        run_config={"ops": {"demand_model": {"config": cfg}}},
        tags=tags,
    )
    assert result.success
    meta = result.asset_materializations_for_node("demand_model")[0].metadata
    checks = result.get_asset_check_evaluations()
    assert [c.check_name for c in checks] == ["demand_model_expectations"]
    assert checks[0].passed, checks[0].metadata
    return {k: v.value for k, v in meta.items()}


@pytest.fixture(scope="module")
def trained(env):
    return [_train(env, WEAK), _train(env), _train(env, WEAK)]


def test_promotion_gate_both_ways(env, trained):
    first, better, worse = trained
    assert first["promoted"] and "no champion yet" in first["promotion_reason"]
    assert (
        better["promoted"] and f"champion v{first['model_version']}" in better["promotion_reason"]
    )
    assert not worse["promoted"] and "champion kept" in worse["promotion_reason"]
    track = env["resources"]["mlflow"].tracking()
    champ = track.version_by_alias("champion")
    challenger = track.version_by_alias("challenger")
    assert str(champ.version) == better["model_version"]
    assert str(challenger.version) == worse["model_version"]
    assert challenger.tags["promotion.decision"] == "rejected"
    assert challenger.tags["promotion.compared_with"] == better["model_version"]
    assert champ.tags["promotion.reason"] == better["promotion_reason"]
    summary = tracking.champion_summary(track)
    assert summary["champion"] == better["model_version"]
    assert summary["latest_challenger"]["decision"] == "rejected"


def test_lineage_is_table_uri_and_delta_version(env, trained):
    version = delta.table_version(env["uri"], {})
    run = env["resources"]["mlflow"].tracking().client().get_run(trained[1]["mlflow_run_id"])
    assert run.data.params["lineage.demand_features.uri"] == env["uri"]
    assert run.data.params["lineage.demand_features.version"] == str(version)
    assert run.data.tags["lineage.demand_features.version"] == str(version)
    assert run.data.params["holdout_end"] == CALM_DAY.isoformat()
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == f"demand_features@v{version}"
    assert trained[1]["lineage"] == [
        {"table": "demand_features", "uri": env["uri"], "version": version}
    ]


def test_forecast_carries_the_champion_version(env, trained):
    result = dg.materialize(
        [asset("demand_forecast")],
        partition_key=CALM_DAY.isoformat(),
        resources=env["resources"],
        instance=env["instance"],
    )
    assert result.success
    meta = result.asset_materializations_for_node("demand_forecast")[0].metadata
    assert meta["model_version"].value == trained[1]["model_version"]
    rows = delta.read_partition(meta["table_uri"].value, {}).to_pandas()
    assert len(rows) == 3 * 4 * 20
    assert set(rows["model_version"]) == {trained[1]["model_version"]}
    assert (rows["prediction"] >= 0).all()
    assert all(c.passed for c in result.get_asset_check_evaluations())


def _drift(env, day):
    result = dg.materialize(
        [asset("feature_drift")],
        partition_key=day.isoformat(),
        resources=env["resources"],
        instance=env["instance"],
    )
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    return result.asset_materializations_for_node("feature_drift")[0].metadata


@pytest.fixture(scope="module")
def drift_days(env, trained):
    return {day: _drift(env, day) for day in (CALM_DAY, DRIFT_DAY, DRIFT_DAY + dt.timedelta(1))}


def test_drift_found_on_the_drift_day_with_a_plot(env, drift_days):
    calm, shifted = drift_days[CALM_DAY], drift_days[DRIFT_DAY]
    assert calm["retrain_recommended"].value is False
    assert shifted["retrain_recommended"].value is True
    assert "region=eu" in shifted["drift_reason"].value
    assert "forecast_wape" in calm  # actuals are in the features: error is known
    assert shifted["plot"].value.startswith("![feature drift")
    png = (env["home"] / shifted["plot_uri"].value.split(str(env["home"]) + "/")[1]).read_bytes()
    assert png[:4] == b"\x89PNG"
    table = delta.read_partition(shifted["table_uri"].value, {}).to_pandas()
    assert {str(d) for d in table["date"].unique()} == {
        str(d) for d in (CALM_DAY, DRIFT_DAY, DRIFT_DAY + dt.timedelta(1))
    }


def test_sensor_one_request_per_trigger_cooldown_and_dedupe(env, drift_days):
    instance = env["instance"]
    later = time.time() + 3 * 24 * 3600  # long after the last training
    first = evaluate_drift_triggers(instance, None, now=later, cooldown_hours=24)
    # two drifted days, but one request: the second falls in the cooldown of the first
    assert len(first.requests) == 1
    req = first.requests[0]
    assert req.tags["lakehouse/drift_partition"] == DRIFT_DAY.isoformat()
    assert "region=eu" in req.tags["lakehouse/drift_reason"]
    assert any("cooldown" in s for s in first.skipped)
    again = evaluate_drift_triggers(instance, first.cursor, now=later + 60, cooldown_hours=24)
    assert again.requests == []  # the cursor moved past both events
    replay = evaluate_drift_triggers(instance, None, now=later, cooldown_hours=24)
    assert [r.run_key for r in replay.requests] == [req.run_key]  # same key: Dagster dedupes
    no_cooldown = evaluate_drift_triggers(instance, None, now=later, cooldown_hours=0)
    assert len(no_cooldown.requests) == 2
    assert len({r.run_key for r in no_cooldown.requests}) == 2
    # just after a training run, the cooldown holds everything back
    recent = evaluate_drift_triggers(instance, None, 24)
    assert recent.requests == [] and len(recent.skipped) == 2
    with dg.build_sensor_context(instance=instance) as ctx:
        result = build_drift_retrain_sensor(24)(ctx)
    assert isinstance(result, dg.SensorResult)
    assert not result.run_requests  # trained minutes ago: cooldown of 24 h from lakehouse.yaml
    assert json.loads(result.cursor)["after"] > 0


def test_triggered_training_records_the_drift_in_mlflow(env, drift_days):
    later = time.time() + 3 * 24 * 3600
    req = evaluate_drift_triggers(env["instance"], None, now=later, cooldown_hours=24).requests[0]
    meta = _train(env, tags=req.tags)
    run = env["resources"]["mlflow"].tracking().client().get_run(meta["mlflow_run_id"])
    assert run.data.tags["trigger.drift_partition"] == DRIFT_DAY.isoformat()
    assert "region=eu" in run.data.params["trigger.drift_reason"]
    assert run.data.tags["trigger.trigger"] == "drift_retrain_sensor"


def test_retrain_on_exactly_a_past_models_data(env, trained, drift_days):
    # the table moves on (a newer version), yet a model can be rebuilt on the version it used
    old = delta.table_version(env["uri"], {})
    extra = synthetic_features(dt.date(2026, 11, 10), 1, stores=4, skus=20, seed=9)
    write_deltalake(env["uri"], extra, partition_by=["date"], mode="append")
    assert delta.table_version(env["uri"], {}) == old + 1
    meta = _train(env, {"features_version": old})
    assert meta["lineage"][0]["version"] == old
    run = env["resources"]["mlflow"].tracking().client().get_run(meta["mlflow_run_id"])
    assert run.data.params["lineage.demand_features.version"] == str(old)
    assert (
        run.data.params["train_rows"]
        == (
            env["resources"]["mlflow"].tracking().client().get_run(trained[1]["mlflow_run_id"])
        ).data.params["train_rows"]
    )


def test_training_reads_its_window_not_the_history(env, trained):
    # runs last: another training run (not promoted: a tie) moves the challenger alias
    import pyarrow.compute as pc

    from pipelines.lake.storage import bytes_read, bytes_read_since, bytes_under

    before = bytes_read()
    meta = _train(env)
    read = bytes_under(bytes_read_since(before), env["uri"])
    window = {k: dt.date.fromisoformat(v) for k, v in meta["window"].items()}
    files = delta.file_actions(env["uri"], {})
    days = pc.cast(files["partition.date"], "date32").to_pylist()
    inside = [window["train_start"] <= d <= window["holdout_end"] for d in days]
    sizes = files["size_bytes"].to_pylist()
    # the table holds days before the window (warm-up) and after its end; none is read
    assert min(days) < window["train_start"] and max(days) > window["holdout_end"]
    # the window's data files, and the log (the lineage reads its commits), nothing else
    log = sum(f.stat().st_size for f in (Path(env["uri"]) / "_delta_log").iterdir())
    window_bytes = sum(s for s, keep in zip(sizes, inside, strict=True) if keep)
    assert window_bytes <= read <= window_bytes + log < sum(sizes)
    rows = delta.read_partition(env["uri"], {}).to_pandas()
    rows_in = rows[
        (rows["date"] >= window["train_start"]) & (rows["date"] <= window["holdout_end"])
    ]
    assert meta["dagster/row_count"] == len(rows_in)
