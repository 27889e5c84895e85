"""The ML half of ``make run``: train, forecast, monitor, let the drift sensor retrain, explain.

Called by the demo once ``demand_features`` exists for the simulated days. Time is compressed:
the demo's drift sensor evaluation uses a clock one cooldown after the last training (in a real
deployment the cooldown is wall time), and the retraining holds out fewer days so the drifted
days are part of what the new model learns from.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import dagster as dg

from assets.ml import DRIFT, FORECAST
from jobs.ml import evaluate_drift_triggers
from pipelines.ml import tracking
from resources.lake import LakeResource
from resources.mlflow import MLflowResource

if TYPE_CHECKING:
    from lakehouse.progress import Stage

# The demo's runs keep their whole logs in the Dagster instance (`make ui` shows them); the
# terminal gets the demo's progress and, for a run that fails, one line saying why.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def failure_reason(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step and its error's own message, on one line."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause  # Dagster wraps the asset's own exception
            message = error.message.strip().splitlines()[0] if error and error.message else ""
            return f"step {event.step_key}: {message or 'failed'}"
    return "no step failed; the run itself did"


def _model_config(**cfg: Any) -> dict[str, Any]:
    return {**QUIET, "ops": {"demand_model": {"config": cfg}}}


def run_ml_demo(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    days: list[dt.date],
    train_end: dt.date,
    retrain_holdout_days: int = 2,
    window_days: int | None = None,
    stage: Stage | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train on data up to ``train_end``, score and monitor ``days``, retrain on drift.

    Returns a JSON-ready summary: the first model, the days where drift asked for retraining
    (and why), the retraining run, and which version is champion now and why. ``tags`` are
    the automation sensor's (the routing tag), given to the training and scoring runs;
    ``stage`` counts the runs as they end.
    """
    tags = tags or {}
    if stage is not None:
        stage.total = 1 + len(days)
    retrain_job = defs.resolve_job_def("retrain_job")
    resources = dict(defs.resources or {})
    lake: LakeResource = resources["lake"]
    cooldown_h = lake.config().ml.retrain.cooldown_hours
    window = {"window_days": window_days} if window_days else {}
    first = retrain_job.execute_in_process(
        instance=instance,
        run_config=_model_config(end_date=train_end.isoformat(), **window),
        tags={**tags, "lakehouse/trigger": "demo_initial_training"},
        raise_on_error=False,
    )
    _advance(stage, "trained the first model")
    if not first.success:
        raise RuntimeError(
            f"demo: the initial training run {first.run_id} failed, {failure_reason(first)} "
            "(its logs: `make ui`, Runs)"
        )
    monitored: dict[str, Any] = {}
    for day in days:
        result = dg.materialize(
            [defs.resolve_assets_def(FORECAST), defs.resolve_assets_def(DRIFT)],
            partition_key=day.isoformat(),
            instance=instance,
            run_config=QUIET,
            raise_on_error=False,
            tags={**tags, "lakehouse/trigger": "demo"},
        )
        _advance(stage, f"scored and monitored {day.isoformat()}")
        mats = result.asset_materializations_for_node(DRIFT) if result.success else []
        drift = mats[0].metadata if mats else None
        monitored[day.isoformat()] = (
            {
                "retrain_recommended": bool(drift["retrain_recommended"].value),
                "reason": str(drift["drift_reason"].value),
            }
            if drift
            else {"failed": True}
        )
    clock = time.time() + cooldown_h * 3600 + 1  # the demo's days pass in minutes
    found = evaluate_drift_triggers(instance, None, cooldown_h, now=clock)
    retrains = []
    if stage is not None and stage.total is not None:
        stage.total += len(found.requests)
    for req in found.requests:
        run = retrain_job.execute_in_process(
            instance=instance,
            run_config=_model_config(holdout_days=retrain_holdout_days, **window),
            tags=req.tags,
            raise_on_error=False,
        )
        _advance(stage, "retrained on drift")
        retrains.append(
            {
                "drift_partition": req.tags.get("lakehouse/drift_partition"),
                "reason": req.tags.get("lakehouse/drift_reason"),
                "success": run.success,
                **({} if run.success else {"error": failure_reason(run)}),
            }
        )
    flagged = [d for d, v in monitored.items() if v.get("retrain_recommended")]
    # as a run would see it: EnvVar fields (the emulated and prod tracking URI) resolved
    mlflow: MLflowResource = resources["mlflow"].process_config_and_initialize()
    return {
        "monitored_days": monitored,
        "first_drift_day": flagged[0] if flagged else None,
        "retrain_requests": len(found.requests),
        "retrain_requests_held_back_by_cooldown": len(found.skipped),
        "retrains": retrains,
        "champion": tracking.champion_summary(mlflow.tracking()),
    }


def _advance(stage: Stage | None, what: str) -> None:
    if stage is not None:
        stage.advance(status=what)
