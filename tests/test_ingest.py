"""Ingestion engine: every bad record kind lands in quarantine with its reason; counts reconcile."""

import datetime as dt
import gzip
import json
import multiprocessing as mp

import pyarrow.compute as pc
import pytest

from pipelines import capture, ingest
from pipelines.config import load_config
from pipelines.delta import read_partition
from pipelines.simulate import BAD_KINDS, EXPECTED_REASON, SimulationConfig
from pipelines.storage import open_storage
from tests.conftest import DAY, land

LOCATIONS = ["aws-us", "azure-eu", "gcp-apac"]


def _ingest(name: str, day: dt.date = DAY) -> ingest.PartitionIngest:
    loc = load_config().location(name)
    return ingest.ingest_partition(loc, loc.storage_options(), day)


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("kind", [k for k in BAD_KINDS if k != "duplicate_event_id"])
def test_each_bad_kind_is_quarantined_with_its_reason(lake_home, location, kind):
    sim = SimulationConfig(
        start=DAY, end=DAY, events_per_day=300, late_share=0.0, bad_rate=0.02, bad_kinds=(kind,)
    )
    (report,) = land(location, sim)
    done = _ingest(location)
    res = done.result
    assert report.bad[kind] >= 3
    assert res.reasons == {EXPECTED_REASON[kind]: report.bad[kind]}
    assert res.landed == report.records
    assert res.reconciled
    assert res.ingested == report.records - report.bad[kind]
    quarantine = read_partition(done.quarantine_uri, {}, {"region": res.region})
    assert quarantine.num_rows == report.bad[kind]
    assert set(quarantine["reason"].to_pylist()) == {EXPECTED_REASON[kind]}
    assert all(q for q in quarantine["raw"].to_pylist())  # raw bytes kept, nothing lost


@pytest.mark.parametrize("location", LOCATIONS)
def test_duplicates_are_dropped_and_counted(lake_home, location):
    sim = SimulationConfig(
        start=DAY,
        end=DAY,
        events_per_day=300,
        late_share=0.0,
        bad_rate=0.02,
        bad_kinds=("duplicate_event_id",),
    )
    (report,) = land(location, sim)
    res = _ingest(location).result
    assert res.duplicates == report.bad["duplicate_event_id"] > 0
    assert res.quarantined == 0
    assert res.ingested == report.events
    assert pc.count_distinct(res.bronze["event_id"]).as_py() == res.ingested
    assert res.reconciled


@pytest.mark.parametrize("location", LOCATIONS)
def test_corrupt_object_is_quarantined_whole_and_partition_succeeds(lake_home, location):
    sim = SimulationConfig(
        start=DAY, end=DAY, events_per_day=300, late_share=0.0, corrupt_objects_per_day=2
    )
    (report,) = land(location, sim)
    res = _ingest(location).result
    assert res.corrupt_objects == 2
    corrupt = [r for r in res.quarantine.to_pylist() if r["reason"].startswith("corrupt_object")]
    assert sorted(r["source_object"] for r in corrupt) == sorted(report.corrupt_objects)
    assert all(r["record_index"] == -1 and len(r["raw"]) > 0 for r in corrupt)
    assert res.ingested > 0
    assert res.reconciled


def test_all_kinds_together_reconcile_and_bronze_is_clean(lake_home):
    sim = SimulationConfig(
        start=DAY,
        end=DAY + dt.timedelta(days=1),
        events_per_day=800,
        bad_rate=0.03,
        corrupt_objects_per_day=1,
    )
    land("aws-us", sim)
    for day in sim.days():
        res = _ingest("aws-us", day).result
        assert res.reconciled, res.report()
        assert pc.min(res.bronze["quantity"]).as_py() >= 0
        assert res.bronze["event_id"].null_count == 0


def test_late_events_land_in_the_next_days_partition(lake_home):
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=1000, late_share=0.05)
    land("aws-us", sim)
    nxt = _ingest("aws-us", DAY + dt.timedelta(days=1)).result
    assert nxt.ingested > 20
    event_days = {ts.date() for ts in nxt.bronze["event_ts"].to_pylist()}
    assert event_days == {DAY}
    assert set(nxt.bronze["landing_date"].to_pylist()) == {DAY + dt.timedelta(days=1)}


def test_rerun_replaces_the_partition_exactly(lake_home):
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=500, bad_rate=0.02)
    land("azure-eu", sim)
    first = _ingest("azure-eu")
    second = _ingest("azure-eu")
    rows = read_partition(first.bronze_uri, {})
    assert rows.num_rows == first.result.ingested == second.result.ingested
    assert second.bronze_version > first.bronze_version
    q = read_partition(first.quarantine_uri, {})
    assert q.num_rows == first.result.quarantined


def _ingest_in_child(home: str, name: str, day: str) -> None:
    import os

    os.environ["LAKEHOUSE_HOME"] = home
    _ingest(name, dt.date.fromisoformat(day))


def test_concurrent_runs_of_the_same_and_other_partitions_lose_and_duplicate_nothing(lake_home):
    days = [DAY, DAY + dt.timedelta(days=1)]
    sim = SimulationConfig(start=days[0], end=days[1], events_per_day=500, late_share=0.0)
    reports = land("gcp-apac", sim)
    ctx = mp.get_context("spawn")  # delta-rs (tokio) must not be forked
    jobs = [(str(lake_home), "gcp-apac", d.isoformat()) for d in days for _ in range(2)]
    with ctx.Pool(4) as pool:
        pool.starmap(_ingest_in_child, jobs)
    loc = load_config().location("gcp-apac")
    rows = read_partition(loc.table_uri("bronze_events"), {})
    assert rows.num_rows == sum(r.records for r in reports)
    assert pc.count_distinct(rows["event_id"]).as_py() == rows.num_rows


def test_malformed_lines_in_firehose_objects_do_not_hide_good_ones(lake_home):
    loc = load_config().location("aws-us")
    storage = open_storage(loc.root_uri())
    good = json.dumps(
        {
            "event_id": "e1",
            "event_ts": "2026-10-05T01:00:00Z",
            "region": "us",
            "store_id": 1,
            "sku": "SKU-1",
            "quantity": 2,
            "unit_price": 3.5,
            "currency": "USD",
        }
    ).encode()
    lines = [good, b"{not json", b"", b"[1,2]", good.replace(b'"e1"', b'"e2"'), b'{"event_id": 5}']
    storage.put("landing/firehose/2026/10/05/01/x-1.gz", gzip.compress(b"\n".join(lines) + b"\n"))
    res = _ingest("aws-us").result
    assert res.ingested == 2
    assert res.reasons == {
        "malformed_json": 1,
        "empty_record": 1,
        "malformed_json: not an object": 1,
        "wrong_type:event_id": 1,
    }
    assert res.reconciled


def test_capture_listing_reads_only_its_date(lake_home):
    sim = SimulationConfig(
        start=DAY, end=DAY + dt.timedelta(days=2), events_per_day=100, late_share=0.0
    )
    land("azure-eu", sim)
    loc = load_config().location("azure-eu")
    keys = ingest.landing_objects(open_storage(loc.root_uri()), loc.landing, DAY)
    assert keys and all(capture.landing_date_of(loc.landing, k) == DAY for k in keys)
