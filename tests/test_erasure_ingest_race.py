"""An ingest racing an erasure's landing rewrite: the two never both win.

The erasure fences the landing objects that hold a subject in the ledger before it deletes a
row (a batch of their partition claimed, rows no ingest takes an object past), so an ingest
neither brings the subject's old bytes back into bronze nor quarantines the rewritten object
as ``object_rewritten``; the fence goes once the objects are rewritten and their rows moved.
"""

import datetime as dt
import json
import threading

import numpy as np
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from pipelines.erasure.landing import fence_landing, find_landing, release_landing
from pipelines.erasure.requests import ErasureRequest
from pipelines.erasure.serve import serve_location, subject_of
from pipelines.ingest import capture, ledger
from pipelines.ingest import partition as ingest
from pipelines.ingest.events import bronze_partition
from pipelines.lake.config import load_config
from pipelines.sovereignty.compute import COMPUTE_ENV
from tests.erasure_lake import _event, build, files_holding, subject
from tests.helpers import DAY

LOCATION = "azure-eu"


@pytest.fixture
def lake(lake_home, monkeypatch, pii_key):
    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    out = build("local", LOCATION, pii_key, "EUR")
    loc = out["location"]
    customer, email = subject(loc)
    # a new object of the subject's, landed and not ingested yet: the erasure and an ingest
    # both want it
    records = [_event(loc, 9300 + i, customer, email, "EUR") for i in range(2)]
    records.append(_event(loc, 9400, f"{loc.region}-049998", "other@x.org", "EUR"))
    lines = [json.dumps(r, separators=(",", ":")).encode() for r in records]
    batch = capture.Batch(
        dt.datetime(DAY.year, DAY.month, DAY.day, 23, 59, 59, tzinfo=dt.UTC), lines
    )
    key = capture.object_key(loc.landing, batch, 1)
    out["storage"].put(key, capture.encode(loc.landing, batch, 1))
    out["new_key"] = key
    return out


def _rewritten(loc) -> int:
    rows = DeltaTable(loc.table_uri("bronze_quarantine")).to_pyarrow_table()
    # the reason goes on with the identities ("object_rewritten: etag ... ingested in batch ...")
    return pc.sum(pc.starts_with(rows["reason"], "object_rewritten")).as_py() or 0


def test_a_fenced_object_is_taken_by_no_ingest_and_a_racing_claim_loses(lake, pii_key):
    loc, storage = lake["location"], lake["storage"]
    opts = loc.storage_options()
    part = bronze_partition(DAY, loc.region)
    ledger_uri = loc.table_uri(ledger.LEDGER_TABLE)
    customer, email = subject(loc)
    who = subject_of([ErasureRequest.new(customer, email)], pii_key)
    before = ledger.read_state(ledger_uri, opts, part)  # what a racing ingest read
    found = find_landing(loc, storage, who)
    assert lake["new_key"] in [i.path for i in found.objects]
    assert fence_landing(loc, opts, found) == 1
    # the ingest that planned the next batch on its older read loses its claim
    racing = ledger.Batch(before.last_batch + 1, False, [], [])
    assert not ledger.claim(ledger_uri, opts, part, racing.number, [], racing, np.array([]))
    state = ledger.read_state(ledger_uri, opts, part)
    assert lake["new_key"] in state.erasing
    bronze_rows = DeltaTable(loc.table_uri("bronze_events")).to_pyarrow_table().num_rows
    done = ingest.ingest_partition(loc, opts, DAY)  # reads the ledger again: fence included
    assert not done.batches  # nothing to take: the only new object is fenced
    assert DeltaTable(loc.table_uri("bronze_events")).to_pyarrow_table().num_rows == bronze_rows
    assert _rewritten(loc) == 0  # nor quarantined as rewritten
    release_landing(loc, opts, found)
    assert ledger.read_state(ledger_uri, opts, part).erasing == set()
    ingest.ingest_partition(loc, opts, DAY)  # unfenced: taken now (the erasure never ran here)
    assert DeltaTable(loc.table_uri("bronze_events")).to_pyarrow_table().num_rows > bronze_rows


def test_an_ingest_running_through_an_erasure_leaves_no_subject_and_nothing_quarantined(
    lake, pii_key
):
    """A real race: ingest runs of the partition in a loop while the erasure is served."""
    loc, storage = lake["location"], lake["storage"]
    opts = loc.storage_options()
    cfg = load_config("local")
    customer, email = subject(loc)
    stop = threading.Event()
    errors: list[BaseException] = []
    runs = [0]

    def ingest_loop() -> None:
        while not stop.is_set():
            try:
                ingest.ingest_partition(loc, opts, DAY)
                runs[0] += 1
            except BaseException as exc:  # reported below: the test fails on it
                errors.append(exc)
                return

    worker = threading.Thread(target=ingest_loop)
    worker.start()
    try:
        done = serve_location(cfg, loc, [ErasureRequest.new(customer, email)], pii_key)
    finally:
        stop.set()
        worker.join()
    assert not errors, errors
    assert runs[0] >= 1
    ingest.ingest_partition(loc, opts, DAY)  # what the next run takes (the rewritten object)
    assert done.read_back.found == {}
    assert files_holding(storage, lake["needles"]) == []  # bronze included, after the race
    assert _rewritten(loc) == 0
    report = ingest.ingest_partition(loc, opts, DAY).report()
    assert report["partition"]["reconciled"], report
    state = ledger.read_state(
        loc.table_uri(ledger.LEDGER_TABLE), opts, bronze_partition(DAY, loc.region)
    )
    assert state.erasing == set()
    # the other customer's record of the new object was ingested once
    bronze = DeltaTable(loc.table_uri("bronze_events")).to_pyarrow_table()
    assert pc.sum(pc.equal(bronze["customer_id"], f"{loc.region}-049998")).as_py() == 1


def _other_object(loc, storage, second: int, partition: int) -> str:
    """A new object without the subject, landed at ``23:59:<second>`` in a capture partition."""
    record = _event(loc, 9500 + second, f"{loc.region}-049997", "late@x.org", "EUR")
    batch = capture.Batch(
        dt.datetime(DAY.year, DAY.month, DAY.day, 23, 59, second, tzinfo=dt.UTC),
        [json.dumps(record, separators=(",", ":")).encode()],
        partition=partition,
    )
    key = capture.object_key(loc.landing, batch, 2)
    storage.put(key, capture.encode(loc.landing, batch, 2))
    return key


def _landed_objects(storage, loc) -> int:
    return sum(
        1
        for i in storage.list(loc.landing.prefix.strip("/") + "/")
        if f"/{DAY:%Y/%m/%d}/" in i.path
    )


@pytest.mark.parametrize("first", ["subject's object", "another object"])
def test_an_erasure_served_between_two_batches_of_one_run_is_no_rewrite(lake, pii_key, first):
    """The run listed the landing before the erasure rewrote an object and moved its rows.

    Its listing is stale for that object from then on: the object is neither quarantined as
    ``object_rewritten`` (by this run or the next) nor counted twice, whether the run had
    already ingested it (its rows moved to the new identity under the run) or not.
    """
    loc, storage = lake["location"], lake["storage"]
    opts = loc.storage_options()
    cfg = load_config("local")
    customer, email = subject(loc)
    # one object per batch in key order: the erasure is served after the run's first batch,
    # which took the subject's new object, or another one sorting before it
    other = _other_object(loc, storage, 57, 0) if first == "another object" else None
    later = _other_object(loc, storage, 59, 1)
    assert sorted(k for k in (other, lake["new_key"], later) if k)[-1] == later
    assert other is None or other < lake["new_key"]
    served: list[object] = []

    def erase_once(_result: object) -> None:
        if not served:
            served.append(serve_location(cfg, loc, [ErasureRequest.new(customer, email)], pii_key))

    ingest.ingest_partition(loc, opts, DAY, batch_objects=1, on_batch=erase_once)
    assert served
    report = ingest.ingest_partition(loc, opts, DAY).report()
    assert _rewritten(loc) == 0
    assert report["partition"]["reconciled"], report
    assert report["partition"]["objects"] == _landed_objects(storage, loc)
    assert files_holding(storage, lake["needles"]) == []


def test_an_ingest_finishing_inside_an_erasure_reports_the_counts_after_it(lake, pii_key):
    """The erasure deleted the subject's rows and has yet to move the objects' ledger counts.

    An ingest of the partition ending then read the ledger's counts before the delete and the
    tables' after it: it reported the partition unreconciled and exited 1 (seen with
    ``lakehouse erase`` beside ``lakehouse ingest``). While the partition is fenced it reads
    both again, and reports the counts once the erasure is done.
    """
    from pipelines.erasure.landing import erase_landing
    from pipelines.privacy.erase import erase_from_table

    loc, storage = lake["location"], lake["storage"]
    opts = loc.storage_options()
    customer, email = subject(loc)
    who = subject_of([ErasureRequest.new(customer, email)], pii_key)
    found = find_landing(loc, storage, who)
    fence_landing(loc, opts, found)
    removed = {
        kind: erase_from_table(loc.table_uri(name), dict(opts), who, read_back=False).rows_by_object
        for kind, name in (("bronze", "bronze_events"), ("quarantine", "bronze_quarantine"))
    }
    reports: list[dict] = []
    worker = threading.Thread(
        target=lambda: reports.append(ingest.ingest_partition(loc, opts, DAY).report())
    )
    worker.start()
    worker.join(1.0)  # the ingest is inside the erasure's window now
    erase_landing(loc, storage, opts, who, removed, found)
    release_landing(loc, opts, found)
    worker.join()
    assert reports[0]["partition"]["reconciled"], reports[0]["partition"]
    assert ingest.ingest_partition(loc, opts, DAY).report()["partition"]["reconciled"]


def test_batches_read_back_after_an_erasure_removed_their_files(lake, pii_key):
    """A worker reads back the batches nobody reported: their files may be gone since.

    The erasure removes the files holding the subject (erasure wins over retention); the
    batches' ledger rows still name them. A follower starting then (or checking batches it
    committed before the erasure) failed on the missing file at every cycle, for ever (seen:
    two ``lakehouse ingest --follow`` beside ``lakehouse erase``). The batch's rows are read
    from the table as it holds them now instead.
    """
    from pipelines.ingest.stream import batch_rows

    loc = lake["location"]
    opts = loc.storage_options()
    cfg = load_config("local")
    customer, email = subject(loc)
    part = bronze_partition(DAY, loc.region)
    serve_location(cfg, loc, [ErasureRequest.new(customer, email)], pii_key)
    state = ledger.read_state(loc.table_uri(ledger.LEDGER_TABLE), opts, part)
    numbers = sorted(n for n in state.committed if state.batches.get(n) is not None)
    results = batch_rows(loc, opts, DAY, state, numbers)
    bronze = DeltaTable(loc.table_uri("bronze_events")).to_pyarrow_table()
    assert sum(r.bronze.num_rows for r in results) == bronze.num_rows
    read_back = {v for r in results for v in r.bronze["customer_id"].to_pylist()}
    assert customer not in read_back and f"{loc.region}-049990" in read_back
