"""Schedules, Declarative Automation of the chain, partition keys, freshness, failure alerts."""

import datetime as dt

import dagster as dg
import pytest

from assets.automation import LOOK_BACK, chain_condition, with_automation
from assets.freshness import FRESHNESS_BY_GROUP, policy_for, with_freshness
from assets.partitions import build_partitions, keys_between
from jobs.alerts import failure_message, run_failure_sensor
from lakehouse.definitions import build_definitions
from pipelines.lake.config import load_config

daily = dg.DailyPartitionsDefinition(start_date="2026-10-01", end_offset=1)


@dg.asset(partitions_def=daily, group_name="bronze")
def bronze_events() -> None:
    """Bronze."""


@dg.asset(partitions_def=daily, group_name="silver", deps=[bronze_events])
def silver_events() -> None:
    """Silver."""


@dg.asset(group_name="replication", deps=[silver_events])
def gold_replica() -> None:
    """An unpartitioned replica."""


def test_only_the_clock_driven_schedules_remain():
    names = {s.name for s in build_definitions("local").schedules}
    assert names == {
        "hourly_ingest_schedule",
        "weekly_retrain_schedule",
        "freshness_checks_schedule",
        "weekly_maintenance_schedule",
        "monthly_orphan_sweep_schedule",
        "replica_full_check_schedule",
        "erasure_deadline_schedule",  # a request nobody serves still fails its deadline
    }


def test_the_internal_chain_is_automated_and_the_rest_is_not():
    graph = build_definitions("local").resolve_asset_graph()
    automated = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition
    }
    assert automated == {
        "silver_events",
        "gold_daily_demand",
        "gold_daily_demand_replica_azure_eu",
        "gold_daily_demand_replica_gcp_apac",
        "demand_features",
        "demand_forecast",
        "feature_drift",
        "lakehouse_health",  # daily and after its parents' runs (assets/health.py)
        "region_health",  # the same, per region (the chain sensor's with a pool per jurisdiction)
    }
    label = chain_condition().get_label()
    assert graph.get(dg.AssetKey("silver_events")).automation_condition.get_label() == label


def test_an_upstream_update_requests_the_downstream_partition_within_the_look_back():
    automated = with_automation([bronze_events, silver_events, gold_replica])
    instance = dg.DagsterInstance.ephemeral()
    now = dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC)
    first = dg.evaluate_automation_conditions(automated, instance, evaluation_time=now)
    assert first.total_requested == 0  # nothing upstream has data yet
    late_day = (now - LOOK_BACK + dt.timedelta(days=1)).date().isoformat()
    dg.materialize([bronze_events], partition_key=late_day, instance=instance)
    second = dg.evaluate_automation_conditions(
        automated, instance, cursor=first.cursor, evaluation_time=now
    )
    requested = second.get_requested_partitions(dg.AssetKey("silver_events"))
    assert requested == {late_day}
    old_day = (now - LOOK_BACK - dt.timedelta(days=3)).date().isoformat()
    dg.materialize([bronze_events], partition_key=old_day, instance=instance)
    third = dg.evaluate_automation_conditions(
        automated, instance, cursor=second.cursor, evaluation_time=now
    )
    assert old_day not in third.get_requested_partitions(dg.AssetKey("silver_events"))


def test_spark_assets_run_under_the_one_spark_run_tag():
    defs = build_definitions("local")
    spark = defs.resolve_sensor_def("spark_automation_sensor")
    other = defs.resolve_sensor_def("automation_sensor")
    # one code location serves every jurisdiction locally: its Spark runs are tagged "shared"
    assert spark.run_tags == {"lakehouse/spark": "true", "lakehouse/jurisdiction": "shared"}
    graph = defs.resolve_asset_graph()
    spark_keys = spark.asset_selection.resolve(graph)
    assert {k.to_user_string() for k in spark_keys} == {
        "silver_events",
        "gold_daily_demand",
        "demand_features",
    }
    assert not spark_keys & other.asset_selection.resolve(graph)


def test_keys_between_takes_dates_and_every_or_some_regions():
    start, end = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
    date_region = build_partitions(load_config("local")).date_region
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
    assert names == {
        "landed_objects_sensor",
        "drift_retrain_sensor",
        "run_failure_sensor",
        "check_failure_sensor",
        "spark_automation_sensor",
        "automation_sensor",
        "erasure_request_sensor",  # pending erasure requests: state Dagster does not have
        "erased_model_retrain_sensor",  # an erasure marked a model: retrain (docs/privacy.md)
    }


def test_health_automation_requests_only_the_newest_days_whatever_the_parent_updated():
    """An ingest of an old day does not re-measure it: backfills do; the newest days refresh."""
    from assets.health import RECENT, build_health
    from resources import LakeResource
    from tests.helpers import suites

    cfg = load_config("local")
    health = build_health(cfg, suites(), [bronze_events.key], [bronze_events.key])
    (health,) = dg.with_resources([health], {"lake": LakeResource()})
    defs = [bronze_events, health]
    instance = dg.DagsterInstance.ephemeral()
    now = dt.datetime(2026, 10, 20, 12, tzinfo=dt.UTC)
    recent = {(now - dt.timedelta(days=i)).date().isoformat() for i in range(RECENT.days + 1)}
    first = dg.evaluate_automation_conditions(
        [bronze_events, health], instance, evaluation_time=now
    )
    assert first.get_requested_partitions(health.key) <= recent
    dg.materialize([bronze_events], partition_key="2026-10-19", instance=instance)
    dg.materialize([bronze_events], partition_key="2026-10-05", instance=instance)
    second = dg.evaluate_automation_conditions(
        defs, instance, cursor=first.cursor, evaluation_time=now
    )
    requested = second.get_requested_partitions(health.key)
    assert "2026-10-19" in requested | first.get_requested_partitions(health.key)
    assert "2026-10-05" not in requested and requested <= recent
