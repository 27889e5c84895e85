"""MLflow side of training: explicit clients, no process-wide state left behind, the token
applied only inside a session, what a version is tagged with, and a failed run marked FAILED."""

import datetime as dt
import http.server
import json
import os
import threading

import mlflow
import pandas as pd
import pytest

from pipelines.lake.config import MLSettings
from pipelines.ml import tracking
from pipelines.ml import train as training
from tests.synthetic import synthetic_features

START = dt.date(2026, 9, 1)
END = dt.date(2026, 10, 30)


def _global_state():
    return (
        mlflow.get_tracking_uri(),
        mlflow.get_registry_uri(),
        {k: os.environ.get(k) for k in (*tracking._URI_ENV, tracking.TOKEN_ENV)},
    )


@pytest.fixture
def outer(tmp_path, monkeypatch):
    """Global MLflow URIs pointing elsewhere (as another library in the process might set)."""
    monkeypatch.delenv(tracking.TOKEN_ENV, raising=False)
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with tracking._global_uris(uri, uri):
        yield uri


def test_token_is_never_printed():
    t = tracking.Tracking(tracking_uri="http://127.0.0.1:1", token="s3cret-token")
    assert "s3cret-token" not in repr(t) and "s3cret-token" not in str(t)


def test_session_sets_token_and_uris_only_inside_and_restores_them(outer, tmp_path):
    inside = f"sqlite:///{tmp_path / 'inside.db'}"
    t = tracking.Tracking(tracking_uri=inside, token="tok")
    before = _global_state()
    with t.session() as client:
        # plain session: the token, but MLflow's global URIs untouched
        assert os.environ[tracking.TOKEN_ENV] == "tok"
        assert mlflow.get_tracking_uri() == outer
        assert client.tracking_uri == inside
        assert client._registry_uri == inside
        with t.session(fluent=True):
            assert mlflow.get_tracking_uri() == inside
            assert mlflow.get_registry_uri() == inside
            assert os.environ["MLFLOW_TRACKING_URI"] == inside
        assert mlflow.get_tracking_uri() == outer
    assert _global_state() == before
    assert tracking.TOKEN_ENV not in os.environ


def test_session_puts_back_a_token_that_was_there_even_on_error(outer, monkeypatch, tmp_path):
    monkeypatch.setenv(tracking.TOKEN_ENV, "someone-elses")
    t = tracking.Tracking(tracking_uri=f"sqlite:///{tmp_path / 'inside.db'}", token="ours")
    before = _global_state()
    with pytest.raises(RuntimeError, match="boom"), t.session(fluent=True):
        assert os.environ[tracking.TOKEN_ENV] == "ours"
        raise RuntimeError("boom")
    assert _global_state() == before
    assert os.environ[tracking.TOKEN_ENV] == "someone-elses"


def test_unset_global_uris_are_unset_again(monkeypatch, tmp_path):
    # the private module attributes _global_uris reads; an MLflow upgrade that moves them fails here
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    for name in tracking._URI_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking_state, "_tracking_uri", None)
    monkeypatch.setattr(registry_state, "_registry_uri", None)
    inside = f"sqlite:///{tmp_path / 'inside.db'}"
    with tracking.Tracking(tracking_uri=inside).session(fluent=True):
        assert tracking_state._tracking_uri == inside
    assert tracking_state._tracking_uri is None and registry_state._registry_uri is None
    assert not any(name in os.environ for name in tracking._URI_ENV)


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"})
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_token_reaches_a_rest_server_as_bearer_and_leaves_no_trace(monkeypatch):
    monkeypatch.delenv(tracking.TOKEN_ENV, raising=False)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        t = tracking.Tracking(tracking_uri=url, token="s3cret")
        assert t.version_by_alias("champion") is None
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.seen and all(auth == "Bearer s3cret" for _, auth in _Recorder.seen)
    assert "/registered-models/alias" in _Recorder.seen[0][0]
    assert tracking.TOKEN_ENV not in os.environ


def _record(trigger=None):
    day = pd.Timestamp(START)
    frame = pd.DataFrame({"date": [day] * 3})
    window = training.Window(START, START, START, START)
    scores = {"challenger": {"wape": 0.4}, "baseline": {"wape": 0.6}, "champion": {"wape": 0.5}}
    ev = training.Evaluation(window, frame, frame.head(2), None, {"max_iter": 3}, scores)
    decision = training.decide_promotion(
        {"wape": 0.4}, {"wape": 0.6}, {"wape": 0.5}, champion_version="4"
    )
    lineage = [tracking.Lineage("demand_features", "s3://b/demand_features", 12, 3)]
    return tracking.RunRecord(ev, scores, decision, lineage, trigger or {})


def test_version_tags_hold_decision_scores_lineage_and_a_bounded_trigger():
    tags = tracking.version_tags(_record({"drift_reason": "x" * 900}))
    assert tags["promotion.decision"] == "promoted"
    assert tags["promotion.compared_with"] == "4"
    assert (tags["promotion.metric"], tags["promotion.margin"]) == ("wape", "0.02")
    assert tags["holdout.champion.wape"] == "0.5"
    assert tags["lineage.demand_features.uri"] == "s3://b/demand_features"
    assert tags["lineage.demand_features.version"] == "12"
    assert len(tags["trigger.drift_reason"]) == 500
    assert all(isinstance(v, str) for v in tags.values())


def test_run_params_hold_window_sizes_gate_and_lineage():
    params = tracking.run_params(_record({"trigger": "drift_retrain_sensor"}))
    assert params["model.max_iter"] == 3
    assert (params["train_rows"], params["holdout_rows"]) == (3, 2)
    assert params["holdout_end"] == START.isoformat()
    assert params["promotion_metric"] == "wape" and params["promotion_margin"] == 0.02
    assert params["lineage.demand_features.version"] == "12"
    assert params["trigger.trigger"] == "drift_retrain_sensor"


@pytest.fixture(scope="module")
def features():
    return synthetic_features(START, 63, stores=3, skus=12).to_pandas()


def _lineage(features):
    return [tracking.Lineage("demand_features", "/lake/demand_features", 5, len(features))]


@pytest.mark.slow
def test_train_and_register_uses_its_own_store_and_leaves_globals_alone(tmp_path, outer, features):
    t = tracking.Tracking(
        tracking_uri=f"sqlite:///{tmp_path / 'own.db'}",
        artifact_location=str(tmp_path / "artifacts"),
        token="tok",
    )
    before = _global_state()
    settings = MLSettings()
    first = tracking.train_and_register(
        t, features, _lineage(features), settings, params={"max_iter": 3}, end=END
    )
    second = tracking.train_and_register(t, features, _lineage(features), settings, end=END)
    assert _global_state() == before
    assert first.promoted and "no champion yet" in first.reason
    assert second.promoted and f"champion v{first.version}" in second.reason
    assert set(second.metrics) == {"challenger", "baseline", "champion"}
    champ = t.version_by_alias(tracking.CHAMPION)
    assert str(champ.version) == second.version and champ.run_id == second.run_id
    assert t.client().get_run(second.run_id).info.status == "FINISHED"
    reference = t.load_reference(champ)
    assert len(reference) == len(training.split(features, second.window)[0])
    assert "prediction" in reference
    assert not (tmp_path / "elsewhere.db").exists()  # the store the globals name was never opened


def test_a_run_that_fails_midway_is_failed_and_registers_nothing(tmp_path, features, monkeypatch):
    t = tracking.Tracking(
        tracking_uri=f"sqlite:///{tmp_path / 'own.db'}",
        artifact_location=str(tmp_path / "artifacts"),
    )

    def broken(*args, **kwargs):
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(tracking, "log_model", broken)
    with pytest.raises(OSError, match="artifact store unreachable"):
        tracking.train_and_register(
            t, features, _lineage(features), MLSettings(), params={"max_iter": 3}, end=END
        )
    client = t.client()
    experiment = client.get_experiment_by_name(t.experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert client.search_registered_models() == []


def test_run_metrics_leave_out_undefined_values():
    scores = {"challenger": {"mae": 1.0, "wape": float("nan")}, "baseline": {"mae": 2.0}}
    assert tracking.run_metrics(scores) == {"challenger_mae": 1.0, "baseline_mae": 2.0}


def test_a_logged_model_lists_its_pinned_requirements_without_a_guessing_subprocess(
    tmp_path, features, monkeypatch
):
    import subprocess

    t = tracking.Tracking(
        tracking_uri=f"sqlite:///{tmp_path / 'own.db'}",
        artifact_location=str(tmp_path / "artifacts"),
    )
    started: list = []
    real = subprocess.Popen

    def spy(*args, **kwargs):
        started.append(args[0] if args else kwargs.get("args"))
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    out = tracking.train_and_register(
        t, features, _lineage(features), MLSettings(), params={"max_iter": 3}, end=END
    )
    # without a list, MLflow starts a Python running its module-capturing script on the model
    assert not [cmd for cmd in started if "_capture_modules" in " ".join(map(str, cmd))]
    uri = t.client().get_model_version_download_uri(t.model_name, out.version)
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{uri}/requirements.txt", dst_path=str(tmp_path), tracking_uri=t.tracking_uri
    )
    with open(path) as fh:
        listed = fh.read().split()
    assert listed == tracking.model_requirements()
    assert any(r.startswith("scikit-learn==") for r in listed)


def test_a_version_and_its_reference_are_downloaded_once_per_process(
    tmp_path, features, monkeypatch
):
    from mlflow import MlflowClient

    t = tracking.Tracking(
        tracking_uri=f"sqlite:///{tmp_path / 'own.db'}",
        artifact_location=str(tmp_path / "artifacts"),
    )
    out = tracking.train_and_register(
        t, features, _lineage(features), MLSettings(), params={"max_iter": 3}, end=END
    )
    models: list[str] = []
    references: list[str] = []
    real_model, real_reference = (
        mlflow.artifacts.download_artifacts,
        MlflowClient.download_artifacts,
    )

    def count_model(*args, **kwargs):
        models.append(kwargs.get("artifact_uri", ""))
        return real_model(*args, **kwargs)

    def count_reference(self, *args, **kwargs):
        references.append(args[1] if len(args) > 1 else "")
        return real_reference(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", count_model)
    monkeypatch.setattr(MlflowClient, "download_artifacts", count_reference)
    tracking._LOADED_MODELS.clear()
    tracking._LOADED_REFERENCES.clear()
    first, again = t.load_model(out.version), t.load_model(out.version)
    assert first is again and len(models) == 1
    assert len(training.predict(first, features.head(3))) == 3
    champ = t.version_by_alias(tracking.CHAMPION)
    ref = t.load_reference(champ)
    ref["prediction"] = -1.0  # a caller's change stays the caller's
    assert (t.load_reference(champ)["prediction"] != -1.0).all()
    assert references == [tracking.REFERENCE_ARTIFACT]
