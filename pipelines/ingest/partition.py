"""Partition ingest: one (landing date, region) partition's run, batch after batch, exactly once.

Each batch is read, turned into rows (:mod:`.batch`), staged, claimed in the ledger and
committed to bronze and quarantine (:mod:`.ledger`); a crashed writer's pending batch is
finished by the next run. A closed day is compacted at the end (:mod:`.closed_day`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.ingest import ledger
from pipelines.ingest.batch import (
    BRONZE_TABLE,
    QUARANTINE_TABLE,
    IngestResult,
    Seen,
    _add_whole,
    _merge,
    _printable,
    _raw,
    empty_result,
    ingest_objects,
)
from pipelines.ingest.closed_day import _compact_if_closed
from pipelines.ingest.events import (
    BRONZE_PARTITION_BY,
    BRONZE_SCHEMA,
    QUARANTINE_SCHEMA,
    RecordRules,
    bronze_partition,
)
from pipelines.ingest.landing import _fetch_or_skip, landing_listing, listed_now
from pipelines.ingest.planning import BATCH_BYTES, BATCH_OBJECTS, _full_plan, _next_batch, _Todo
from pipelines.lake import delta, memory
from pipelines.lake.config import LakeLocation
from pipelines.lake.delta.cluster import Clustering
from pipelines.lake.storage import ObjectInfo, Storage, open_storage

REWRITTEN = "object_rewritten"


@dataclass
class PartitionIngest:
    """One ingest run of a partition: what it added, and the partition's totals after it.

    ``result`` covers the objects this run ingested (its ``bronze`` and ``quarantine`` rows
    are kept only with ``keep_rows``); ``totals`` and ``objects`` come from the ledger and
    cover the whole partition.
    """

    result: IngestResult
    bronze_uri: str
    quarantine_uri: str
    bronze_version: int
    quarantine_version: int
    ledger_uri: str = ""
    batches: list[int] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    objects: list[ledger.ObjectEntry] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)
    compacted: bool = False

    @property
    def reconciled(self) -> bool:
        """Partition-level: landed = ingested + quarantined + duplicates, and the tables agree.

        Every object's own counts add up too, and bronze and quarantine hold exactly the rows
        the ledger says they hold.
        """
        t = self.totals
        return (
            t["landed"] == t["ingested"] + t["quarantined"] + t["duplicates_dropped"]
            and not any(not o.reconciled for o in self.objects)
            and self.table_rows.get("bronze") == t["ingested"]
            and self.table_rows.get("quarantine") == t["quarantined"]
        )

    def report(self) -> dict[str, Any]:
        """This run's counts, the partition's totals, and where the rows went."""
        return {
            **self.result.report(),
            "batches": self.batches,
            "partition": {
                **self.totals,
                "reconciled": self.reconciled,
                **{f"{k}_table_rows": v for k, v in self.table_rows.items()},
            },
            "unreconciled_objects": [o.key for o in self.objects if not o.reconciled],
            "compacted": self.compacted,
            "bronze_table": self.bronze_uri,
            "bronze_version": self.bronze_version,
            "quarantine_table": self.quarantine_uri,
            "quarantine_version": self.quarantine_version,
            "ledger_table": self.ledger_uri,
        }


def _relisted(
    storage: Storage, infos: list[ObjectInfo], state: ledger.LedgerState
) -> list[ObjectInfo]:
    """``infos`` with each object an erasure rewrote since they were listed listed again.

    An erasure served during a run rewrites an object and moves its ledger rows to the new
    identity (or rewrites one not ingested yet): the run's listing, taken before, still has the
    old identity, and would take the object for one its producer rewrote (``object_rewritten``)
    or record the bytes it reads now under the old identity. Only an object an erasure fenced
    and the ledger does not hold as listed is listed again (erasures are rare).
    """
    if not state.erased:
        return infos
    done = state.identities()
    out = []
    for info in infos:
        key = _printable(info.path)
        stale = key in state.erased and key not in state.erasing
        if stale and (key, info.etag, info.size) not in done:
            now = listed_now(storage, info.path)
            if now is None:  # gone since: nothing to take
                continue
            info = now
        out.append(info)
    return out


def _rewritten_rows(
    storage: Storage,
    rewritten: list[tuple[ObjectInfo, ledger.ObjectEntry]],
    skipped: dict[str, str],
) -> list[tuple[str, str, bytes]]:
    """(key, reason, head) of each object rewritten in place since it was ingested.

    One that cannot be read is put in ``skipped`` instead (see :func:`_fetch_or_skip`).
    """
    out = []
    for info, entry in rewritten:
        reason = (
            f"{REWRITTEN}: etag {entry.etag} size {entry.size} ingested in batch {entry.batch}, "
            f"now etag {info.etag} size {info.size}; a full re-ingest of the partition reads it"
        )
        obj = _fetch_or_skip(storage, info)
        if isinstance(obj, str):
            skipped[_printable(info.path)] = obj
        else:
            out.append((_printable(info.path), reason, _raw(obj.data)))
    return out


@dataclass
class _Tables:
    """The three tables of a location's ingest."""

    bronze: str
    quarantine: str
    ledger: str
    options: dict[str, str]

    @staticmethod
    def of(location: LakeLocation, options: dict[str, str]) -> _Tables:
        """A location's three tables."""
        return _Tables(
            location.table_uri(BRONZE_TABLE),
            location.table_uri(QUARANTINE_TABLE),
            location.table_uri(ledger.LEDGER_TABLE),
            dict(options),
        )

    def targets(self) -> dict[str, tuple[str, pa.Schema]]:
        return {
            "bronze": (self.bronze, BRONZE_SCHEMA),
            "quarantine": (self.quarantine, QUARANTINE_SCHEMA),
        }


def _settle(
    t: _Tables,
    part: dict[str, object],
    *,
    check: bool = False,
    full: bool = False,
    memo: ledger.Memo | None = None,
) -> tuple[ledger.LedgerState, list[int]]:
    """The partition's ledger, after finishing any batch a crashed writer left pending.

    With ``check`` (a run's first look), the ledger is first checked against what bronze and
    quarantine hold (:func:`ledger.check_tables`); a full re-ingest rebuilds it instead, with
    batch numbers above what the tables hold.
    """
    hold = 0
    if check:  # read before the ledger: see check_tables
        hold = max(ledger.held(uri, t.options, part) for uri, _ in t.targets().values())
    reader = None if memo is None else memo.reader
    state = ledger.read_state(t.ledger, t.options, part, reader)
    if check and not full:
        ledger.check_tables(state, hold, t.ledger, part)
    state.tables_hold = hold
    finished = []
    for batch in state.pending():
        versions = ledger.finish(t.targets(), t.ledger, t.options, part, batch)
        if versions is None:  # its staged files are gone: abandoned, its objects taken again
            state = ledger.read_state(t.ledger, t.options, part, reader)
            state.tables_hold = hold
            continue
        state.committed[batch.number] = versions
        finished.append(batch.number)
    return state, finished


def _lookup(
    t: _Tables,
    part: dict[str, object],
    state: ledger.LedgerState,
    memo: ledger.Memo | None,
) -> Callable[[list[str], np.ndarray], set[str]]:
    """Which of the ids whose hash bronze may hold it does hold.

    Read from the files of the batches holding those hashes where the memo knows them (a
    redelivered event reads a batch's files, not the day's), else from the whole partition.
    """

    def lookup(ids: list[str], hashes: np.ndarray) -> set[str]:
        numbers = None if memo is None else memo.hashes.batches_of(hashes)
        files = None
        if numbers is not None and numbers <= state.batches.keys():
            files = [a.path for n in sorted(numbers) for a in state.batches[n].bronze]
        return set(delta.read_values(t.bronze, t.options, part, "event_id", ids, files=files))

    return lookup


def ingest_partition(
    location: LakeLocation,
    options: dict[str, str],
    landing_date: dt.date,
    rules: RecordRules | None = None,
    *,
    full: bool = False,
    batch_objects: int = BATCH_OBJECTS,
    batch_bytes: int = BATCH_BYTES,
    keep_rows: bool = True,
    on_batch: Callable[[IngestResult], None] | None = None,
    shard: tuple[int, int] | None = None,
    now: dt.datetime | None = None,
    stop: Callable[[], bool] | None = None,
    cluster: Clustering | None = None,
    memo: ledger.Memo | None = None,
    compact: bool = True,
) -> PartitionIngest:
    """Ingest the objects of one landing date of a location not ingested yet.

    Each landed object is ingested exactly once, in batches of at most ``batch_objects``
    objects and ``batch_bytes`` landed bytes (memory is bounded by a batch, not by the day),
    each batch recorded in the ledger (:mod:`pipelines.ingest.ledger`) and appended to bronze and
    quarantine. A run with nothing new commits nothing; runs of the same partition at once
    never duplicate or lose a row (``shard=(i, k)`` makes worker ``i`` of ``k`` take its own
    objects). ``full`` re-ingests the partition: the ledger's batches again, replacing the
    partition, then anything new. An object rewritten in place is quarantined whole
    (``object_rewritten``) until a full re-ingest reads it again. ``on_batch`` sees each
    batch's result once it is committed (its rows kept in the run's result only with
    ``keep_rows``). A closed day's partition is compacted (bronze's grouped by a keyed customer
    bucket with ``cluster``, :mod:`pipelines.lake.delta.cluster`). ``rules`` default to those of the
    configuration in use. ``stop`` is asked after each batch: once it says True, the run ends
    there (the batch in flight is committed first; what is left waits for the next run).
    ``memo``: what a long-lived caller keeps of the partition's ledger from one call to the
    next (:class:`ledger.Memo`: its files and event-id hashes), so a call reads what is new.
    ``compact=False``: a closed day is not compacted by this call (a worker whose date still
    receives objects: each compaction rewrites the day).
    """
    memory.bound_heap()
    storage = open_storage(location.root_uri(), options)
    infos, unconfigured = landing_listing(storage, location.landing, landing_date)
    part = bronze_partition(landing_date, location.region)
    t = _Tables.of(location, options)
    limits = (batch_objects, batch_bytes)
    state, finished = _settle(t, part, check=True, full=full, memo=memo)
    if not full and not state.objects and delta.partition_rows(t.bronze, t.options, part):
        # Rows without ledger objects: written before the ledger existed (replace it once,
        # then go on), or a concurrent writer's first batch, committed since the ledger was
        # read. A writer claims in the ledger before it commits to bronze, so the ledger read
        # again now holds that writer's objects: then this is no legacy partition, and a full
        # re-ingest would replace its rows and count them again.
        hold = state.tables_hold
        state, more = _settle(t, part, memo=memo)
        state.tables_hold = hold
        finished += more
        full = not state.objects
    plan = _full_plan(state, infos, limits) if full else None
    total = empty_result(location.region, landing_date)
    total.unconfigured_streams = unconfigured
    # Objects this run could not read (filled by _one_batch): left for the next run, as
    # taking them again in this one would read them, and fail, batch after batch.
    skipped = total.skipped_objects
    done = PartitionIngest(total, t.bronze, t.quarantine, -1, -1, t.ledger, finished)
    replace = full
    while True:
        if plan:  # a full re-ingest's batches, the first one replacing the partition
            known = set() if replace else state.identities()
            todo = _Todo(
                [
                    i
                    for i in plan[0]
                    if (_printable(i.path), i.etag, i.size) not in known
                    and _printable(i.path) not in skipped
                ],
                [],
            )
            if not todo.infos and not replace:
                plan.pop(0)
                continue
        elif replace:  # a full re-ingest of a partition with no objects: empty it
            todo = _Todo([], [])
        else:
            infos = _relisted(storage, infos, state)
            readable = [i for i in infos if _printable(i.path) not in skipped]
            todo = _next_batch(state, readable, limits, shard)
            if not todo.infos and not todo.rewritten:
                break
        todo.replace = replace
        committed = _one_batch(storage, location, t, part, state, todo, rules, skipped, memo)
        if committed is not None:
            result, number, versions = committed
            _merge(total, result, keep_rows)
            done.batches.append(number)
            done.bronze_version, done.quarantine_version = versions
            replace = False
            if plan:
                plan.pop(0)
            if on_batch is not None:
                on_batch(result)
            del committed, result  # the batch's rows, not held while the next one is read
        hold = state.tables_hold
        state, more = _settle(t, part, memo=memo)
        state.tables_hold = hold
        done.batches.extend(more)
        memory.give_back()  # so that a day of any size peaks at one batch
        if stop is not None and stop():
            break
    done.compacted = compact and _compact_if_closed(
        (t.bronze, t.quarantine, t.ledger), t.options, part, landing_date, now, cluster
    )
    return _totals(done, state, t, part)


def _one_batch(
    storage: Storage,
    location: LakeLocation,
    t: _Tables,
    part: dict[str, object],
    state: ledger.LedgerState,
    todo: _Todo,
    rules: RecordRules | None,
    skipped: dict[str, str],
    memo: ledger.Memo | None = None,
) -> tuple[IngestResult, int, tuple[int, int]] | None:
    """Ingest, stage, claim and commit one batch; None when another writer claimed it first.

    Objects that cannot be read are left out of the batch and its ledger entries, and put in
    ``skipped`` (key -> why); when no object of an incremental batch could be read, no batch is
    committed (None too).
    """
    with ThreadPoolExecutor(max_workers=8) as pool:
        fetched = list(pool.map(lambda info: _fetch_or_skip(storage, info), todo.infos))
    unread = {
        _printable(info.path): got
        for info, got in zip(todo.infos, fetched, strict=True)
        if isinstance(got, str)
    }
    objects = [got for got in fetched if not isinstance(got, str)]
    del fetched
    rewritten = _rewritten_rows(storage, todo.rewritten, unread)
    skipped.update(unread)
    if unread and not objects and not rewritten and not todo.replace:
        return None
    seen = None
    if not todo.replace and state.batches:  # read now: a later batch of another writer only adds
        held = (
            ledger.read_hashes(t.ledger, t.options, part)
            if memo is None
            else memo.hashes.current(t.ledger, t.options, part, state)
        )
        seen = Seen(held, _lookup(t, part, state, memo))
    day = dt.date.fromisoformat(str(part["landing_date"]))
    result = ingest_objects(objects, location.landing, location.region, day, rules, seen)
    del objects
    result = _add_whole(result, rewritten)
    result.skipped_objects = unread
    identity = {
        _printable(i.path): (i.etag, i.size)
        for i in [*todo.infos, *(info for info, _ in todo.rewritten)]
    }
    number = state.last_batch + 1
    entries = [
        ledger.ObjectEntry(
            key,
            *identity[key],
            number,
            c.records,
            c.ingested,
            c.quarantined,
            c.duplicates,
            c.reason,
        )
        for key, c in sorted(result.per_object.items())
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        b_adds, q_adds = pool.map(
            lambda uri_rows: delta.stage_files(
                uri_rows[0], uri_rows[1], part, t.options, partition_by=BRONZE_PARTITION_BY
            ),
            [(t.bronze, result.bronze), (t.quarantine, result.quarantine)],
        )
    batch = ledger.Batch(number, todo.replace, b_adds, q_adds)
    kept = np.sort(result.hashes)
    if not ledger.claim(t.ledger, t.options, part, number, entries, batch, kept):
        delta.discard_files(t.bronze, t.options, b_adds)
        delta.discard_files(t.quarantine, t.options, q_adds)
        return None
    if memo is not None:
        memo.hashes.add([number], kept)
    versions = ledger.finish(t.targets(), t.ledger, t.options, part, batch)
    if versions is None:  # its files vanished before the commit: abandoned, taken again
        return None
    return result, number, versions


def _totals(
    done: PartitionIngest, state: ledger.LedgerState, t: _Tables, part: dict[str, object]
) -> PartitionIngest:
    if done.compacted:  # compaction made a newer version than the last batch's
        done.bronze_version = done.quarantine_version = -1
    if done.bronze_version < 0:  # nothing appended to it by this run: its current version
        done.bronze_version = delta.table_version(t.bronze, t.options) or 0
    if done.quarantine_version < 0:
        done.quarantine_version = delta.table_version(t.quarantine, t.options) or 0
    for attempt in range(SETTLE_READS):
        done.totals, done.objects = state.totals(), state.objects
        done.table_rows = {
            "bronze": delta.partition_rows(t.bronze, t.options, part),
            "quarantine": delta.partition_rows(t.quarantine, t.options, part),
        }
        if done.reconciled or attempt == SETTLE_READS - 1:
            break
        # The ledger was read before the tables: an erasure may have deleted rows in between
        # (its fence up: it moves the objects' counts, then lifts it), or another writer
        # committed a batch. Read both again, unless the ledger has not changed and is not
        # fenced: then the partition really does not reconcile.
        again = ledger.read_state(t.ledger, t.options, part)
        if again.totals() == state.totals() and not again.erasing and not state.erasing:
            break
        if again.erasing:
            time.sleep(SETTLE_PAUSE)
        state = again
    return done


# An ingest ending inside an erasure's window reads its counts again this often, this far apart
# (an erasure's fence is up for seconds: its deletes, the landing rewrite, the ledger update)
SETTLE_READS = 120
SETTLE_PAUSE = 0.25


def fence_objects(
    location: LakeLocation, options: dict[str, str], landing_date: dt.date, keys: list[str]
) -> int:
    """Keep every ingest of the partition off the landing objects ``keys``; the batch taken.

    What an erasure does before it deletes a subject's rows and rewrites those objects: the
    batches already claimed are finished first (their rows are in bronze before the delete),
    then a batch of the partition is claimed for the fence (:func:`ledger.fence`), so an ingest
    that planned the same number loses its claim and reads the ledger again, fence included.
    """
    part = bronze_partition(landing_date, location.region)
    t = _Tables.of(location, options)
    for _ in range(FENCE_ATTEMPTS):
        state, _ = _settle(t, part, check=True)
        number = state.last_batch + 1
        if ledger.fence(t.ledger, t.options, part, number, keys):
            return number
    raise ledger.LedgerError(
        f"could not fence {len(keys)} landing object(s) of {landing_date}|{location.region}: "
        f"{FENCE_ATTEMPTS} batches in a row were claimed by other writers"
    )


# an ingest claims a batch now and then: a fence tried this often without a turn is an error
FENCE_ATTEMPTS = 20
