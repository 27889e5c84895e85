"""Schedules built from the groups present, partition keys by date, freshness, failure alerts."""

import datetime as dt

import dagster as dg
import pytest

from assets import ASSETS
from assets.freshness import FRESHNESS_BY_GROUP, policy_for, with_freshness
from assets.partitions import date_region
from jobs.alerts import failure_message, run_failure_sensor
from jobs.partition_keys import keys_between
from jobs.schedules import build_schedules
from pipelines.definitions import build_definitions
from resources import LakeResource

daily = dg.DailyPartitionsDefinition(start_date="2026-10-01", end_offset=1)


@dg.asset(partitions_def=daily, group_name="silver")
def silver_events() -> None:
    """Silver."""


@dg.asset(partitions_def=daily, group_name="gold", deps=[silver_events])
def gold_daily_demand() -> None:
    """Gold."""


@dg.asset(group_name="replication", deps=[gold_daily_demand])
def gold_replica() -> None:
    """An unpartitioned replica."""


@dg.asset(group_name="gold", deps=[gold_daily_demand])
def gold_summary() -> None:
    """An unpartitioned asset in the same group: it needs a job of its own."""


def test_every_group_gets_its_schedules():
    names = {s.name for s in build_definitions("local").schedules}
    assert names == {
        "hourly_ingest_schedule",
        "daily_lakehouse_schedule",
        "daily_features_schedule",
        "daily_scoring_schedule",
        "weekly_retrain_schedule",
    }
    assert {s.name for s in build_schedules(ASSETS)} == names - {
        "hourly_ingest_schedule",
        "weekly_retrain_schedule",
    }


def test_schedules_split_by_partitioning_and_run_yesterday():
    schedules = {
        s.name: s for s in build_schedules([silver_events, gold_daily_demand, gold_summary])
    }
    assert set(schedules) == {"daily_lakehouse_schedule", "daily_lakehouse_schedule_2"}
    assert schedules["daily_lakehouse_schedule"].description.startswith("Every day at 01:30 UTC")
    defs = dg.Definitions(
        assets=[silver_events, gold_daily_demand, gold_summary],
        schedules=list(schedules.values()),
    )
    job = defs.resolve_job_def("daily_lakehouse_job")
    assert job.tags["lakehouse/spark"] == "true"
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "silver_events",
        "gold_daily_demand",
    }
    ctx = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 11, 22, 1, 30, tzinfo=dt.UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = defs.resolve_schedule_def("daily_lakehouse_schedule").evaluate_tick(ctx).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-21"]
    whole = defs.resolve_schedule_def("daily_lakehouse_schedule_2")
    assert len(whole.evaluate_tick(ctx).run_requests) == 1  # unpartitioned: the whole asset


def test_keys_between_takes_dates_and_every_or_some_regions():
    start, end = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
    keys = keys_between(date_region, start, end)
    assert sorted(keys) == sorted(
        f"{d}|{r}" for d in ("2026-10-01", "2026-10-02") for r in ("us", "eu", "apac")
    )
    assert sorted(keys_between(date_region, start, end, regions=["eu"])) == [
        "2026-10-01|eu",
        "2026-10-02|eu",
    ]
    assert keys_between(daily, start, start) == ["2026-10-01"]
    with pytest.raises(ValueError, match=r"unknown region\(s\) mars; known: us, eu, apac"):
        keys_between(date_region, start, end, regions=["mars"])
    with pytest.raises(ValueError, match="before"):
        keys_between(daily, end, start)


def test_freshness_policies_by_group_and_key():
    graph = build_definitions("local").resolve_asset_graph()
    for key in ("bronze_events", "bronze_quarantine"):
        assert graph.get(dg.AssetKey(key)).freshness_policy == FRESHNESS_BY_GROUP["bronze"]
    assert policy_for(dg.AssetSpec("demand_forecast", group_name="ml")) is not None
    assert policy_for(dg.AssetSpec("demand_model", group_name="ml")) is None
    [mapped] = with_freshness([gold_replica])
    assert isinstance(mapped, dg.AssetsDefinition)
    assert (
        mapped.specs_by_key[dg.AssetKey("gold_replica")].freshness_policy
        == (FRESHNESS_BY_GROUP["replication"])
    )


def test_run_failure_sensor_names_the_job_partition_and_error(monkeypatch):
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)

    @dg.asset(partitions_def=daily)
    def broken() -> None:
        raise ValueError("landing object corrupt")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [broken], partition_key="2026-10-03", instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    ctx = dg.build_run_status_sensor_context(
        sensor_name="run_failure_sensor",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    text = failure_message(ctx)
    assert result.run_id in text and "partition 2026-10-03" in text
    assert "failed" in text
    run_failure_sensor(ctx)  # logs; posts nothing without a token


def test_sensors_are_registered():
    names = {s.name for s in build_definitions("local").sensors}
    assert {"landed_objects_sensor", "run_failure_sensor"} <= names
    assert LakeResource  # the resource set is unchanged by alerting
