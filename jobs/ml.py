"""Retraining: the retrain job, the drift and erasure sensors that request it, a weekly schedule."""

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from assets.erasure import ERASURE
from assets.ml import DRIFT, MODEL, REASON_TAG, SOURCE_TAG, TRIGGER_TAG

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(MODEL),
    description="Retrain the demand model on its configured window and run the promotion gate.",
)

MAX_RECORDS = 200


@dataclass
class DriftTriggers:
    """What one evaluation decided: requests, skipped drift events and the new cursor."""

    requests: list[dg.RunRequest] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cursor: str = ""


def _last_training(instance: dg.DagsterInstance) -> float:
    records = instance.fetch_materializations(dg.AssetKey(MODEL), limit=1).records
    return records[0].timestamp if records else 0.0


def evaluate_drift_triggers(
    instance: dg.DagsterInstance,
    cursor: str | None,
    cooldown_hours: float,
    now: float | None = None,
) -> DriftTriggers:
    """New feature_drift materializations that recommend retraining become run requests.

    One request per triggering materialization (its storage id is the run key, so a replayed
    tick cannot request twice), none while a training ran or was requested within the
    cooldown; the cursor remembers the last event read and the last request's time.
    """
    state: dict[str, Any] = json.loads(cursor) if cursor else {}
    after = int(state.get("after", 0))
    last_request = float(state.get("last_request", 0.0))
    now = time.time() if now is None else now
    cooldown = cooldown_hours * 3600
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(DRIFT), after_storage_id=after or None),
        limit=MAX_RECORDS,
        ascending=True,
    ).records
    out = DriftTriggers()
    last_training = _last_training(instance)
    for rec in records:
        after = max(after, rec.storage_id)
        mat = rec.asset_materialization
        if mat is None:
            continue
        meta = mat.metadata
        flag = meta.get("retrain_recommended")
        if flag is None or not flag.value:
            continue
        reason_value = meta.get("drift_reason")
        reason = str(reason_value.value) if reason_value is not None else "drift"
        since = max(last_training, last_request)
        if now - since < cooldown:
            out.skipped.append(
                f"{mat.partition}: {reason} (cooldown: last training or request "
                f"{(now - since) / 3600:.1f} h ago < {cooldown / 3600:g} h)"
            )
            continue
        out.requests.append(
            dg.RunRequest(
                run_key=f"{DRIFT}:{mat.partition}:{rec.storage_id}",
                tags={
                    TRIGGER_TAG: "drift_retrain_sensor",
                    REASON_TAG: reason[:1000],
                    SOURCE_TAG: str(mat.partition),
                    "lakehouse/drift_storage_id": str(rec.storage_id),
                },
            )
        )
        last_request = now
    out.cursor = json.dumps({"after": after, "last_request": last_request}, sort_keys=True)
    return out


def build_drift_retrain_sensor(cooldown_hours: float) -> dg.SensorDefinition:
    """The drift sensor with the environment's cooldown (``ml.retrain.cooldown_hours``)."""

    @dg.sensor(
        job=retrain_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING
    )
    def drift_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Requests retraining when feature_drift says so, at most once per cooldown."""
        found = evaluate_drift_triggers(context.instance, context.cursor, cooldown_hours)
        for line in found.skipped:
            context.log.info(f"not retraining for {line}")
        skip = None
        if not found.requests:
            skip = "; ".join(found.skipped) or "no new drift that asks for retraining"
        return dg.SensorResult(run_requests=found.requests, cursor=found.cursor, skip_reason=skip)

    return drift_retrain_sensor


@dg.schedule(cron_schedule="0 3 * * 1", job=retrain_job, execution_timezone="UTC")
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every Monday 03:00 UTC, retrains on the newest window (promoted only if better)."""
    scheduled = context.scheduled_execution_time
    key = scheduled.isoformat() if scheduled else "manual"
    return dg.RunRequest(run_key=f"weekly:{key}", tags={TRIGGER_TAG: "weekly_retrain_schedule"})


def evaluate_erasure_triggers(
    instance: dg.DagsterInstance,
    cursor: str | None,
    keys: Sequence[dg.AssetKey] = (dg.AssetKey(ERASURE),),
) -> tuple[list[dg.RunRequest], str]:
    """erasure_receipts materializations that marked a model become retraining requests.

    ``keys``: every jurisdiction's erasure_receipts (one key with one code location for all).
    No cooldown: a champion trained on erased data is replaced as soon as possible. One request
    per materialization (its storage id is the run key); the cursor holds the last event read
    of each key.
    """
    seen: dict[str, int] = json.loads(cursor) if cursor and cursor.startswith("{") else {}
    if cursor and not seen:  # a cursor of one key, as earlier versions kept it
        seen = {k.to_user_string(): int(cursor) for k in keys}
    out = []
    for key in keys:
        name = key.to_user_string()
        after = seen.get(name, 0)
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after or None),
            limit=MAX_RECORDS,
            ascending=True,
        ).records
        for rec in records:
            after = max(after, rec.storage_id)
            mat = rec.asset_materialization
            marked = mat.metadata.get("models_marked") if mat is not None else None
            if mat is None or marked is None or not marked.value:
                continue
            out.append(
                dg.RunRequest(
                    run_key=f"{name}:{mat.partition}:{rec.storage_id}",
                    tags={
                        TRIGGER_TAG: "erased_model_retrain_sensor",
                        REASON_TAG: f"{marked.value} model version(s) trained on data erased "
                        f"at {mat.partition}",
                        "lakehouse/erasure_storage_id": str(rec.storage_id),
                    },
                )
            )
        seen[name] = after
    return out, json.dumps(seen, sort_keys=True)


def build_erased_model_retrain_sensor(keys: Sequence[dg.AssetKey]) -> dg.SensorDefinition:
    """The sensor that retrains when an erasure (of any jurisdiction, ``keys``) marked a model."""

    @dg.sensor(
        job=retrain_job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def erased_model_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Requests retraining when an erasure marked a model as trained on erased data."""
        requests, cursor = evaluate_erasure_triggers(context.instance, context.cursor, keys)
        skip = None if requests else "no erasure marked a model"
        return dg.SensorResult(run_requests=requests, cursor=cursor, skip_reason=skip)

    return erased_model_retrain_sensor
