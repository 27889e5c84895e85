"""Incremental ingest: each landed object once, exact across batches, runs and crashes."""

import datetime as dt
import gzip
import json
import multiprocessing as mp
import os
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.ingest import ledger
from pipelines.ingest import partition as ingest
from pipelines.ingest.planning import IngestError
from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from pipelines.simulation.simulate import SimulationConfig
from tests.helpers import DAY, in_processes, land

LOC = "aws-us"
# a day that is still open: nothing is compacted behind the test's back
OPEN = dt.datetime.combine(DAY, dt.time(12), dt.UTC)


def _loc():
    return load_config().location(LOC)


def _run(**kw) -> ingest.PartitionIngest:
    loc = _loc()
    kw.setdefault("now", OPEN)
    return ingest.ingest_partition(loc, loc.storage_options(), DAY, **kw)


def _landing(home: Path) -> Path:
    return home / ".lake" / LOC / "landing"


def _hold_back(home: Path, keep: int) -> list[tuple[Path, Path]]:
    """Move all but the first ``keep`` landed objects aside; return (held, landing) pairs."""
    objs = sorted(p for p in _landing(home).rglob("*") if p.is_file())
    held = []
    for p in objs[keep:]:
        aside = home / "held" / p.relative_to(_landing(home))
        aside.parent.mkdir(parents=True, exist_ok=True)
        p.rename(aside)
        held.append((aside, p))
    return held


def _arrive(pairs: list[tuple[Path, Path]]) -> None:
    for aside, dest in pairs:
        dest.parent.mkdir(parents=True, exist_ok=True)
        aside.rename(dest)


def _bronze_rows(done: ingest.PartitionIngest) -> pa.Table:
    rows = delta.read_partition(done.bronze_uri, {})
    return rows.sort_by([("event_id", "ascending"), ("source_object", "ascending")])


def _quarantine_rows(done: ingest.PartitionIngest) -> pa.Table:
    rows = delta.read_partition(done.quarantine_uri, {}).drop_columns(["reason"])
    return rows.sort_by([("source_object", "ascending"), ("record_index", "ascending")])


def _versions(done: ingest.PartitionIngest) -> tuple:
    return tuple(
        delta.table_version(u, {}) for u in (done.bronze_uri, done.quarantine_uri, done.ledger_uri)
    )


def _event(eid: str, **extra) -> bytes:
    rec = {
        "event_id": eid,
        "event_ts": "2026-10-05T01:00:00Z",
        "region": "us",
        "store_id": 1,
        "sku": "SKU-1",
        "quantity": 2,
        "unit_price": 3.5,
        "currency": "USD",
        **extra,
    }
    return json.dumps(rec).encode()


def _put(key: str, *events: bytes) -> None:
    storage = open_storage(_loc().root_uri())
    storage.put(f"landing/firehose/2026/10/05/{key}", gzip.compress(b"\n".join(events) + b"\n"))


def test_rerun_with_nothing_new_commits_nothing(lake_home):
    land(LOC, SimulationConfig(start=DAY, end=DAY, events_per_day=600, bad_rate=0.02))
    first = _run()
    before = _versions(first)
    again = _run()
    assert _versions(again) == before
    assert again.batches == [] and again.result.landed == 0
    assert again.totals == first.totals and again.reconciled
    assert first.totals["landed"] == first.result.landed > 0


def test_a_duplicate_split_across_two_batches_is_dropped_once(lake_home):
    _put("01/a-1.gz", _event("e1"), _event("e2"))
    first = _run()
    _put("02/b-1.gz", _event("e2"), _event("e3"), _event("e3"))
    second = _run()
    assert first.result.ingested == 2
    assert second.result.ingested == 1 and second.result.duplicates == 2
    b = {o.key: o for o in second.objects}["landing/firehose/2026/10/05/02/b-1.gz"]
    assert (b.records, b.ingested, b.duplicates, b.batch) == (3, 1, 2, 2)
    rows = _bronze_rows(second)
    assert rows["event_id"].to_pylist() == ["e1", "e2", "e3"]
    assert second.totals == {
        "objects": 2,
        "landed": 5,
        "ingested": 3,
        "quarantined": 0,
        "duplicates_dropped": 2,
    }
    assert second.reconciled


def test_memory_is_bounded_by_batches_and_each_object_is_recorded(lake_home):
    land(LOC, SimulationConfig(start=DAY, end=DAY, events_per_day=900, objects_per_day=9))
    done = _run(batch_objects=2)
    assert done.batches == [1, 2, 3, 4, 5]
    assert len(done.objects) == 9 and all(o.reconciled for o in done.objects)
    assert {o.batch for o in done.objects} == {1, 2, 3, 4, 5}
    assert done.reconciled and done.totals["ingested"] == done.result.ingested


def test_an_object_rewritten_in_place_is_quarantined_whole_then_full_reads_it(lake_home):
    _put("01/a-1.gz", _event("e1"), _event("e2"))
    _run()
    _put("01/a-1.gz", _event("e1"), _event("e9"), _event("e10"))  # same key, new content
    again = _run()
    (row,) = again.result.quarantine.to_pylist()
    assert row["record_index"] == -1 and row["reason"].startswith("object_rewritten: etag")
    assert again.result.reasons == {"object_rewritten": 1}
    assert _bronze_rows(again)["event_id"].to_pylist() == ["e1", "e2"]  # nothing doubled
    assert again.reconciled and again.totals["landed"] == 3
    assert _run().batches == []  # seen once, reported once
    full = _run(full=True)
    assert _bronze_rows(full)["event_id"].to_pylist() == ["e1", "e10", "e9"]
    assert full.totals == {
        "objects": 1,
        "landed": 3,
        "ingested": 3,
        "quarantined": 0,
        "duplicates_dropped": 0,
    }
    assert full.reconciled and delta.read_partition(full.quarantine_uri, {}).num_rows == 0


def test_full_reingest_equals_the_incremental_runs_row_for_row(lake_home):
    sim = SimulationConfig(
        start=DAY,
        end=DAY,
        events_per_day=1200,
        objects_per_day=8,
        bad_rate=0.03,
        late_share=0.0,
    )
    land(LOC, sim)
    held = _hold_back(lake_home, 2)
    _put("00/late-dupe.gz", _event("late-1", extra_field=1))  # rescued field, early key
    runs = [_run(batch_objects=2)]
    for i in range(0, len(held), 3):
        _arrive(held[i : i + 3])
        if i == 3:  # lands late under an earlier hour, repeating an id ingested before
            first_id = _bronze_rows(runs[0])["event_id"][0].as_py()
            _put("00/late-zz.gz", _event(first_id), _event("late-2"))
        runs.append(_run(batch_objects=2))
    incremental, inc_q = _bronze_rows(runs[-1]), _quarantine_rows(runs[-1])
    assert runs[-1].reconciled and runs[-1].totals["duplicates_dropped"] >= 1
    full = _run(full=True, batch_objects=2)
    assert full.reconciled and full.totals == runs[-1].totals
    assert _bronze_rows(full).equals(incremental)
    assert _quarantine_rows(full).equals(inc_q)
    rescued = [r for r in incremental["_rescued_data"].to_pylist() if r]
    assert rescued == ['{"extra_field":1}']
    assert full.result.rescued == 1 and full.result.rescued_fields == {"extra_field": 1}


def _crash_in_child(home: str, where: str) -> None:
    """Ingest in a child process that dies (os._exit) at ``where`` in the commit sequence."""
    os.environ["LAKEHOUSE_HOME"] = home
    real_commit, real_record = delta.commit_files, ledger.record_commit

    def commit(uri, *a, **kw):
        if where == "before_bronze" and "bronze_events" in uri and kw.get("app_id"):
            os._exit(9)
        out = real_commit(uri, *a, **kw)
        if where == "after_bronze" and uri.endswith("bronze_events"):
            os._exit(9)
        return out

    def record(*a, **kw):
        if where == "before_commit_row":
            os._exit(9)
        return real_record(*a, **kw)

    delta.commit_files, ledger.record_commit = commit, record
    _run(batch_objects=2)


@pytest.mark.parametrize("where", ["before_bronze", "after_bronze", "before_commit_row"])
def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(lake_home, where):
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=800, bad_rate=0.03, late_share=0.0)
    (report,) = land(LOC, sim)
    ctx = mp.get_context("spawn")
    child = ctx.Process(target=_crash_in_child, args=(str(lake_home), where))
    child.start()
    child.join(120)
    assert child.exitcode == 9
    state = ledger.read_state(
        _loc().table_uri(ledger.LEDGER_TABLE), {}, {"landing_date": DAY, "region": "us"}
    )
    assert [b.number for b in state.pending()] == [1]  # claimed, never finished
    done = _run()
    assert done.batches[0] == 1  # the re-run finished it first
    assert done.reconciled, done.report()
    rows = _bronze_rows(done)
    assert pc.count_distinct(rows["event_id"]).as_py() == rows.num_rows == done.totals["ingested"]
    assert done.totals["landed"] == report.records


def _worker(home: str, shard: tuple[int, int] | None) -> tuple[list[str], int]:
    """One worker's run to the end of the backlog: the objects it ingested, records landed."""
    os.environ["LAKEHOUSE_HOME"] = home
    res = _run(batch_objects=2, shard=shard).result
    return sorted(res.per_object), res.landed


@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "same_backlog"])
def test_four_concurrent_workers_ingest_each_object_exactly_once(lake_home, sharded):
    sim = SimulationConfig(
        start=DAY, end=DAY, events_per_day=2000, objects_per_day=16, bad_rate=0.02, late_share=0.0
    )
    (report,) = land(LOC, sim)
    jobs = [(str(lake_home), (i, 4) if sharded else None) for i in range(4)]
    took = in_processes(_worker, jobs)
    done = _run()
    assert done.batches == []  # the workers left nothing behind, sharded or not
    assert done.reconciled, done.report()
    assert done.totals["landed"] == report.records == sum(landed for _, landed in took)
    keys = [key for objs, _ in took for key in objs]
    assert len(keys) == len(set(keys)) == report.objects  # each object by exactly one worker
    assert sorted(keys) == sorted(o.key for o in done.objects)
    if sharded:  # worker i of 4 takes exactly the keys whose CRC-32 is i modulo 4
        for i, (objs, _) in enumerate(took):
            assert objs and all(zlib.crc32(k.encode()) % 4 == i for k in objs)
    rows = _bronze_rows(done)
    assert pc.count_distinct(rows["event_id"]).as_py() == rows.num_rows
    assert rows.num_rows == done.totals["ingested"]


def test_a_closed_day_is_compacted_and_keeps_its_rows(lake_home):
    land(LOC, SimulationConfig(start=DAY, end=DAY, events_per_day=900, objects_per_day=12))
    done = _run(batch_objects=1)
    files = delta.partition_files(done.bronze_uri, {}, {"landing_date": DAY, "region": "us"})
    assert files == 12 and not done.compacted
    before = _bronze_rows(done)
    closed = _run(now=OPEN + dt.timedelta(days=2))
    assert closed.compacted and closed.reconciled
    part = {"landing_date": DAY, "region": "us"}
    assert delta.partition_files(done.bronze_uri, {}, part) == 1
    assert _bronze_rows(closed).equals(before)
    assert _run(now=OPEN + dt.timedelta(days=2)).batches == []  # and re-running stays exact


def test_landing_lifecycle_removes_only_objects_ingested_long_enough_ago(lake_home):
    _put("01/a-1.gz", _event("e1"))
    _put("02/b-1.gz", _event("e2"))
    done = _run()
    _put("02/b-1.gz", _event("e2"), _event("e3"))  # rewritten since: kept for --full
    storage = open_storage(_loc().root_uri())
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    week = dt.timedelta(days=7)
    assert ledger.expire_landed(done.ledger_uri, storage, {}, week).listed == []  # too recent
    dry = ledger.expire_landed(done.ledger_uri, storage, {}, week, now=later, dry_run=True)
    assert dry.removed == [] and storage.head("landing/firehose/2026/10/05/01/a-1.gz")
    gone = ledger.expire_landed(
        done.ledger_uri, storage, {}, week, now=later, archive_prefix="archive"
    )
    assert gone.removed == ["landing/firehose/2026/10/05/01/a-1.gz"]
    assert gone.changed == ["landing/firehose/2026/10/05/02/b-1.gz"]
    assert storage.head("landing/firehose/2026/10/05/01/a-1.gz") is None
    assert storage.head("archive/landing/firehose/2026/10/05/01/a-1.gz") is not None
    with pytest.raises(IngestError, match="gone from the landing area"):
        _run(full=True)


def test_ledger_hashes_read_from_buffers_sorted_across_chunks_nulls_and_slices() -> None:
    import numpy as np

    blob = [np.array(v, np.uint64).tobytes() for v in ([9, 3], [7], [1, 8, 2])]
    chunks = pa.chunked_array(
        [
            pa.array([blob[0], None], pa.large_binary()),
            pa.array([b"x", blob[1], blob[2]], pa.large_binary()).slice(1),
        ]
    )
    assert ledger._sorted_hashes(chunks).tolist() == [1, 2, 3, 7, 8, 9]
    assert ledger._sorted_hashes(pa.chunked_array([], pa.large_binary())).tolist() == []


def test_the_heap_is_bounded_on_glibc() -> None:
    from pipelines.lake import memory

    on_glibc = bool(os.confstr("CS_GNU_LIBC_VERSION") or "")
    assert memory.bound_heap() is on_glibc
    memory.give_back()  # callable between batches whatever the C library


def test_a_kept_ledger_sees_what_another_writer_added_and_drops_its_duplicates(lake_home):
    """A worker's memo and kept tables, another writer's batch in between: nothing doubled."""
    memo = ledger.Memo()
    with delta.tables_kept_open():
        _put("01/a-1.gz", _event("e1"), _event("e2"))
        first = _run(memo=memo)
        _put("02/b-1.gz", _event("e3"), _event("e4"))
    other = _run()  # another writer: not this memo, its own table objects
    with delta.tables_kept_open():
        _put("03/c-1.gz", _event("e4"), _event("e1"), _event("e5"))
        _put("04/d-1.gz", _event("e2"), _event("e6"))
        last = _run(memo=memo, batch_objects=1)
    assert (first.batches, other.batches, last.batches) == ([1], [2], [3, 4])
    assert memo.hashes.batches == {1, 2, 3, 4}  # batch 2 read from the ledger, once
    assert len(memo.reader.files) == 8  # a claim and a commit row per batch, each read once
    ids = sorted(_bronze_rows(last)["event_id"].to_pylist())
    assert ids == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert last.totals == {
        "objects": 4,
        "landed": 9,
        "ingested": 6,
        "quarantined": 0,
        "duplicates_dropped": 3,
    }
    assert last.reconciled
    # the memo's ledger equals a fresh read of it
    loc = _loc()
    part = {"landing_date": DAY, "region": loc.region}
    uri = loc.table_uri(ledger.LEDGER_TABLE)
    fresh, kept = ledger.read_state(uri, {}, part), ledger.read_state(uri, {}, part, memo.reader)
    assert kept.objects == fresh.objects and kept.committed == fresh.committed
    assert kept.batches.keys() == fresh.batches.keys()


def test_a_redelivered_id_is_confirmed_in_its_batch_files_and_the_day_after_a_rewrite(lake_home):
    """A kept hash names its batch; the id is looked up in that batch's files while the table
    still lists them, in the whole partition once a compaction replaced them."""
    from pipelines.ingest.parse import key_hashes

    memo = ledger.Memo()
    with delta.tables_kept_open():
        _put("01/a-1.gz", _event("e1"), _event("e2"))
        _run(memo=memo)
        _put("02/b-1.gz", _event("e3"), _event("e4"))
        done = _run(memo=memo)
    assert memo.hashes.batches_of(key_hashes(pa.array(["e1"]))) == {1}
    assert memo.hashes.batches_of(key_hashes(pa.array(["e4", "e2"]))) == {1, 2}
    assert memo.hashes.batches_of(key_hashes(pa.array(["never"]))) == set()
    state = ledger.read_state(done.ledger_uri, {}, {"landing_date": DAY, "region": "us"})
    first = [a.path for a in state.batches[1].bronze]
    part = {"landing_date": DAY, "region": "us"}
    ids = ["e1", "e3", "e9"]
    # batch 1's files alone are read: e3 (batch 2) is not in them
    assert delta.read_values(done.bronze_uri, {}, part, "event_id", ids, files=first) == ["e1"]
    assert delta.compact_partition(
        done.bronze_uri, {}, part, 1
    )  # batch 1's file is no longer listed
    got = delta.read_values(done.bronze_uri, {}, part, "event_id", ids, files=first)
    assert sorted(got) == ["e1", "e3"]  # the whole partition, not the stale file
    with delta.tables_kept_open():
        _put("03/c-1.gz", _event("e1"), _event("e3"), _event("e5"))
        last = _run(memo=memo)
    assert sorted(_bronze_rows(last)["event_id"].to_pylist()) == ["e1", "e2", "e3", "e4", "e5"]
    assert last.result.duplicates == 2 and last.reconciled


def test_kept_hashes_name_every_batch_a_colliding_hash_is_in() -> None:
    seen = ledger.SeenHashes()
    h = np.array([5, 9, 11], np.uint64)
    seen.add([1], h)
    seen.add([2], np.array([9], np.uint64))  # the same hash, another id, another batch
    seen.add([3], np.array([1, 2], np.uint64))
    assert seen.batches_of(np.array([9], np.uint64)) == {1, 2}
    assert seen.batches_of(np.array([2, 11], np.uint64)) == {1, 3}
    seen.add([4, 5], np.array([7], np.uint64))  # several batches at once: batch not known
    assert seen.batches_of(np.array([7], np.uint64)) is None
    assert seen.batches_of(np.array([5], np.uint64)) == {1}


def test_kept_hashes_stay_sorted_runs_and_forget_an_abandoned_batch(tmp_path) -> None:
    seen = ledger.SeenHashes()
    rng = np.random.default_rng(3)
    sizes = (8, 4, 2, 2, 1)
    parts = [np.sort(rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)) for n in sizes]
    for number, hashes in enumerate(parts, start=1):
        seen.add([number], hashes)
    assert all(np.all(r[1:] >= r[:-1]) for r in seen.runs)
    assert sorted(np.concatenate(seen.runs).tolist()) == sorted(np.concatenate(parts).tolist())
    assert 1 < len(seen.runs) < len(parts)  # merged, not one run a batch
    # batch 5 was abandoned since it was kept: what is kept is dropped and the ledger read
    state = ledger.LedgerState()
    state.batches = dict.fromkeys(range(1, 6))  # type: ignore[arg-type]
    state.abandoned = {5}
    assert seen.current(str(tmp_path / "no-ledger"), {}, {"region": "us"}, state) == []
    assert seen.batches == {1, 2, 3, 4}


def test_a_first_batch_committed_after_the_ledger_was_read_is_no_legacy_partition(
    lake_home, monkeypatch
):
    """The race behind a doubled count: B reads an empty ledger, A claims and commits its first
    batch, B then finds rows in bronze. They are A's, not a partition written before the
    ledger: B goes on from A's batch instead of re-ingesting (and counting) the whole day."""
    land(LOC, SimulationConfig(start=DAY, end=DAY, events_per_day=600, objects_per_day=6))
    loc = _loc()
    t = ingest._Tables.of(loc, loc.storage_options())
    part = ingest.bronze_partition(DAY, loc.region)
    empty = ingest._settle(t, part, check=True)  # what B read before A's claim
    first = _run(batch_objects=2, stop=lambda: True)  # A: one batch, then it stops
    assert len(first.batches) == 1
    real, calls = ingest._settle, []

    def stale_first(*args, **kwargs):
        calls.append(kwargs)
        return empty if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(ingest, "_settle", stale_first)
    second = _run(batch_objects=2)  # B
    assert len(calls) > 1  # B read the ledger again on finding rows
    assert second.reconciled and second.batches and 1 not in second.batches
    # every landed record counted once between the two: A's batch not taken again
    assert first.result.landed + second.result.landed == second.totals["landed"]
    assert {o.batch for o in second.objects} == {1, *second.batches}
