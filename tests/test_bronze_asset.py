"""The bronze multi-asset through Dagster: metadata, GX checks, and blocking."""

import gzip
import json
import os
import threading

import dagster as dg
import pytest

from assets.bronze import RECONCILIATION_CHECK
from assets.partitions import date_region_key
from data_quality import gx
from pipelines.ingest import partition as ingest
from pipelines.ingest import stream
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from pipelines.simulation.simulate import SimulationConfig
from resources import LakeResource
from resources.pii import PiiKeyResource
from tests.helpers import DAY, asset, definitions, land, suites

KEY = date_region_key(DAY.isoformat(), "us")


def _bronze_resources() -> dict[str, object]:
    """The bronze asset's resources: the lake, and the key its closed days are clustered by."""
    return {"lake": LakeResource(), "pii": PiiKeyResource(key=os.environ["LAKEHOUSE_PII_KEY"])}


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_materialize_partition_records_counts_and_passes_checks(lake_home):
    land(
        "aws-us",
        SimulationConfig(
            start=DAY, end=DAY, events_per_day=400, bad_rate=0.02, corrupt_objects_per_day=1
        ),
    )
    result = dg.materialize(
        [asset("bronze_events")],
        partition_key=KEY,
        resources={
            "lake": LakeResource(),
            "pii": PiiKeyResource(key=os.environ["LAKEHOUSE_PII_KEY"]),
        },
    )
    assert result.success
    meta = result.asset_materializations_for_node("bronze")[0].metadata
    assert meta["reconciled"].value is True
    assert (
        meta["landed"].value
        == meta["ingested"].value + meta["quarantined"].value + meta["duplicates_dropped"].value
    )
    checks = _checks(result)
    assert set(checks) == {
        "bronze_events_expectations",
        "bronze_quarantine_expectations",
        RECONCILIATION_CHECK,
    }
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}
    # each evaluation names the partition it judged (the check's history shows day and region)
    assert {c.metadata["partition"].value for c in checks.values()} == {KEY}
    assert (
        checks["bronze_events_expectations"].metadata["great_expectations_suite"].value
        == "bronze_events_suite"
    )
    # a batch within quality.batch_sample_rows: every row validated, and said so
    events = checks["bronze_events_expectations"].metadata
    assert events["sampled"].value is False
    assert events["rows_validated"].value == events["rows_in_batch"].value == meta["ingested"].value


def _land_unknown_currency() -> None:
    loc = load_config().location("aws-us")
    events = [
        {
            "event_id": f"e{i}",
            "event_ts": "2026-10-05T01:00:00Z",
            "region": "us",
            "store_id": 1,
            "sku": "SKU-1",
            "quantity": 1,
            "unit_price": 2.0,
            "currency": "XXX" if i == 0 else "USD",
        }
        for i in range(10)
    ]
    body = "\n".join(json.dumps(e) for e in events).encode()
    open_storage(loc.root_uri()).put("landing/firehose/2026/10/05/01/x-1.gz", gzip.compress(body))


def test_an_unknown_currency_is_quarantined_and_the_partition_passes(lake_home):
    _land_unknown_currency()
    result = dg.materialize(
        [asset("bronze_events")],
        partition_key=KEY,
        resources={
            "lake": LakeResource(),
            "pii": PiiKeyResource(key=os.environ["LAKEHOUSE_PII_KEY"]),
        },
    )
    assert result.success
    meta = result.asset_materializations_for_node("bronze")[1].metadata
    assert meta["reasons"].value == {"unknown_currency": 1}
    assert all(c.passed for c in _checks(result).values())


def test_a_blocking_check_that_fails_names_the_expectation_and_blocks_downstream(
    lake_home, monkeypatch
):
    """The suite is the ingest's own rules; an ingest run with looser rules stands in for a bug."""
    import dataclasses

    import assets.bronze
    from pipelines.ingest.events import record_rules

    def loose(cfg):
        rules = record_rules(cfg)
        return dataclasses.replace(rules, currencies=(*rules.currencies, "XXX"))

    monkeypatch.setattr(assets.bronze, "record_rules", loose)
    _land_unknown_currency()

    @dg.asset(deps=["bronze_events"], partitions_def=asset("bronze_events").partitions_def)
    def downstream() -> None:
        raise AssertionError("must not run after a blocking check failed")

    result = dg.materialize(
        [asset("bronze_events"), downstream],
        partition_key=KEY,
        resources={
            "lake": LakeResource(),
            "pii": PiiKeyResource(key=os.environ["LAKEHOUSE_PII_KEY"]),
        },
        raise_on_error=False,
    )
    check = _checks(result)["bronze_events_expectations"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert (
        check.metadata["failed_expectations"].value == "expect_column_values_to_be_in_set(currency)"
    )
    failed = [r for r in check.metadata["results"].value if not r["success"]]
    assert failed == [
        {
            "expectation": "expect_column_values_to_be_in_set",
            "column": "currency",
            "success": False,
            "unexpected_count": 1,
            "unexpected_percent": 10.0,
        }
    ]
    assert not result.success
    executed = {e.step_key for e in result.get_step_success_events()}
    assert "downstream" not in executed


def test_row_count_expectation_catches_a_count_mismatch():
    suite = gx.validate(suites()["bronze_quarantine"], _empty_quarantine(), {"expected_rows": 3})
    assert [o.expectation for o in suite.failed] == ["expect_table_row_count_to_equal"]
    assert suite.failed[0].observed_value == 0


def _empty_quarantine():
    from pipelines.ingest.events import QUARANTINE_SCHEMA

    return QUARANTINE_SCHEMA.empty_table()


def test_sensor_requests_partitions_of_new_objects_once(lake_home):
    land("azure-eu", SimulationConfig(start=DAY, end=DAY, events_per_day=100, late_share=0.0))
    instance = dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}) as ctx:
        first = definitions().resolve_sensor_def("landed_objects_sensor")(ctx)
    assert [r.partition_key for r in first.run_requests] == [date_region_key(DAY.isoformat(), "eu")]
    with dg.build_sensor_context(
        instance=instance, cursor=first.cursor, resources={"lake": LakeResource()}
    ) as ctx:
        again = definitions().resolve_sensor_def("landed_objects_sensor")(ctx)
    assert again.run_requests == []
    nxt = DAY.replace(day=DAY.day + 1)
    land("azure-eu", SimulationConfig(start=nxt, end=nxt, events_per_day=100, late_share=0.0))
    with dg.build_sensor_context(
        instance=instance, cursor=again.cursor, resources={"lake": LakeResource()}
    ) as ctx:
        later = definitions().resolve_sensor_def("landed_objects_sensor")(ctx)
    assert [r.partition_key for r in later.run_requests] == [date_region_key(nxt.isoformat(), "eu")]


def test_a_first_listing_asks_no_run_for_partitions_ingested_without_one(lake_home):
    """Over a lake a worker (or make run) ingested, a sensor started afresh runs only the new."""
    nxt = DAY.replace(day=DAY.day + 1)
    for day in (DAY, nxt):
        land("azure-eu", SimulationConfig(start=day, end=day, events_per_day=100, late_share=0.0))
    cfg = load_config("local")
    loc = cfg.location("azure-eu")
    ingest.ingest_partition(loc, loc.storage_options(), DAY)  # as a worker would, no run
    instance = dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}) as ctx:
        first = definitions().resolve_sensor_def("landed_objects_sensor")(ctx)
    assert [r.partition_key for r in first.run_requests] == [date_region_key(nxt.isoformat(), "eu")]


def test_sensor_asks_no_second_run_for_a_partition_whose_run_waits_to_start(lake_home):
    import uuid

    from jobs.ingest import INGEST_PARTITION_TAG

    for where in ("azure-eu", "aws-us"):
        land(where, SimulationConfig(start=DAY, end=DAY, events_per_day=50, late_share=0.0))
    sensor = definitions().resolve_sensor_def("landed_objects_sensor")
    instance = dg.DagsterInstance.ephemeral()
    eu, us = f"{DAY}|eu", f"{DAY}|us"
    waiting = dg.DagsterRun(
        job_name="ingest_job",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={INGEST_PARTITION_TAG: eu},
    )
    instance.add_run(waiting)
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}) as ctx:
        first = sensor(ctx)
    assert [r.tags[INGEST_PARTITION_TAG] for r in first.run_requests] == [us]  # eu's run waits
    instance.handle_run_event(  # once it has started, it may have listed before new objects
        waiting.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name="ingest_job"
        ),
    )
    assert instance.get_run_by_id(waiting.run_id).status == dg.DagsterRunStatus.STARTED
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}) as ctx:
        later = sensor(ctx)  # the same objects seen anew: both partitions are asked for
    assert sorted(r.tags[INGEST_PARTITION_TAG] for r in later.run_requests) == [eu, us]


def test_hourly_schedule_runs_only_partitions_with_objects_not_ingested(lake_home):
    import datetime as dt

    day = dt.date(2026, 11, 22)
    at = dt.datetime(2026, 11, 22, 14, 5, tzinfo=dt.UTC)
    schedule = definitions().resolve_schedule_def("hourly_ingest_schedule")

    def evaluate():
        with dg.build_schedule_context(
            scheduled_execution_time=at, resources={"lake": LakeResource()}
        ) as ctx:
            return schedule(ctx)

    assert isinstance(evaluate(), dg.SkipReason)  # nothing landed: nothing to do
    land("azure-eu", SimulationConfig(start=day, end=day, events_per_day=100, late_share=0.0))
    requests = evaluate()
    assert [str(r.partition_key) for r in requests] == [str(date_region_key(day.isoformat(), "eu"))]
    loc = load_config().location("azure-eu")
    ingest.ingest_partition(loc, {}, day)
    assert isinstance(evaluate(), dg.SkipReason)  # ingested: the safety net costs a listing


def test_rematerializing_adds_nothing_and_full_reingest_gives_the_same_totals(lake_home):
    land("aws-us", SimulationConfig(start=DAY, end=DAY, events_per_day=300, bad_rate=0.02))
    bronze, res = (
        asset("bronze_events"),
        _bronze_resources(),
    )
    metas, checks = [], []
    for config in ({"batch_objects": 5}, {}, {"full": True}):
        result = dg.materialize(
            [bronze],
            partition_key=KEY,
            resources=res,
            run_config={"ops": {"bronze": {"config": config}}},
        )
        assert result.success and all(c.passed for c in _checks(result).values())
        metas.append(result.asset_materializations_for_node("bronze")[0].metadata)
        checks.append(_checks(result)["bronze_events_expectations"].metadata)
    first, again, full = metas
    totals = ("landed", "ingested", "quarantined", "duplicates_dropped", "objects")
    assert [again[k].value for k in totals] == [first[k].value for k in totals]
    assert [full[k].value for k in totals] == [first[k].value for k in totals]
    assert first["run_ingested"].value == first["ingested"].value > 0
    assert again["run_ingested"].value == 0 and again["batches"].value == []
    assert full["run_ingested"].value == first["ingested"].value
    assert again["delta_version"].value == first["delta_version"].value
    # GX saw each batch as it was appended (5 per batch: several), none when nothing was new
    assert checks[0]["batches_validated"].value == len(first["batches"].value) > 1
    assert checks[1]["batches_validated"].value == 1 and checks[1]["batches_failed"].value == 0


@pytest.mark.parametrize("where", ["aws-us", "azure-eu", "gcp-apac"])
def test_a_sensor_tick_lists_only_what_landed_after_its_cursor(lake_home, where):
    """Sixty days of objects the sensor has seen: the next tick lists the new day's objects
    and a few folder listings, not the history (counted by the storage layer)."""
    import datetime as dt
    from dataclasses import replace

    from pipelines.lake.storage import objects_listed

    cfg = load_config()
    root = cfg.location(where).root_uri()
    old = SimulationConfig(
        start=DAY - dt.timedelta(days=59),
        end=DAY,
        events_per_day=40,
        objects_per_day=6,
        late_share=0.0,
    )
    land(where, old)
    sensor = definitions().resolve_sensor_def("landed_objects_sensor")
    instance = dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}) as ctx:
        seen = sensor(ctx)
    nxt = DAY + dt.timedelta(days=1)
    new = land(where, replace(old, start=nxt, end=nxt))
    before = objects_listed().get(root, 0)
    with dg.build_sensor_context(
        instance=instance, cursor=seen.cursor, resources={"lake": LakeResource()}
    ) as ctx:
        tick = sensor(ctx)
    listed = objects_listed().get(root, 0) - before
    region = cfg.location(where).region
    assert [r.partition_key for r in tick.run_requests] == [
        date_region_key(nxt.isoformat(), region)
    ]
    assert new[0].objects <= listed <= new[0].objects + 2, (listed, new[0].objects)

    # the stream worker's first listing starts at its oldest kept date, not at the history;
    # the older dates (never ingested here: a backlog) are found by their folders and gone
    # back for a few per listing, newest first, so each listing stays bounded
    loc = cfg.location(where)
    per_tick = 2
    follower = stream.Follower(
        loc,
        loc.storage_options(),
        None,
        stream.FollowOptions(days_back=0, backlog_dates_per_tick=per_tick),
        on_commit=lambda _c: None,
        stop=threading.Event(),
        today=lambda: nxt,
    )
    before = objects_listed().get(root, 0)
    follower._list()
    per_day = new[0].objects
    older = {DAY - dt.timedelta(days=i) for i in range(per_tick)}
    assert {follower._day(p) for p in follower.waiting} == {nxt, *older}
    assert len(follower.waiting) == per_day * (1 + per_tick)
    assert objects_listed().get(root, 0) - before <= per_day * (1 + per_tick) + 2
    assert len(follower.older) == 60 - per_tick  # the rest of the backlog, for later listings


def test_a_batch_above_the_sample_size_is_sampled_and_counted_exactly(lake_home):
    import dataclasses

    from assets.bronze import batch_checks
    from pipelines.ingest.events import record_rules

    land("aws-us", SimulationConfig(start=DAY, end=DAY, events_per_day=400, bad_rate=0.05))
    cfg = load_config()
    loc = cfg.location("aws-us")
    built = suites()
    events = dataclasses.replace(built["bronze_events"], sample_rows=50)
    batches = []
    done = ingest.ingest_partition(
        loc, loc.storage_options(), DAY, record_rules(cfg), on_batch=batches.append
    )
    assert done.reconciled and batches
    for batch in batches:
        bronze, quarantine = batch_checks(batch, events, built["bronze_quarantine"])
        assert bronze.passed and quarantine.passed, bronze.metadata
        meta = {k: getattr(v, "value", v) for k, v in bronze.metadata.items()}
        rows = batch.landed - batch.quarantined - batch.duplicates
        assert rows > 50
        assert (meta["rows_validated"], meta["rows_in_batch"], meta["sampled"]) == (50, rows, True)
        assert quarantine.metadata["sampled"].value is False  # its few rows, whole


def test_checks_owed_by_a_killed_worker_are_read_back_and_evaluated_once_over_the_batches(
    lake_home,
):
    """A worker's checks evaluated once over several commits, and owed across a kill."""
    import dataclasses

    from assets.bronze import BatchRows, rows_checks
    from pipelines.ingest.events import record_rules

    land("aws-us", SimulationConfig(start=DAY, end=DAY, events_per_day=600, objects_per_day=6))
    cfg = load_config()
    loc = cfg.location("aws-us")
    built = suites()
    events = dataclasses.replace(built["bronze_events"], sample_rows=40)
    quarantine = built["bronze_quarantine"]
    seen: list[stream.Committed] = []

    def owe(c: stream.Committed) -> bool:
        seen.append(c)
        return False  # checks owed: the "killed" worker never flushes them

    def follower(on_commit) -> stream.Follower:
        return stream.Follower(
            loc,
            loc.storage_options(),
            record_rules(cfg),
            stream.FollowOptions(days_back=0, batch_objects=2, linger_seconds=0),
            on_commit=on_commit,
            stop=threading.Event(),
            today=lambda: DAY,
        )

    first = follower(owe)
    first._list()
    first._ingest(DAY)
    first._ingest(DAY)  # two commits, checks owed for both; then killed (no flush)
    assert [len(c.batches) for c in seen] == [1, 1] and not any(c.recovered for c in seen)
    assert first.reported.of(DAY) == (2, 0)

    after: list[stream.Committed] = []
    second = follower(lambda c: after.append(c) or True)
    second._list()
    second._ingest(DAY)  # the third batch, and the two owed read back from their files
    assert len(after) == 1 and after[0].recovered
    assert len(after[0].batches) == 3
    assert second.reported.of(DAY) == (3, 3)

    rows = BatchRows.joined([BatchRows.of(b, events, quarantine) for b in after[0].batches])
    bronze, _ = rows_checks(rows, events, quarantine)
    meta = {k: getattr(v, "value", v) for k, v in bronze.metadata.items()}
    assert bronze.passed, meta
    total = after[0].done.totals["ingested"]
    assert (meta["rows_in_batch"], meta["batches_in_evaluation"]) == (total, 3)
    assert meta["rows_validated"] == rows.bronze.values.num_rows <= 3 * 40
    # one row too few for what the batches expect fails the evaluation, exactly
    short = dataclasses.replace(rows, expected=rows.expected + 1)
    assert not rows_checks(short, events, quarantine)[0].passed
