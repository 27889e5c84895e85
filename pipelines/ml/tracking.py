"""MLflow tracking and registry for the demand forecaster: train, log, register, promote, load.

Free of Dagster. ``mlflow`` is imported inside the functions: loading the code location must
not pay for it. Every training run records its lineage (each input table's URI and the exact
Delta version read) as run parameters and tags, as an MLflow dataset input and as
``lineage.json``, so any model can be retrained on exactly its data. The registry holds the
aliases ``challenger`` (the newest version) and ``champion`` (the one that scores), and every
version carries the promotion decision and its reason as tags.

Training is pieces that can be tested alone: :func:`pipelines.ml.train.choose_window` and
:func:`pipelines.ml.train.fit_and_score` (pure), :func:`score_champion`,
:func:`pipelines.ml.train.decide_promotion` (pure), then the MLflow side: :func:`log_training_run`
(:func:`log_evidence`, then :func:`log_model`), :func:`register_version` and
:func:`record_decision`.
:func:`train_and_register` runs them in that order.

MLflow is reached through an explicit ``MlflowClient`` inside :meth:`Tracking.session`; nothing
here leaves MLflow's process-wide URIs or the environment changed (see :func:`_global_uris`).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.lake.config import MLSettings
from pipelines.lake.config.environment import process_environment
from pipelines.lake.tables import FEATURES
from pipelines.ml import train as training

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput
    from mlflow.models.model import ModelInfo

CHAMPION = "champion"
CHALLENGER = "challenger"
# a model version trained on a table version that an erasure removed (the request ids)
ERASED_TAG = "lakehouse.trained_on_erased"
REFERENCE_ARTIFACT = "reference/reference.parquet"
TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
# MLflow's HTTP settings for a command that only asks (upkeep's registry check): two retries,
# 20 s a request; MLflow reads them per request
QUICK_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
# Types in our own fitted pipeline that skops (MLflow 3's safe sklearn format) asks us to vouch
# for: we wrote these files ourselves, so they are trusted; nothing else is.
SKOPS_TRUSTED = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
# While a session is open the token (and for fluent calls the URIs) are process-wide, so two
# threads of one process must not interleave their set and restore; re-entrant for nesting.
_SESSION_LOCK = threading.RLock()


@dataclass(frozen=True)
class Lineage:
    """One input table as read: URI and the exact Delta version."""

    table: str
    uri: str
    version: int
    rows: int


@dataclass(frozen=True)
class Tracking:
    """Where MLflow lives, what the model is called, and the bearer token of a remote server."""

    tracking_uri: str
    experiment: str = "demand_forecast"
    model_name: str = "demand_forecaster"
    registry_uri: str | None = None
    artifact_location: str | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def registry(self) -> str:
        """The registry URI: ``registry_uri``, else the tracking URI."""
        # Always explicit: a client given no registry URI falls back to MLflow's global one.
        return self.registry_uri or self.tracking_uri

    def client(self) -> MlflowClient:
        """An ``MlflowClient`` here; with a token, use :meth:`session` (it applies the token)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry)

    @contextmanager
    def session(self, *, fluent: bool = False, quick: bool = False) -> Iterator[MlflowClient]:
        """A client on this location, with the token applied until the block ends.

        MLflow's REST client reads the bearer token only from ``MLFLOW_TRACKING_TOKEN``, so it is
        set for the block and the previous value (or its absence) is put back after.
        ``fluent=True`` also points MLflow's global URIs here, for the module-level APIs that
        read nothing else (see :func:`_global_uris`). ``quick=True``: a server that does not
        answer fails in seconds (:data:`QUICK_HTTP`, unless the environment sets its own),
        not after MLflow's 7 retries (about 4 minutes of silence at a terminal).
        """
        values = {TOKEN_ENV: self.token} if self.token else {}
        if quick:
            now = process_environment()
            values.update({k: v for k, v in QUICK_HTTP.items() if k not in now})
        uris = _global_uris(self.tracking_uri, self.registry) if fluent else nullcontext()
        with _SESSION_LOCK, _environment(values), uris:
            yield self.client()

    def experiment_id(self) -> str:
        """The experiment's id; it is created (with ``artifact_location``) on first use."""
        with self.session() as client:
            return _experiment_id(client, self.experiment, self.artifact_location)

    def version_by_alias(self, alias: str) -> Any | None:
        """The model version holding ``alias``, or None."""
        from mlflow.exceptions import MlflowException

        with self.session() as client:
            try:
                return client.get_model_version_by_alias(self.model_name, alias)
            except MlflowException as exc:
                if (
                    "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code)
                    or "not found" in str(exc).lower()
                ):
                    return None
                raise

    def load_model(self, version: str) -> Any:
        """The sklearn model of a registered version (downloaded once per process).

        A registered version's files never change, so a process that scores day after day
        downloads and deserializes each version once, not once per day.
        """
        key = (self.registry, self.model_name, str(version))
        with _LOADED_LOCK:
            if key not in _LOADED_MODELS:
                _remember(_LOADED_MODELS, key, self._download_model(str(version)))
            return _LOADED_MODELS[key]

    def _download_model(self, version: str) -> Any:
        import mlflow

        # not mlflow.sklearn.load_model("models:/…"): it resolves the name through the global
        # registry URI; the client resolves it here, and the files load from a local copy
        with self.session() as client, tempfile.TemporaryDirectory() as tmp:
            uri = client.get_model_version_download_uri(self.model_name, version)
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=self.tracking_uri
            )
            return mlflow.sklearn.load_model(path)

    def load_reference(self, version: Any) -> pd.DataFrame:
        """The training reference sample stored with a model version (downloaded once)."""
        key = (self.tracking_uri, str(version.run_id), REFERENCE_ARTIFACT)
        with _LOADED_LOCK:
            if key not in _LOADED_REFERENCES:
                with self.session() as client, tempfile.TemporaryDirectory() as tmp:
                    path = client.download_artifacts(version.run_id, REFERENCE_ARTIFACT, tmp)
                    _remember(_LOADED_REFERENCES, key, pd.read_parquet(path))
            return _LOADED_REFERENCES[key].copy()  # the caller's to change


# Models and references already loaded in this process (a few: the champion, a challenger).
_LOADED_LOCK = _SESSION_LOCK  # one lock: a load inside a session must not wait on a second
_LOADED_MODELS: dict[tuple[str, ...], Any] = {}
_LOADED_REFERENCES: dict[tuple[str, ...], pd.DataFrame] = {}
_LOADED_KEEP = 4


def _remember(cache: dict[tuple[str, ...], Any], key: tuple[str, ...], value: Any) -> None:
    while len(cache) >= _LOADED_KEEP:
        cache.pop(next(iter(cache)))  # the oldest
    cache[key] = value


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block; put back what was there (or nothing) after."""
    now = process_environment()
    saved = {k: now.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        _restore_environment(saved)


def _restore_environment(saved: Mapping[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextmanager
def _global_uris(tracking_uri: str, registry_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs here; restore them on exit.

    Only for module-level APIs that take no URI: ``mlflow.sklearn.log_model`` builds its own
    client from the global tracking URI and finds its run through the fluent active run.
    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` (the registry likewise) for
    subprocesses, so the variables are put back too. MLflow has no public way to ask whether a
    URI was set (``get_tracking_uri()`` resolves a default), hence the read of its private module
    attributes; tests/test_tracking.py fails if an upgrade moves them.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    previous_tracking = tracking_state._tracking_uri
    previous_registry = registry_state._registry_uri
    now = process_environment()
    saved = {k: now.get(k) for k in _URI_ENV}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    try:
        yield
    finally:
        # None is how MLflow itself unsets them (its own _use_tracking_uri does this)
        mlflow.set_tracking_uri(previous_tracking)  # type: ignore[arg-type]
        mlflow.set_registry_uri(previous_registry)  # type: ignore[arg-type]
        _restore_environment(saved)


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException:
        # another process may have created it since the lookup: re-running stays safe
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


@dataclass(frozen=True)
class TrainingOutcome:
    """What a training run produced and decided."""

    run_id: str
    model_name: str
    version: str
    promoted: bool
    reason: str
    champion_version: str
    window: training.Window
    metrics: dict[str, dict[str, float]]
    lineage: list[Lineage]
    trigger: dict[str, str] = field(default_factory=dict)

    def metrics_frame(self) -> pd.DataFrame:
        """Holdout metrics per candidate (challenger, baseline, champion) with lineage."""
        rows = []
        lin = self.lineage[0] if self.lineage else None
        for candidate, m in self.metrics.items():
            rows.append(
                {
                    "candidate": candidate,
                    **{k: m.get(k) for k in training.METRICS},
                    "table_uri": lin.uri if lin else None,
                    "table_version": lin.version if lin else None,
                }
            )
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class ChampionScore:
    """The registered champion's metrics on the challenger's holdout, or why there are none."""

    version: str | None
    metrics: dict[str, float] | None
    note: str = ""


@dataclass(frozen=True, eq=False)
class RunRecord:
    """Everything a training run logs: the evaluation, all scores, the decision, its inputs."""

    evaluation: training.Evaluation
    scores: dict[str, dict[str, float]]
    decision: training.PromotionDecision
    lineage: list[Lineage]
    trigger: dict[str, str]


def score_champion(tracking: Tracking, holdout: pd.DataFrame) -> ChampionScore:
    """The current champion scored on ``holdout``; no metrics when there is none or it fails.

    A champion marked as trained on erased data (:data:`ERASED_TAG`) is not scored: it is
    replaced by a challenger that beats the baseline.
    """
    champion = tracking.version_by_alias(CHAMPION)
    if champion is None:
        return ChampionScore(None, None)
    version = str(champion.version)
    erased = (champion.tags or {}).get(ERASED_TAG)
    if erased:  # it may not keep the alias by its score: the challenger must beat the baseline
        return ChampionScore(
            version, None, f"champion v{version} was trained on erased data (request {erased})"
        )
    try:
        return ChampionScore(
            version, training.holdout_metrics(tracking.load_model(version), holdout)
        )
    except Exception as exc:  # a champion that cannot score today's features is replaced
        return ChampionScore(version, None, f"champion v{version} cannot score the holdout: {exc}")


def run_params(record: RunRecord) -> dict[str, Any]:
    """The run's parameters: model settings, window, sizes, gate, trigger and lineage."""
    ev, decision = record.evaluation, record.decision
    return {
        **{f"model.{k}": v for k, v in ev.params.items()},
        **ev.window.as_params(),
        "train_rows": len(ev.train),
        "holdout_rows": len(ev.holdout),
        "features": ",".join(training.MODEL_INPUTS),
        "baseline": f"seasonal_naive({training.BASELINE})",
        "promotion_metric": decision.metric,
        "promotion_margin": decision.margin,
        **{f"trigger.{k}": v[:500] for k, v in record.trigger.items()},
        **_lineage_tags(record.lineage),
    }


def _lineage_tags(lineage: list[Lineage]) -> dict[str, str]:
    out = {}
    for lin in lineage:
        out[f"lineage.{lin.table}.uri"] = lin.uri
        out[f"lineage.{lin.table}.version"] = str(lin.version)
    return out


def _decision_tags(decision: training.PromotionDecision) -> dict[str, str]:
    return {
        "promotion.decision": "promoted" if decision.promote else "rejected",
        "promotion.reason": decision.reason[:5000],
    }


def version_tags(record: RunRecord) -> dict[str, str]:
    """The registered version's tags: decision and why, holdout scores, lineage, trigger."""
    decision = record.decision
    return {
        **_decision_tags(decision),
        "promotion.metric": decision.metric,
        "promotion.margin": str(decision.margin),
        "promotion.compared_with": decision.champion_version or "none",
        **{f"holdout.{c}.{k}": f"{v:.6g}" for c, m in record.scores.items() for k, v in m.items()},
        **_lineage_tags(record.lineage),
        **{f"trigger.{k}": v[:500] for k, v in record.trigger.items()},
    }


def _dataset_input(sample: pd.DataFrame, lin: Lineage) -> DatasetInput:
    """A training input named table@vN whose source is the table URI where MLflow knows it."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    name = f"{lin.table}@v{lin.version}"
    try:
        dataset = mlflow.data.from_pandas(sample, source=lin.uri, name=name)  # type: ignore[attr-defined]
    except MlflowException:
        # schemes MLflow has no resolver for (az://, emulator URLs): the URI stays in the
        # input's tags and in the run's lineage params, which is what retraining reads
        dataset = mlflow.data.from_pandas(sample, name=name)  # type: ignore[attr-defined]
    tags = {"delta_version": str(lin.version), "uri": lin.uri, MLFLOW_DATASET_CONTEXT: "training"}
    return DatasetInput(dataset._to_mlflow_entity(), [InputTag(k, v) for k, v in tags.items()])


def run_metrics(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The run's metrics, ``<candidate>_<metric>``; undefined values (NaN WAPE) are left out."""
    return {f"{c}_{k}": v for c, m in scores.items() for k, v in m.items() if np.isfinite(v)}


def log_training_run(
    tracking: Tracking, client: MlflowClient, record: RunRecord, reference_rows: int
) -> tuple[str, ModelInfo]:
    """One finished run holding params, metrics, lineage, decision, reference sample and model.

    The run is marked FAILED when any of it fails, so a half-logged run is never FINISHED.
    """
    from mlflow.tracking.context.registry import resolve_tags

    run = client.create_run(
        _experiment_id(client, tracking.experiment, tracking.artifact_location),
        run_name=f"demand_model {record.evaluation.window.holdout_end}",
        # the tags mlflow.start_run adds (user, source, git commit), then the trigger
        tags=resolve_tags({f"trigger.{k}": v for k, v in record.trigger.items()}),
    )
    run_id = run.info.run_id
    try:
        log_evidence(client, run_id, record, reference_rows)
        info = log_model(tracking, run_id, record.evaluation)  # last: it ends the run
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id, info


def log_evidence(client: MlflowClient, run_id: str, record: RunRecord, reference_rows: int) -> None:
    """Params, metrics, lineage (tags, dataset inputs, lineage.json), decision, reference."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    tags = {**_lineage_tags(record.lineage), **_decision_tags(record.decision)}
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in run_metrics(record.scores).items()],
        params=[Param(k, str(v)) for k, v in run_params(record).items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    sample = record.evaluation.train.head(1000)
    # the rows trained on are the first input's (the features); the tables behind them by name
    inputs = [
        _dataset_input(sample if i == 0 else sample.head(0), lin)
        for i, lin in enumerate(record.lineage)
    ]
    client.log_inputs(run_id, inputs)
    lineage = {
        "inputs": [asdict(lin) for lin in record.lineage],
        "window": record.evaluation.window.as_params(),
    }
    client.log_dict(run_id, lineage, "lineage.json")
    _log_reference(client, run_id, record.evaluation, reference_rows)


def _log_reference(client: MlflowClient, run_id: str, ev: training.Evaluation, rows: int) -> None:
    """The training sample with predictions that drift monitoring compares days with."""
    ref = training.reference_sample(ev.train, training.predict(ev.model, ev.train), rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.parquet"
        ref.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path="reference")


# The packages a logged model imports when loaded: the pipeline, its arrays and skops format.
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")


def log_model(tracking: Tracking, run_id: str, ev: training.Evaluation) -> ModelInfo:
    """Log the fitted pipeline with signature and input example into ``run_id``; end the run."""
    import mlflow
    from mlflow.models import infer_signature

    inputs = training.model_inputs(ev.holdout.head(5))
    signature = infer_signature(inputs, training.predict(ev.model, inputs))
    # log_model has no client form: it reads the global tracking URI, and takes the run's
    # experiment from the active run (else from MLFLOW_EXPERIMENT_* or a global experiment)
    with tracking.session(fluent=True), mlflow.start_run(run_id=run_id):
        return mlflow.sklearn.log_model(
            ev.model,
            name="model",
            signature=signature,
            input_example=inputs,
            skops_trusted_types=SKOPS_TRUSTED,
            pip_requirements=model_requirements(),
        )


def model_requirements() -> list[str]:
    """What loading and serving the model needs, pinned to the versions that trained it.

    Given no list, MLflow starts a Python that imports the model to guess one: seconds per
    logged model, and it listed test tools of this environment (pytest, rich) as well.
    """
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_PACKAGES]


def register_version(tracking: Tracking, run_id: str, info: ModelInfo) -> str:
    """Register the logged model as a new version of the model name (created if needed)."""
    from mlflow.exceptions import MlflowException

    # fluent: MLflow's SQL registry looks the logged model of a models:/ source up through a
    # default MlflowClient(), i.e. the global tracking URI (its own TODO in
    # sqlalchemy_store.create_model_version); the calls themselves go through our client
    with tracking.session(fluent=True) as client:
        try:
            client.create_registered_model(tracking.model_name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        version = client.create_model_version(
            tracking.model_name, source=info.model_uri, run_id=run_id, model_id=info.model_id
        )
    return str(version.version)


def record_decision(client: MlflowClient, model_name: str, version: str, record: RunRecord) -> None:
    """Tag the version with the decision and its evidence; then move the aliases.

    Tags first, so a version never holds ``champion`` without the reason it does.
    """
    for key, value in version_tags(record).items():
        client.set_model_version_tag(model_name, version, key, value)
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    if record.decision.promote:
        client.set_registered_model_alias(model_name, CHAMPION, version)


def train_and_register(
    tracking: Tracking,
    features: pd.DataFrame,
    lineage: list[Lineage],
    settings: MLSettings,
    *,
    params: Mapping[str, Any] | None = None,
    end: dt.date | None = None,
    trigger: Mapping[str, str] | None = None,
    window: training.Window | None = None,
) -> TrainingOutcome:
    """Fit on the window, compare with baseline and champion on one holdout, log, register.

    The new version always gets alias ``challenger``; it gets ``champion`` only when
    :func:`pipelines.ml.train.decide_promotion` says so. ``trigger`` (why this run happened, for
    example which drift) becomes run tags and parameters. ``window``: planned already on the
    table's dates (``features`` then holds only its rows), else planned on ``features``.
    """
    source = lineage[0].uri if lineage else FEATURES.name
    window, train, holdout = training.choose_window(
        features, settings.training_window_days, settings.holdout_days, end, source, window
    )
    ev = training.fit_and_score(window, train, holdout, params)
    champion = score_champion(tracking, holdout)
    decision = training.decide_promotion(
        ev.scores["challenger"],
        ev.scores["baseline"],
        champion.metrics,
        metric=settings.promotion_metric,
        margin=settings.promotion_margin,
        champion_version=champion.version,
        note=champion.note,
    )
    scores = {**ev.scores, **({"champion": champion.metrics} if champion.metrics else {})}
    record = RunRecord(
        ev, scores, decision, lineage, {k: str(v) for k, v in (trigger or {}).items()}
    )
    with tracking.session() as client:
        run_id, info = log_training_run(tracking, client, record, settings.reference_rows)
        version = register_version(tracking, run_id, info)
        record_decision(client, tracking.model_name, version, record)
    return TrainingOutcome(
        run_id=run_id,
        model_name=tracking.model_name,
        version=version,
        promoted=decision.promote,
        reason=decision.reason,
        champion_version=version if decision.promote else champion.version or "",
        window=window,
        metrics=scores,
        lineage=lineage,
        trigger=record.trigger,
    )


def champion_summary(tracking: Tracking) -> dict[str, Any]:
    """Which version is champion and why (for the demo summary and the UI)."""
    champ = tracking.version_by_alias(CHAMPION)
    challenger = tracking.version_by_alias(CHALLENGER)
    if champ is None:
        return {"model": tracking.model_name, "champion": None, "why": "no champion registered"}
    tags = dict(champ.tags or {})
    out: dict[str, Any] = {
        "model": tracking.model_name,
        "champion": str(champ.version),
        "why": tags.get("promotion.reason", ""),
        "holdout_wape": tags.get("holdout.challenger.wape"),
        "trained_on": {
            k[len("lineage.") :]: v for k, v in tags.items() if k.startswith("lineage.")
        },
        "trigger": {k[len("trigger.") :]: v for k, v in tags.items() if k.startswith("trigger.")},
    }
    if challenger is not None and str(challenger.version) != str(champ.version):
        ctags = dict(challenger.tags or {})
        out["latest_challenger"] = {
            "version": str(challenger.version),
            "decision": ctags.get("promotion.decision"),
            "why": ctags.get("promotion.reason"),
        }
    return out


def score_with_champion(tracking: Tracking, features: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Forecasts of the champion for feature rows, and the champion's version."""
    champ = tracking.version_by_alias(CHAMPION)
    if champ is None:
        raise LookupError(
            f"model {tracking.model_name!r} at {tracking.tracking_uri} has no 'champion' "
            "alias yet: materialize demand_model first"
        )
    model = tracking.load_model(str(champ.version))
    return training.predict(model, features), str(champ.version)
