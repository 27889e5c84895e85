"""Alerts on failed runs and failed asset checks: logged, and posted to Slack when configured.

Slack when ``SLACK_BOT_TOKEN`` is set. One channel for both, so an operator watches one place.
"""

import json
from collections.abc import Sequence
from typing import Any

import dagster as dg

from pipelines.lake.config.environment import env

SLACK_TOKEN_VAR = "SLACK_BOT_TOKEN"
SLACK_CHANNEL_VAR = "LAKEHOUSE_SLACK_CHANNEL"
DEFAULT_CHANNEL = "#lakehouse-alerts"


def failure_message(context: dg.RunFailureSensorContext) -> str:
    """One line an operator can act on: job, partition, run id and the error."""
    run = context.dagster_run
    partition = run.tags.get("dagster/partition")
    where = f" partition {partition}" if partition else ""
    error = context.failure_event.message or "no error message"
    return f"Run {run.run_id} of {run.job_name}{where} failed: {error}"


def _channel() -> str:
    channel = env(SLACK_CHANNEL_VAR)
    return DEFAULT_CHANNEL if channel is None else channel


def _post_to_slack(text: str) -> bool:
    # Checked at evaluation, not import: importing the code location must read no secret.
    if not env(SLACK_TOKEN_VAR):
        return False
    from dagster_slack import SlackResource  # slack_sdk only when a token is configured

    slack = SlackResource(token=dg.EnvVar(SLACK_TOKEN_VAR)).process_config_and_initialize()
    channel = _channel()
    slack.get_client().chat_postMessage(channel=channel, text=text)
    return True


@dg.run_failure_sensor(
    name="run_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
    """Logs every failed run of this code location and posts it to Slack when configured."""
    send_alert(context, failure_message(context))


def send_alert(context: dg.SensorEvaluationContext | dg.RunFailureSensorContext, text: str) -> None:
    """Log an alert as an error, and post it to Slack when a token is configured."""
    context.log.error(text)
    if _post_to_slack(text):
        context.log.info(f"posted to Slack {_channel()}")


# Failed checks looked at per check and evaluation; older ones than the cursor were alerted.
CHECK_HISTORY = 20


def check_failure_message(record: Any) -> str:
    """One line for a failed check: the check, its asset and partition, severity, and why."""
    key = record.key
    event = record.event
    evaluation = event.dagster_event.event_specific_data if event and event.dagster_event else None
    severity = getattr(getattr(evaluation, "severity", None), "value", "ERROR")
    meta = getattr(evaluation, "metadata", {}) or {}
    why = meta.get("alert")
    detail = str(why.value) if why is not None else "see the check's metadata in the UI"
    partition = f" partition {record.partition}" if record.partition else ""
    return (
        f"Check {key.name} on {key.asset_key.to_user_string()}{partition} failed "
        f"({severity}) in run {record.run_id}: {detail}"
    )


def failed_checks_since(
    instance: dg.DagsterInstance, keys: Sequence[dg.AssetCheckKey], after: int
) -> list[Any]:
    """Failed evaluations of the checks newer than record id ``after``, oldest first."""
    # the status enum is not exported by dagster; its value is stable in the storage schema
    records = [
        r
        for key in keys
        for r in instance.event_log_storage.get_asset_check_execution_history(
            key, limit=CHECK_HISTORY
        )
        if r.id > after and r.status.value == "FAILED"
    ]
    return sorted(records, key=lambda r: r.id)


@dg.sensor(
    name="check_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def check_failure_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Alerts on every failed asset check (anomalies, freshness, expectations) like failed runs."""
    repo = context.repository_def
    keys = sorted(repo.asset_graph.asset_check_keys, key=str) if repo is not None else []
    after = int(json.loads(context.cursor)["id"]) if context.cursor else 0
    records = failed_checks_since(context.instance, keys, after)
    for record in records:
        send_alert(context, check_failure_message(record))
    if records:
        context.update_cursor(json.dumps({"id": max(r.id for r in records)}))
    return dg.SkipReason(f"{len(records)} failed check(s) alerted")
