"""The long-lived ingest worker's loop: follow a location's landing area, ingest micro-batches.

Free of Dagster. :class:`Follower` lists the location's stream roots from where it last looked
(the object stores list from an offset, as the landed-objects sensor does), keeps what landed
and is not ingested yet, and hands a landing date to :func:`pipelines.ingest.ingest_partition`
(the same engine and ledger as a run: each object exactly once, whatever else ingests the
partition at the same time) once it holds a batch's worth of bytes or its oldest object has
waited ``linger_seconds``. After each commit it calls ``on_commit`` with what was committed,
the batches' rows (for the checks) and the lag; the caller reports it (``lakehouse/worker.py``
reports to Dagster). What the caller has reported is recorded in the store
(:class:`Reported`), so a worker killed between a commit and its report reports it on restart.
A caller may evaluate the checks once over several commits: ``on_commit`` then returns False
(checks owed), the loop asks ``on_flush`` now and then (and at stop) to evaluate them, and what
is owed is recorded too, so the batches a killed worker owed checks for are read back and
handed to the next one.

Between batches the worker keeps what it read of a date's ledger (:class:`ledger.Memo`: its
files' rows and the event-id hashes) and its tables open (:func:`delta.tables_kept_open`), so a
batch reads what is new, not the day so far.

Operable as a service: ``stop`` (an event a SIGTERM handler sets) ends the loop after the batch
in flight; a store that fails is retried with exponential backoff (``on_error`` hears of each
failure), never raised; a lost race with another worker on the same partition is the ledger's
business (claims), so two workers on one location share its partitions safely.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.ingest import capture, ledger
from pipelines.ingest import partition as ingest
from pipelines.ingest.batch import (
    BRONZE_TABLE,
    QUARANTINE_TABLE,
    IngestResult,
    _printable,
    empty_result,
)
from pipelines.ingest.events import (
    BRONZE_SCHEMA,
    QUARANTINE_SCHEMA,
    RecordRules,
    bronze_partition,
)
from pipelines.ingest.landing import date_folders, landing_listing, list_after
from pipelines.ingest.planning import BATCH_BYTES, BATCH_OBJECTS
from pipelines.ingest.state import STATE_PREFIX
from pipelines.lake import delta
from pipelines.lake.config import LakeLocation
from pipelines.lake.config.environment import redact
from pipelines.lake.delta.cluster import Clustering
from pipelines.lake.storage import ObjectInfo, Storage, open_storage

# Where workers keep their state in the location's own store (never personal data): a status
# per worker (what ``lakehouse status`` shows) and, per partition, the last batch reported.
# A following worker refreshes its status this often when nothing else changed.
STATUS_EVERY = 10.0
# Landing dates whose ledger a worker keeps between batches (its files' rows and event-id
# hashes, 8 bytes an event): today and yesterday's late objects; an older date's batch reads
# its ledger again.
KEPT_MEMO_DATES = 2
# A closed date a worker committed to is compacted once no object of it landed for this long:
# compacting with every batch rewrote the day each time (a late stream into a closed day).
COMPACT_QUIET_SECONDS = 300.0


@dataclass(frozen=True)
class FollowOptions:
    """How a worker follows its landing area."""

    poll_seconds: float = 1.0  # between listings when nothing is due
    linger_seconds: float = 4.0  # a date is ingested once its oldest object waited this long
    batch_objects: int = BATCH_OBJECTS
    batch_bytes: int = BATCH_BYTES  # ... or once this many bytes wait (a full batch)
    max_idle_seconds: float | None = None  # stop after this long with nothing to do
    days_back: int = 2  # on start, dates this far back are caught up at once
    backoff_max_seconds: float = 60.0
    # (k, n): this worker follows only the landing dates whose day number is k modulo n, so n
    # workers on one location split its dates (each date has one worker: one reporter too)
    shard: tuple[int, int] | None = None
    # older dates (a backlog beyond ``days_back``) checked against the ledger per listing
    backlog_dates_per_tick: int = 4
    # a closed day's bronze grouped by a keyed customer bucket (:mod:`pipelines.lake.delta.cluster`)
    cluster: Clustering | None = field(default=None, repr=False)


def in_shard(day: dt.date, shard: tuple[int, int] | None) -> bool:
    """Whether worker ``k`` of ``n`` follows the landing date (every date without a shard)."""
    return shard is None or day.toordinal() % shard[1] == shard[0]


@dataclass
class Lag:
    """What waits: the oldest landed object not committed yet, and the backlog."""

    oldest_seconds: float = 0.0
    objects: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, float | int]:
        """The lag as JSON."""
        return {
            "lag_seconds": round(self.oldest_seconds, 1),
            "backlog_objects": self.objects,
            "backlog_bytes": self.bytes,
        }


@dataclass
class Committed:
    """One partition's commit by the worker: what ``on_commit`` reports."""

    location: str
    landing_date: dt.date
    region: str
    done: ingest.PartitionIngest  # the partition's totals after the commit
    batches: list[IngestResult]  # the committed batches' rows, for the checks
    lag: Lag
    recovered: bool = False  # batches committed earlier (a killed worker's) reported now
    seconds: float = 0.0  # the worker's time on this commit (the ingest call), for health


@dataclass
class Status:
    """A worker's state as ``lakehouse status`` shows it."""

    worker: str
    location: str
    state: str = "starting"  # following | backing_off | stopped
    started_at: str = ""
    updated_at: str = ""
    last_commit_at: str | None = None
    commits: int = 0
    events_landed: int = 0
    failures: int = 0
    last_error: str | None = None
    lag: dict[str, float | int] = field(default_factory=lambda: Lag().as_dict())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def worker_id() -> str:
    """``host-pid``: unique among running workers, readable in a status list."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class _Waiting:
    info: ObjectInfo
    since: float  # when it landed (the store's time) or, without one, when it was first listed


class Reported:
    """Per partition, the last ledger batch whose commit the caller has reported, and checked.

    ``through``: the last batch whose commit (its materializations) is reported; ``checked``:
    the last one the reported check evaluations cover (at most ``through``: a caller may
    evaluate the checks once over several commits).
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def _path(self, day: dt.date) -> str:
        return f"{STATE_PREFIX}/reported/{day.isoformat()}.json"

    def of(self, day: dt.date) -> tuple[int, int]:
        """``(through, checked)``: the last batch reported and the last checked (0 when none)."""
        try:
            got = json.loads(self.storage.get(self._path(day)))
        except FileNotFoundError:
            return 0, 0
        return int(got["through"]), int(got.get("checked", got["through"]))

    def through(self, day: dt.date) -> int:
        """The last batch reported (0 when none)."""
        return self.of(day)[0]

    def record(self, day: dt.date, through: int, checked: int | None = None) -> None:
        """Remember that the batches up to ``through`` are reported (``checked``: and checked)."""
        done = {"through": through, "checked": through if checked is None else checked}
        self.storage.put(self._path(day), json.dumps(done).encode())


def batch_rows(
    location: LakeLocation,
    options: dict[str, str],
    day: dt.date,
    state: ledger.LedgerState,
    numbers: list[int],
) -> list[IngestResult]:
    """The rows of committed batches, read back from the files their ledger rows name.

    What a restarted worker validates for batches a killed one committed but never reported
    (or another worker committed): the checks see the rows each batch appended.
    """
    out = []
    by_batch: dict[int, list[ledger.ObjectEntry]] = {}
    for o in state.objects:
        by_batch.setdefault(o.batch, []).append(o)
    for n in numbers:
        batch = state.batches.get(n)
        if batch is None:
            continue
        tables = []
        entries = by_batch.get(n, [])
        for name, adds, schema in (
            (BRONZE_TABLE, batch.bronze, BRONZE_SCHEMA),
            (QUARANTINE_TABLE, batch.quarantine, QUARANTINE_SCHEMA),
        ):
            uri = location.table_uri(name)
            try:
                store = open_storage(uri, options)
                parts = [pq.read_table(pa.BufferReader(store.get(a.path))) for a in adds]
                tables.append(_with_partition(parts, schema, location.region, adds))
            except FileNotFoundError:
                tables.append(_rows_now(uri, options, day, location.region, schema, entries))
        result = empty_result(location.region, day)
        result.bronze, result.quarantine = tables
        # counted from the rows read back, not carried (what empty_result sets)
        result.counted_ingested = result.counted_quarantined = result.counted_rescued = None
        result.landed = sum(o.records for o in entries)
        result.duplicates = sum(o.duplicates for o in entries)
        result.objects = len(entries)
        out.append(result)
    return out


def _rows_now(
    uri: str,
    options: dict[str, str],
    day: dt.date,
    region: str,
    schema: pa.Schema,
    entries: list[ledger.ObjectEntry],
) -> pa.Table:
    """A batch's rows as the table holds them now, found by their landing objects.

    For a batch whose files are gone since it was committed: rewritten by compaction and
    vacuumed, or removed by an erasure (its subject's rows with them). Reading them failed at
    every cycle of a worker that had the batch to report, which then never went on.
    """
    keys = sorted({o.key for o in entries})
    if not keys:
        return schema.empty_table()
    # the date's partition read whole (a rare path), then its rows of the batch's objects
    rows = delta.read_partition(uri, options, bronze_partition(day, region))
    if not rows.num_rows:
        return schema.empty_table()
    objects = rows["source_object"].cast(pa.string())
    rows = rows.filter(pc.is_in(objects, value_set=pa.array(keys, pa.string())))
    return rows.select(schema.names).cast(schema)


def _with_partition(
    parts: list[pa.Table], schema: pa.Schema, region: str, adds: list[Any]
) -> pa.Table:
    """Staged files lack the partition columns (the folder names them): put them back."""
    if not parts:
        return schema.empty_table()
    table = pa.concat_tables(parts, promote_options="default")
    values = dict(adds[0].partition_values or {}) if adds else {}
    for f in schema:
        if f.name not in table.column_names:
            raw = values.get(f.name, region if f.name == "region" else None)
            value = dt.date.fromisoformat(raw) if raw and f.type == pa.date32() else raw
            table = table.append_column(f, pa.array([value] * table.num_rows, f.type))
    return table.select(schema.names).cast(schema)


class Follower:
    """One worker's loop over one location (see the module's docstring)."""

    def __init__(
        self,
        location: LakeLocation,
        options: dict[str, str],
        rules: RecordRules | None,
        follow: FollowOptions,
        on_commit: Callable[[Committed], bool | None],
        stop: threading.Event,
        *,
        on_error: Callable[[BaseException, float], None] | None = None,
        log: Callable[[str], None] | None = None,
        today: Callable[[], dt.date] | None = None,
        on_flush: Callable[[dt.date, bool], bool] | None = None,
    ) -> None:
        self.location, self.options, self.rules, self.follow = location, options, rules, follow
        self.on_commit, self.stop, self.on_error = on_commit, stop, on_error
        self.on_flush = on_flush
        # per landing date, the batches handed to on_commit in this process, and (for dates
        # whose checks the caller still owes) the last batch handed
        self.handed: dict[dt.date, set[int]] = {}
        self.unchecked: dict[dt.date, int] = {}
        self.log = log or (lambda _msg: None)
        self.today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self.storage = open_storage(location.root_uri(), options)
        self.reported = Reported(self.storage)
        self.status = Status(worker_id(), location.name, started_at=_now())
        self.cursor: dict[str, str] = {}
        self.waiting: dict[str, _Waiting] = {}
        self.recovered = False
        self.listed = False  # the first listing holds back dates older than ``days_back``
        # dates older than ``days_back`` seen at start, newest first: checked against the
        # ledger a few per listing, their objects not ingested yet then waiting like any other
        self.older: list[dt.date] = []
        # per landing date, what is kept of its ledger between batches (the latest dates only)
        self.memos: dict[dt.date, ledger.Memo] = {}
        # per date, when its latest listed object landed; the dates committed to since their
        # last compaction (compacted once quiet: COMPACT_QUIET_SECONDS)
        self.landed_at: dict[dt.date, float] = {}
        self.uncompacted: set[dt.date] = set()
        # the loop's state (:meth:`cycle`): the error backoff, when to try again, since when
        # nothing waited, when the status was last written
        self.backoff = self.retry_at = 0.0
        self.idle_since = self.written = time.time()

    # --- discovery ---------------------------------------------------------------------------

    def _list(self) -> None:
        """Add what landed since the last listing (everything on the first)."""
        roots, _ = capture.discover_stream_roots(self.location.landing, self.storage)
        now = time.time()
        first = not self.listed
        oldest = self.today() - dt.timedelta(days=self.follow.days_back)
        older: set[dt.date] = set()
        for root in roots:
            # the first listing starts at the oldest date it keeps (a key sorting just before
            # that date's folder), so it never lists the older days' objects either
            seen = self.cursor.get(root) or (f"{root}/{oldest:%Y/%m/%d}" if first else None)
            if seen is not None:
                self.cursor.setdefault(root, seen)
            for info in list_after(self.storage, root + "/", seen):
                self.cursor[root] = info.path
                try:
                    day = capture.landing_date_of(self.location.landing, info.path)
                except ValueError:
                    continue
                if not in_shard(day, self.follow.shard):
                    continue
                if first and day < oldest:
                    older.add(day)
                    continue
                self.waiting[info.path] = _Waiting(info, info.modified or now)
                self.landed_at[day] = max(self.landed_at.get(day, 0.0), now)
        if first:
            self._drop_ingested()
            # the older dates by their folders (delimiter listings: no older object is listed)
            for root in roots:
                older.update(
                    day
                    for day in date_folders(self.storage, root)
                    if day < oldest and in_shard(day, self.follow.shard)
                )
            self.older = sorted(older, reverse=True)
        self.listed = True
        self._older_backlog()

    def _older_backlog(self) -> None:
        """A few dates older than ``days_back``: what landed and the ledger lacks now waits.

        One narrow ledger read per date (the objects' identities); a date with nothing missing
        is done with. Bounded per listing, so a worker starting over years of landing
        areas follows the stream while its backlog is found.
        """
        checked, self.older = (
            self.older[: self.follow.backlog_dates_per_tick],
            self.older[self.follow.backlog_dates_per_tick :],
        )
        now = time.time()
        for day in checked:
            infos = landing_listing(self.storage, self.location.landing, day)[0]
            part = bronze_partition(day, self.location.region)
            done = ledger.identities(
                self.location.table_uri(ledger.LEDGER_TABLE), self.options, part
            )
            for info in infos:
                if (_printable(info.path), info.etag, info.size) not in done:
                    self.waiting[info.path] = _Waiting(info, info.modified or now)

    def _drop_ingested(self) -> None:
        """At start, what the ledger already holds is not waiting (one read per date)."""
        for day in sorted({self._day(p) for p in self.waiting}):
            part = bronze_partition(day, self.location.region)
            done = ledger.identities(
                self.location.table_uri(ledger.LEDGER_TABLE), self.options, part
            )
            for path, w in list(self.waiting.items()):
                key = _printable(path)
                if self._day(path) == day and (key, w.info.etag, w.info.size) in done:
                    del self.waiting[path]

    def _day(self, path: str) -> dt.date:
        return capture.landing_date_of(self.location.landing, path)

    def lag(self, now: float | None = None) -> Lag:
        """The lag of what is listed and not committed."""
        now = now or time.time()
        if not self.waiting:
            return Lag()
        return Lag(
            max(0.0, now - min(w.since for w in self.waiting.values())),
            len(self.waiting),
            sum(w.info.size for w in self.waiting.values()),
        )

    def _due(self) -> list[dt.date]:
        """Dates to ingest now: a full batch waits, or the oldest object waited long enough."""
        now = time.time()
        by_day: dict[dt.date, list[_Waiting]] = {}
        for path, w in self.waiting.items():
            by_day.setdefault(self._day(path), []).append(w)
        due = [
            (min(w.since for w in ws), day)
            for day, ws in by_day.items()
            if sum(w.info.size for w in ws) >= self.follow.batch_bytes
            or len(ws) >= self.follow.batch_objects
            or now - min(w.since for w in ws) >= self.follow.linger_seconds
        ]
        return [day for _, day in sorted(due)]

    # --- ingest and report -------------------------------------------------------------------

    def _ingest(self, day: dt.date, compact: bool = False) -> bool:
        """One batch of a date (each reported on its own: Dagster sees every commit).

        False when it took nothing (another worker holds the objects' claim, or they are gone).
        ``compact``: a closed date is compacted too (:meth:`_compact_quiet`).
        """
        batches: list[IngestResult] = []
        started = time.perf_counter()
        done = ingest.ingest_partition(
            self.location,
            self.options,
            day,
            self.rules,
            batch_objects=self.follow.batch_objects,
            batch_bytes=self.follow.batch_bytes,
            keep_rows=False,
            on_batch=batches.append,
            cluster=self.follow.cluster,
            stop=lambda: True,  # one batch a call; the loop comes back for the rest
            memo=self._memo(day),
            compact=compact,
        )
        if done.batches:
            self.uncompacted.add(day)
        held = {o.identity for o in done.objects}
        for path in [p for p in self.waiting if self._day(p) == day]:
            info = self.waiting[path].info
            if (_printable(path), info.etag, info.size) in held:
                del self.waiting[path]
        if batches:  # committed by this call, whether or not the report below gets through
            self.status.commits += 1
            self.status.events_landed += done.result.landed
            self.status.last_commit_at = _now()
        self._report(day, done, batches, time.perf_counter() - started)
        if not batches:  # nothing taken: what still waits must still be listed, as it is
            listed = {
                (i.path, i.etag, i.size)
                for i in landing_listing(self.storage, self.location.landing, day)[0]
            }
            for path in [p for p in self.waiting if self._day(p) == day]:
                info = self.waiting[path].info
                if (path, info.etag, info.size) not in listed:
                    del self.waiting[path]  # gone or rewritten since: the next listing says
        return bool(batches)

    def _upkeep(self, busy: bool) -> None:
        """Between listings: the checks the caller owes, and (when idle) quiet closed dates."""
        self._flush(final=False)
        if not busy:
            self._compact_quiet()

    def _compact_quiet(self) -> None:
        """Compact the dates committed to that no object landed in for a while (if closed)."""
        now = time.time()
        for day in sorted(self.uncompacted):
            waits = any(self._day(p) == day for p in self.waiting)
            if waits or now - self.landed_at.get(day, 0.0) < COMPACT_QUIET_SECONDS:
                continue
            self._ingest(day, compact=True)
            self.uncompacted.discard(day)

    def _memo(self, day: dt.date) -> ledger.Memo:
        """What is kept of the date's ledger; that of all but the latest few dates let go."""
        if day not in self.memos:
            for old in sorted(self.memos)[: max(0, len(self.memos) - KEPT_MEMO_DATES + 1)]:
                del self.memos[old]
            self.memos[day] = ledger.Memo()
        return self.memos[day]

    def _report(
        self,
        day: dt.date,
        done: ingest.PartitionIngest,
        batches: list[IngestResult],
        seconds: float = 0.0,
    ) -> bool:
        """Report what the ledger committed that no report covered yet; False if nothing."""
        committed = {o.batch for o in done.objects}  # the ledger after the run: all committed
        through = max(committed, default=0)
        before, checked = self.reported.of(day)
        handed = self.handed.setdefault(day, set())
        # batches whose rows this call did not see (another worker's, a killed one's, those
        # this call finished for them), not checked yet and not handed to the caller before:
        # read back, so every reported batch is checked
        own = {o.batch for o in done.objects if any(o.key in b.per_object for b in batches)}
        missing = sorted(n for n in committed if n > checked and n not in own | handed)
        if through <= before and not missing:
            return False
        recovered = bool(missing)
        if missing:
            part = bronze_partition(day, self.location.region)
            state = ledger.read_state(
                self.location.table_uri(ledger.LEDGER_TABLE), self.options, part
            )
            batches = [*batch_rows(self.location, self.options, day, state, missing), *batches]
        all_checked = self.on_commit(
            Committed(
                self.location.name,
                day,
                self.location.region,
                done,
                batches,
                self.lag(),
                recovered,
                seconds,
            )
        )
        handed.update(own, missing)
        self._reported(day, through, checked, all_checked is not False)
        return True

    def _reported(self, day: dt.date, through: int, checked: int, all_checked: bool) -> None:
        """Record what the caller reported: checked too, or checks still owed up to ``through``."""
        if all_checked:
            self.reported.record(day, through)
            self.unchecked.pop(day, None)
        else:
            self.reported.record(day, through, checked)
            self.unchecked[day] = through

    def _flush(self, final: bool) -> None:
        """Let the caller evaluate the checks it owes (``on_flush``); record those it did."""
        for day, through in sorted(self.unchecked.items()):
            if self.on_flush is not None and self.on_flush(day, final):
                self._reported(day, through, through, True)

    def _recover(self) -> None:
        """At start: ingest and report dates whose commits were never reported (a kill)."""
        first = self.today() - dt.timedelta(days=self.follow.days_back)
        days = [first + dt.timedelta(days=i) for i in range((self.today() - first).days + 1)]
        mine = {d for d in days if in_shard(d, self.follow.shard)}
        in_ledger = self._ledger_days()
        for day in sorted(mine - {self._day(p) for p in self.waiting}):
            if in_ledger is not None:
                held = day in in_ledger
            else:
                part = bronze_partition(day, self.location.region)
                uri = self.location.table_uri(ledger.LEDGER_TABLE)
                held = bool(ledger.identities(uri, self.options, part))
            if held:  # cheap test first; the run then settles and reports what is unreported
                self._ingest(day)
        for day in sorted({self._day(p) for p in self.waiting}):
            if not self.stop.is_set():
                self._ingest(day)

    def _ledger_days(self) -> set[dt.date] | None:
        """The dates the ledger holds rows of in this region, from its log (None: not known).

        One read of the log at start, not a read of each date's ledger (``--days-back`` dates).
        """
        adds = delta.file_actions(self.location.table_uri(ledger.LEDGER_TABLE), self.options)
        if adds is None:
            return set()
        names = ("partition.landing_date", "partition.region")
        if not all(n in adds.column_names for n in names):
            return None
        days, regions = (adds[n].cast(pa.string()).to_pylist() for n in names)
        return {
            dt.date.fromisoformat(d)
            for d, r in zip(days, regions, strict=True)
            if d and r == self.location.region
        }

    # --- the loop ----------------------------------------------------------------------------

    def write_status(self, state: str) -> None:
        """Publish the worker's status in the location's store (best effort)."""
        self.status.state = state
        self.status.updated_at = _now()
        self.status.lag = self.lag().as_dict()
        try:
            path = f"{STATE_PREFIX}/status/{self.status.worker}.json"
            self.storage.put(path, json.dumps(asdict(self.status)).encode())
        except Exception as exc:  # the store may be what fails: the log still says it
            self.log(f"status not written: {exc}")

    def run(self) -> Status:
        """Follow until ``stop`` is set or ``max_idle_seconds`` pass with nothing waiting."""
        return follow_all([self], self.stop)[0]

    def cycle(self) -> bool | None:
        """One pass: list, ingest one batch of each due date, upkeep, the status.

        True when it committed or took something, False when not (nothing due, or backing off
        from an error: retried after ``backoff`` seconds, never fatal), None once it has been
        idle ``max_idle_seconds``: nothing to do, or nothing done for failing (the status keeps
        ``last_error`` then).
        """
        if time.time() < self.retry_at:
            return None if self._idle_too_long() else False
        progressed = False
        try:
            self._list()
            if not self.recovered:
                self._recover()
                self.recovered = True
            due = self._due()
            for day in due:
                if self.stop.is_set():
                    break
                progressed = self._ingest(day) or progressed
            self._upkeep(busy=bool(due))
            self.backoff = 0.0
            if due or self.status.last_error or time.time() - self.written >= STATUS_EVERY:
                self.status.last_error = None
                self.write_status("following")
                self.written = time.time()
        except Exception as exc:  # an unreachable store, a lost table: retried, never fatal
            self.backoff = min(self.follow.backoff_max_seconds, max(1.0, self.backoff * 2))
            self.status.failures += 1
            self.status.last_error = first_line(exc)
            self.log(
                f"{self.location.name}: {self.status.last_error}; retry in {self.backoff:.0f}s"
            )
            if self.on_error is not None:
                self.on_error(exc, self.backoff)
            self.write_status("backing_off")
            self.retry_at = time.time() + self.backoff
            # failing is no progress: with --max-idle-seconds the worker stops (the caller
            # says why); without, it retries for as long as it runs (a service)
            return None if self._idle_too_long() else False
        if self.waiting or due or self.older:
            self.idle_since = time.time()
        elif self._idle_too_long():
            return None
        return progressed

    def _idle_too_long(self) -> bool:
        """Whether ``max_idle_seconds`` passed since the last pass with work (or failing)."""
        limit = self.follow.max_idle_seconds
        return limit is not None and time.time() - self.idle_since >= limit

    def finish(self) -> Status:
        """At stop: the checks still owed evaluated (best effort), the status ``stopped``."""
        try:
            self._flush(final=True)
        except Exception as exc:  # owed still, in the store: the next worker evaluates them
            self.log(f"{self.location.name}: checks not reported at stop: {first_line(exc)}")
        self.write_status("stopped")
        return self.status


def follow_all(followers: list[Follower], stop: threading.Event) -> list[Status]:
    """Run ``followers`` in turn in this process until ``stop`` (or each has been idle long enough).

    One process following several locations (those of a jurisdiction, or every location on a
    laptop): each location's dates get one batch per turn, so none starves another, and the
    process's start (Dagster, Great Expectations) and its threads are shared. On two cores three
    worker processes took 1.5x the CPU of one process doing the same work in turn (benchmarks/
    stream.py): their threads preempt each other. A poll's wait only when no location progressed.
    """
    with delta.tables_kept_open():  # the same few tables, read and written batch after batch
        active = list(followers)
        while active and not stop.is_set():
            progressed = False
            for follower in list(active):
                if stop.is_set():
                    break
                got = follower.cycle()
                if got is None:
                    active.remove(follower)
                progressed = progressed or bool(got)
            if active and not progressed:  # never a busy loop
                stop.wait(min(f.follow.poll_seconds for f in active))
        return [f.finish() for f in followers]


def first_line(exc: BaseException) -> str:
    """An error's first line, bounded (its kind when it has no message): what a log line shows."""
    text = redact(str(exc).strip())  # a URL's credentials never reach a log or the store
    return text.splitlines()[0][:400] if text else type(exc).__name__
