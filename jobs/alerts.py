"""Run-failure alerting: always logged, posted to Slack when ``SLACK_BOT_TOKEN`` is set."""

import os

import dagster as dg

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


def _post_to_slack(text: str) -> bool:
    # Checked at evaluation, not import: importing the code location must read no secret.
    if not os.environ.get(SLACK_TOKEN_VAR):
        return False
    from dagster_slack import SlackResource  # slack_sdk only when a token is configured

    slack = SlackResource(token=dg.EnvVar(SLACK_TOKEN_VAR)).process_config_and_initialize()
    channel = os.environ.get(SLACK_CHANNEL_VAR, DEFAULT_CHANNEL)
    slack.get_client().chat_postMessage(channel=channel, text=text)
    return True


@dg.run_failure_sensor(
    name="run_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
    """Logs every failed run of this code location and posts it to Slack when configured."""
    text = failure_message(context)
    context.log.error(text)
    if _post_to_slack(text):
        context.log.info(f"posted to Slack {os.environ.get(SLACK_CHANNEL_VAR, DEFAULT_CHANNEL)}")
