"""Ingestion: one (landing date, region) partition of landing objects into bronze Delta.

Nothing is lost and nothing is counted twice: every landed record ends up either in bronze,
in the quarantine table with its raw bytes, source object and reason, or is counted as a
duplicate event id, so that ``landed = ingested + quarantined + duplicates``. An object that
cannot be decoded at all is quarantined whole, as one record. Blank NDJSON lines are not
records: they are counted apart (``blank_lines``).

Each object is decoded, checked, parsed and validated on its own, on :data:`OBJECT_THREADS`
threads (ISA-L's inflate, numpy and Arrow's reader release the GIL); de-duplication then runs
across the partition, in object-key order. Records stay in one buffer per object: size,
emptiness and UTF-8 are checked on it with numpy and one decode of its non-ASCII parts. The
records between those that fail are parsed as spans by Arrow's streaming JSON reader, which
keeps the blocks before a failing one; the row its error names is tried alone, so a bad record
costs about one block's re-parse and never fails the partition. Records that are not one
``{...}`` are parsed alone, so that Arrow can never read a line as two rows and shift the rest.

Hostile input is bounded before it is parsed: objects by :data:`capture.MAX_OBJECT_BYTES`
(landed and inflated), records by ``RecordRules.max_event_bytes`` and ``max_json_depth``. Fields
outside the event schema are kept in ``_rescued_data`` (Arrow's reader reports them, and only
the records that hold them go through Python's json). Every rule of :class:`RecordRules`, the
one the blocking bronze suite is built from, is applied by :func:`validate` with Arrow kernels.
An object with more than :data:`MAX_REJECTED_RECORDS` records to refuse is quarantined whole,
so that millions of bad records never become millions of quarantine rows.

An object listed but not readable (gone, a link, no permission) is skipped and reported, not
recorded in the ledger: the next run reads it again.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.ingest import capture, ledger
from pipelines.ingest.events import (
    BRONZE_PARTITION_BY,
    BRONZE_SCHEMA,
    PARSED_SCHEMA,
    QUARANTINE_SCHEMA,
    RESCUED_COLUMN,
    RecordRules,
)
from pipelines.ingest.parse import (
    MAX_REJECTED_RECORDS,
    TOO_MANY_REJECTED,
    TooManyRejectedError,
    default_rules,
    first_occurrence,
    key_hashes,
    parse_records,
    smallest_event_bytes,
    validate,
    without_rows,
)
from pipelines.lake import delta, memory
from pipelines.lake.config import LakeLocation, LandingConfig
from pipelines.lake.storage import ObjectInfo, Storage, StorageError, one_line, open_storage

# Objects decoded and parsed at once: three on two cores keep both busy while one thread
# waits for the GIL or a page fault (2.16 s -> 2.07 s for 1M events).
OBJECT_THREADS = 3
BRONZE_TABLE = "bronze_events"
QUARANTINE_TABLE = "bronze_quarantine"
# Bytes of a refused record or object kept in quarantine; the landed object itself stays in
# the landing area, so a cut copy loses nothing that cannot be read again.
MAX_QUARANTINE_RAW_BYTES = 1024 * 1024


@dataclass
class ObjectCounts:
    """What became of one object's records: ``records = ingested + quarantined + duplicates``."""

    records: int = 0
    ingested: int = 0
    quarantined: int = 0
    duplicates: int = 0
    reason: str | None = None  # why the whole object was quarantined, if it was
    blank_lines: int = 0  # NDJSON lines empty or only whitespace: no records, not in the ledger


@dataclass
class IngestResult:
    """Bronze rows, quarantined records and the counts that reconcile them."""

    landing_date: dt.date
    region: str
    bronze: pa.Table
    quarantine: pa.Table
    landed: int
    duplicates: int
    objects: int
    corrupt_objects: int  # objects quarantined whole: corrupt, too large, or a bad name
    reasons: dict[str, int] = field(default_factory=dict)
    rescued_fields: dict[str, int] = field(default_factory=dict)  # bronze rows per field
    unconfigured_streams: list[str] = field(default_factory=list)  # listed, not configured
    # per object (key as printed): records, ingested, quarantined, duplicates, whole reason
    per_object: dict[str, ObjectCounts] = field(default_factory=dict)
    # 64-bit hashes of the bronze rows' event ids (the partition's de-duplication state)
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    # Counts of a result that sums several batches without keeping their rows (else None).
    counted_ingested: int | None = None
    counted_quarantined: int | None = None
    counted_rescued: int | None = None
    blank_lines: int = 0  # NDJSON lines empty or only whitespace, in all objects: no records
    # objects listed but not read (gone, unreadable): key -> why; not in the ledger, so the
    # next run lists and reads them again
    skipped_objects: dict[str, str] = field(default_factory=dict)

    @property
    def rescued(self) -> int:
        """Bronze rows holding fields outside the schema (in ``_rescued_data``)."""
        if self.counted_rescued is not None:
            return self.counted_rescued
        column = self.bronze[RESCUED_COLUMN]
        return len(column) - column.null_count

    @property
    def ingested(self) -> int:
        """Rows written to bronze."""
        return self.bronze.num_rows if self.counted_ingested is None else self.counted_ingested

    @property
    def quarantined(self) -> int:
        """Records (and whole corrupt objects) written to quarantine."""
        if self.counted_quarantined is None:
            return self.quarantine.num_rows
        return self.counted_quarantined

    @property
    def reconciled(self) -> bool:
        """True when landed = ingested + quarantined + duplicates dropped."""
        return self.landed == self.ingested + self.quarantined + self.duplicates

    def report(self) -> dict[str, Any]:
        """The counts as a JSON-ready dict."""
        return {
            "landing_date": self.landing_date.isoformat(),
            "region": self.region,
            "objects": self.objects,
            "corrupt_objects": self.corrupt_objects,
            "landed": self.landed,
            "ingested": self.ingested,
            "quarantined": self.quarantined,
            "duplicates_dropped": self.duplicates,
            "reconciled": self.reconciled,
            "quarantine_reasons": dict(sorted(self.reasons.items())),
            "records_with_rescued_data": self.rescued,
            "rescued_fields": dict(sorted(self.rescued_fields.items())),
            "unconfigured_streams": self.unconfigured_streams,
            "blank_lines": self.blank_lines,
            "blank_lines_by_object": {
                k: c.blank_lines for k, c in sorted(self.per_object.items()) if c.blank_lines
            },
            "skipped_objects": dict(sorted(self.skipped_objects.items())),
        }


@dataclass(frozen=True)
class LandedObject:
    """One landing object as read: its key, its bytes and its size as listed.

    ``size`` exceeds ``len(data)`` when only the head of an object over the bound was read.
    """

    key: str
    data: bytes
    size: int


@dataclass
class _ObjectRows:
    """One decoded object: its records, the rows that passed every rule, the rejected ones."""

    records: capture.Records
    rows: pa.Table
    hashes: np.ndarray  # of each row's event_id, for the de-duplication across objects
    rejected: list[tuple[int, str]]


def _printable(key: str) -> str:
    """An object key as text: bytes that are not UTF-8 (kept as surrogates) as backslash escapes."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _whole_reason(obj: LandedObject) -> str | None:
    """Why an object is refused before it is decoded, if it is."""
    if _printable(obj.key) != obj.key:
        return "invalid_object_name"
    if obj.size > capture.MAX_OBJECT_BYTES or len(obj.data) > capture.MAX_OBJECT_BYTES:
        return capture.ObjectTooLargeError("landed", capture.MAX_OBJECT_BYTES).reason
    return None


def _ingest_object(
    landing: LandingConfig,
    region: str,
    landing_date: dt.date,
    obj: LandedObject,
    rules: RecordRules,
) -> _ObjectRows | str:
    """One object's rows and rejected records, or the reason it is quarantined whole."""
    if (why_whole := _whole_reason(obj)) is not None:
        return why_whole
    shortest = smallest_event_bytes(rules)
    try:
        records = capture.decode_records(
            landing, obj.data, capture.MAX_OBJECT_BYTES, shortest, MAX_REJECTED_RECORDS
        )
    except capture.CorruptObjectError as exc:
        return exc.reason
    except capture.TooManyShortRecordsError:
        return TOO_MANY_REJECTED  # each would miss a required field: refused, all of them
    try:
        ids, rows, rejected = parse_records(
            records, rules.max_event_bytes, rules.max_json_depth, None, shortest
        )
    except TooManyRejectedError as exc:
        return str(exc)
    rows, why = validate(rows, region, landing_date, rules)
    # Records Arrow could not parse and parsed rows that broke a rule, by record position.
    invalid = np.flatnonzero(why != "")
    if len(rejected) + len(invalid) > MAX_REJECTED_RECORDS:
        return TOO_MANY_REJECTED
    rejected.extend((int(ids[j]), str(why[j])) for j in invalid)
    rows = without_rows(rows, invalid)
    return _ObjectRows(records, rows, key_hashes(rows["event_id"]), rejected)


def _safely(
    landing: LandingConfig,
    region: str,
    landing_date: dt.date,
    obj: LandedObject,
    rules: RecordRules,
) -> _ObjectRows | str:
    """:func:`_ingest_object`, with any error of ours turned into a whole-object quarantine.

    Every input the engine knows of gets its own reason; this only keeps a bug that some new
    input finds from failing the partition (the fuzz test asserts it never fires).
    """
    try:
        return _ingest_object(landing, region, landing_date, obj, rules)
    except MemoryError:
        raise
    except Exception as exc:
        return f"ingest_error: {type(exc).__name__}: {str(exc)[:200]}"


def _landed(obj: LandedObject | tuple[str, bytes]) -> LandedObject:
    return obj if isinstance(obj, LandedObject) else LandedObject(obj[0], obj[1], len(obj[1]))


def _raw(data: bytes) -> bytes:
    return data[:MAX_QUARANTINE_RAW_BYTES]


def ingest_objects(
    objects: Iterable[LandedObject | tuple[str, bytes]],
    landing: LandingConfig,
    region: str,
    landing_date: dt.date,
    rules: RecordRules | None = None,
    seen: Seen | None = None,
) -> IngestResult:
    """Decode, validate and de-duplicate landing objects of one partition.

    ``rules`` default to those of the configuration in use (:func:`default_rules`). ``seen``
    holds the event ids the partition's earlier batches already hold: an id among them is a
    duplicate too, so de-duplication is exact across the whole partition.
    """
    rules = rules or default_rules()
    ordered = sorted(map(_landed, objects), key=lambda o: _printable(o.key))
    # Objects are decoded, parsed and validated on both cores (ISA-L's inflate, numpy and
    # Arrow's reader release the GIL); de-duplication is across the partition, in key order.
    with ThreadPoolExecutor(max_workers=OBJECT_THREADS) as pool:
        done = list(pool.map(lambda o: _safely(landing, region, landing_date, o, rules), ordered))
    names: list[str] = []
    tables: list[pa.Table] = []
    hashes: list[np.ndarray] = []
    # Quarantine rows one table per object, in key order (so already sorted as _quarantine
    # sorts): columns, not a dict per rejected record.
    q_tables: list[pa.Table] = [QUARANTINE_SCHEMA.empty_table()]
    reasons: Counter[str] = Counter()
    per_object: dict[str, ObjectCounts] = {}
    landed = whole = 0
    for obj, out in zip(ordered, done, strict=True):
        key = _printable(obj.key)
        if isinstance(out, str):
            whole += 1
            per_object[key] = ObjectCounts(1, 0, 1, 0, out)
            row = {"source_object": key, "record_index": -1, "reason": out, "raw": _raw(obj.data)}
            q_tables.append(_quarantine([row], region, landing_date))
            reasons[_reason_key(out)] += 1
            continue
        names.append(key)
        tables.append(out.rows)
        hashes.append(out.hashes)
        landed += len(out.records)
        blank = out.records.blank_lines
        per_object[key] = ObjectCounts(len(out.records), 0, len(out.rejected), blank_lines=blank)
        q_tables.append(_rejected_rows(key, out.records, out.rejected, region, landing_date))
        reasons.update(_reason_key(why) for _, why in out.rejected)
    bronze, kept, dropped, kept_hashes = _bronze(
        names, tables, hashes, region, landing_date, rules, seen
    )
    for name, n, d in zip(names, [t.num_rows for t in kept], dropped, strict=True):
        per_object[name].ingested, per_object[name].duplicates = n, d
    duplicates = sum(dropped)
    return IngestResult(
        landing_date=landing_date,
        region=region,
        bronze=bronze,
        quarantine=pa.concat_tables(q_tables).combine_chunks(),
        landed=landed + whole,
        duplicates=duplicates,
        objects=len(names) + whole,
        corrupt_objects=whole,
        reasons=dict(reasons),
        rescued_fields=_rescued_fields(bronze[RESCUED_COLUMN]),
        per_object=per_object,
        hashes=kept_hashes,
        blank_lines=sum(c.blank_lines for c in per_object.values()),
    )


def _reason_key(reason: str) -> str:
    """A reason as counted: corrupt objects and errors by kind, not by their error's words."""
    for kind in ("corrupt_object", "ingest_error", "object_rewritten"):
        if reason.startswith(kind):
            return kind
    return reason


@dataclass
class Seen:
    """The event ids a partition already holds: their 64-bit hashes, sorted, and a lookup.

    ``lookup`` answers, for candidate ids whose hash is among ``hashes``, which of them the
    partition really holds: hashes say "maybe", values decide, so a collision drops nothing.
    """

    hashes: np.ndarray
    lookup: Callable[[list[str]], set[str]]

    def already(self, keys: pa.ChunkedArray, hashes: np.ndarray) -> np.ndarray:
        """Mask of the rows whose id the partition already holds."""
        held = np.zeros(len(hashes), bool)
        if not len(self.hashes) or not len(hashes):
            return held
        # sorted needles walk the sorted hashes once (5x faster than random probes on 5M)
        order = np.argsort(hashes, kind="stable")
        where = np.empty(len(hashes), np.intp)
        where[order] = np.searchsorted(self.hashes, hashes[order])
        maybe = np.flatnonzero(self.hashes[np.minimum(where, len(self.hashes) - 1)] == hashes)
        if len(maybe):
            candidates = keys.take(maybe).to_pylist()
            found = self.lookup(sorted(set(candidates)))
            held[maybe] = [k in found for k in candidates]
        return held


def _bronze(
    names: list[str],
    tables: list[pa.Table],
    hashes: list[np.ndarray],
    region: str,
    landing_date: dt.date,
    rules: RecordRules,
    seen: Seen | None = None,
) -> tuple[pa.Table, list[pa.Table], list[int], np.ndarray]:
    """The batch's bronze rows, each object's rows kept and duplicates, the kept ids' hashes.

    A row is kept when it is the first of its event id in the batch (object-key order) and
    the partition's earlier batches (``seen``) do not hold its id.
    """
    empty = validate(PARSED_SCHEMA.empty_table(), region, landing_date, rules)[0]
    keys = pa.chunked_array([c for t in tables for c in t["event_id"].chunks], pa.string())
    h = np.concatenate([np.zeros(0, np.uint64), *hashes])
    first = first_occurrence(keys, h)
    if seen is not None:
        first &= ~seen.already(keys, h)
    ends = np.cumsum([t.num_rows for t in tables])
    masks = np.split(first, ends[:-1]) if tables else []
    dropped = [int((~keep).sum()) for keep in masks]
    if sum(dropped):
        tables = [
            without_rows(t, np.flatnonzero(~keep)) for t, keep in zip(tables, masks, strict=True)
        ]
    rows = pa.concat_tables([empty, *tables])
    # Each object's name once per row: a one-word dictionary decoded is 8x faster than a take.
    source = [
        pa.DictionaryArray.from_arrays(pa.array(np.zeros(t.num_rows, np.int32)), pa.array([name]))
        for name, t in zip(names, tables, strict=True)
    ]
    bronze = rows.append_column(
        "source_object", pa.chunked_array([s.cast(pa.string()) for s in source], pa.string())
    )
    day = np.full(bronze.num_rows, np.datetime64(landing_date, "D"))
    bronze = bronze.append_column("landing_date", pa.array(day).cast(pa.date32()))
    return bronze.select(BRONZE_SCHEMA.names).cast(BRONZE_SCHEMA), tables, dropped, h[first]


def _rejected_rows(
    key: str,
    records: capture.Records,
    rejected: list[tuple[int, str]],
    region: str,
    landing_date: dt.date,
) -> pa.Table:
    """One object's rejected records as quarantine rows, by their line in the object.

    Built as columns: at most :data:`MAX_REJECTED_RECORDS` rows, each raw record cut at
    :data:`MAX_QUARANTINE_RAW_BYTES`.
    """
    ids = np.fromiter((i for i, _ in rejected), np.int64, len(rejected))
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    n = len(ids)
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, np.datetime64(landing_date, "D"))).cast(pa.date32()),
            pa.array([region] * n, pa.string()),
            pa.array([key] * n, pa.string()),
            pa.array(records.line_of(ids)),
            pa.array([rejected[j][1] for j in order.tolist()], pa.string()),
            pa.array([_raw(records.raw(i)) for i in ids.tolist()], pa.binary()),
        ],
        schema=QUARANTINE_SCHEMA,
    )


def _quarantine(q_rows: list[dict[str, Any]], region: str, landing_date: dt.date) -> pa.Table:
    q_rows.sort(key=lambda r: (r["source_object"], r["record_index"]))
    return pa.Table.from_pylist(
        [{"landing_date": landing_date, "region": region, **r} for r in q_rows],
        schema=QUARANTINE_SCHEMA,
    )


def _rescued_fields(column: pa.ChunkedArray, most: int = 50) -> dict[str, int]:
    """How many bronze rows rescued each field name (the ``most`` commonest, names cut)."""
    counts: Counter[str] = Counter()
    found = pc.value_counts(column.drop_null())  # each distinct JSON once
    for text, n in zip(
        found.field("values").to_pylist(), found.field("counts").to_pylist(), strict=False
    ):
        for name in json.loads(text):
            counts[name[:100]] += n
    return dict(counts.most_common(most))


def landing_listing(
    storage: Storage, landing: LandingConfig, landing_date: dt.date
) -> tuple[list[ObjectInfo], list[str]]:
    """The objects that landed on a date, and the stream roots holding some not configured.

    Only that date's prefixes are listed, under every stream root found (an Event Hub's
    partition folders are listed, not assumed from the configured count).
    """
    roots, unconfigured = capture.discover_stream_roots(landing, storage)
    infos = [
        info
        for prefix in capture.date_prefixes(landing, landing_date, roots)
        for info in storage.list(prefix)
    ]
    seen = {i.path.split("/" + f"{landing_date:%Y/%m/%d}/")[0] for i in infos}
    return infos, [r for r in unconfigured if r in seen]


def landing_objects(storage: Storage, landing: LandingConfig, landing_date: dt.date) -> list[str]:
    """Keys of the objects that landed on a date (only that date's prefixes are listed)."""
    return [info.path for info in landing_listing(storage, landing, landing_date)[0]]


def _fetch(storage: Storage, info: ObjectInfo) -> LandedObject:
    """An object's bytes; only its head when it is over the bound (it is refused anyway)."""
    if info.size <= capture.MAX_OBJECT_BYTES:
        return LandedObject(info.path, storage.get(info.path), info.size)
    head = bytearray()
    for chunk in storage.read_chunks(info.path):
        head += chunk
        if len(head) >= MAX_QUARANTINE_RAW_BYTES:
            break
    return LandedObject(info.path, bytes(head[:MAX_QUARANTINE_RAW_BYTES]), info.size)


def _fetch_or_skip(storage: Storage, info: ObjectInfo) -> LandedObject | str:
    """:func:`_fetch`, or why the object could not be read, on one line.

    An object listed but gone when read (deleted or expired meanwhile), a dangling link, or one
    this process may not read is one object's problem, never its partition's: the caller leaves
    it out of the batch and reports it, and as the ledger does not hold it the next run lists
    and reads it again.
    """
    try:
        return _fetch(storage, info)
    except FileNotFoundError as exc:
        return f"not found: {one_line(exc)}"
    except (OSError, StorageError) as exc:
        return f"unreadable: {type(exc).__name__}: {one_line(exc)}"


def read_partition_objects(
    storage: Storage, landing: LandingConfig, landing_date: dt.date
) -> list[LandedObject]:
    """The landing objects of one date, read concurrently (bounded: see :func:`_fetch`)."""
    infos = landing_listing(storage, landing, landing_date)[0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda info: _fetch(storage, info), infos))


# Objects of a partition ingested per batch, and their landed bytes: a batch's objects are
# held in memory at once (each inflated about 5x), so these bound the ingest's memory whatever
# the day's size. 32 MiB of gzip (about 560,000 events) peaks at about 820 MB a process.
BATCH_OBJECTS = 256
BATCH_BYTES = 32 * 1024 * 1024
# A day is closed (no more objects land in its folders) this long after it ends.
DAY_CLOSES_AFTER = dt.timedelta(hours=1)
# A closed day's partition is compacted when it has more files than this.
COMPACT_ABOVE_FILES = 4
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


@dataclass
class _Todo:
    """The next batch: objects to read, and those rewritten since they were ingested."""

    infos: list[ObjectInfo]
    rewritten: list[tuple[ObjectInfo, ledger.ObjectEntry]]
    replace: bool = False


def _batches(infos: list[ObjectInfo], most_objects: int, most_bytes: int) -> list[list[ObjectInfo]]:
    """``infos`` in order, cut into batches of at most so many objects and landed bytes."""
    out: list[list[ObjectInfo]] = []
    size = 0
    for info in infos:
        if not out or len(out[-1]) >= most_objects or size + info.size > most_bytes:
            if not out or out[-1]:
                out.append([])
            size = 0
        out[-1].append(info)
        size += min(info.size, capture.MAX_OBJECT_BYTES)
    return out


def _in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    return (
        shard is None or zlib.crc32(key.encode("utf-8", "surrogateescape")) % shard[1] == shard[0]
    )


def _next_batch(
    state: ledger.LedgerState,
    infos: list[ObjectInfo],
    limits: tuple[int, int],
    shard: tuple[int, int] | None,
) -> _Todo:
    """The objects not ingested yet (in key order), and those rewritten in place."""
    done, keys = state.identities(), {o.key: o for o in state.objects}
    new: list[ObjectInfo] = []
    rewritten: list[tuple[ObjectInfo, ledger.ObjectEntry]] = []
    for info in infos:
        key = _printable(info.path)
        if (key, info.etag, info.size) in done or not _in_shard(key, shard):
            continue
        if key in keys:
            rewritten.append((info, keys[key]))
        else:
            new.append(info)
    batches = _batches(new, *limits)
    return _Todo(batches[0] if batches else [], rewritten)


def _full_plan(
    state: ledger.LedgerState, infos: list[ObjectInfo], limits: tuple[int, int]
) -> list[list[ObjectInfo]]:
    """A full re-ingest's batches: the ledger's own batches again, then objects never ingested.

    Replaying the batches the incremental runs made keeps the first occurrence of each event
    id where they kept it, so the rows come out the same.
    """
    by_key = {_printable(i.path): i for i in infos}
    missing = sorted(k for k in state.key_set() if k not in by_key)
    if missing:
        raise IngestError(
            f"full re-ingest refused: {len(missing)} ingested objects are gone from the landing "
            f"area (first: {missing[0]}); their rows cannot be read again"
        )
    groups = [[by_key[k] for k in group] for group in state.groups()]
    known = state.key_set()
    return groups + _batches([i for i in infos if _printable(i.path) not in known], *limits)


class IngestError(RuntimeError):
    """A request the ingest refuses; the message (one line) says what and why."""


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


def _add_whole(result: IngestResult, rows: list[tuple[str, str, bytes]]) -> IngestResult:
    """``result`` with objects quarantined whole before they were read."""
    if not rows:
        return result
    extra = _quarantine(
        [{"source_object": k, "record_index": -1, "reason": r, "raw": raw} for k, r, raw in rows],
        result.region,
        result.landing_date,
    )
    result.quarantine = pa.concat_tables([result.quarantine, extra])
    for key, reason, _ in rows:
        result.per_object[key] = ObjectCounts(1, 0, 1, 0, reason)
        result.reasons[_reason_key(reason)] = result.reasons.get(_reason_key(reason), 0) + 1
    result.landed += len(rows)
    result.objects += len(rows)
    result.corrupt_objects += len(rows)
    return result


def empty_result(region: str, landing_date: dt.date) -> IngestResult:
    """A result with no rows (what a run with nothing new adds)."""
    bronze = BRONZE_SCHEMA.empty_table()
    out = IngestResult(landing_date, region, bronze, QUARANTINE_SCHEMA.empty_table(), 0, 0, 0, 0)
    out.counted_ingested = out.counted_quarantined = out.counted_rescued = 0
    return out


def _merge(total: IngestResult, part: IngestResult, keep_rows: bool) -> IngestResult:
    """Two results of one partition as one (rows concatenated only with ``keep_rows``)."""
    if keep_rows:
        total.bronze = pa.concat_tables([total.bronze, part.bronze])
        total.quarantine = pa.concat_tables([total.quarantine, part.quarantine])
    total.counted_ingested = (total.counted_ingested or 0) + part.ingested
    total.counted_quarantined = (total.counted_quarantined or 0) + part.quarantined
    total.counted_rescued = (total.counted_rescued or 0) + part.rescued
    total.landed += part.landed
    total.duplicates += part.duplicates
    total.objects += part.objects
    total.corrupt_objects += part.corrupt_objects
    total.reasons = dict(Counter(total.reasons) + Counter(part.reasons))
    total.rescued_fields = dict(Counter(total.rescued_fields) + Counter(part.rescued_fields))
    total.per_object.update(part.per_object)
    total.blank_lines += part.blank_lines
    total.skipped_objects.update(part.skipped_objects)
    return total


@dataclass
class _Tables:
    """The three tables of a location's ingest."""

    bronze: str
    quarantine: str
    ledger: str
    options: dict[str, str]

    def targets(self) -> dict[str, tuple[str, pa.Schema]]:
        return {
            "bronze": (self.bronze, BRONZE_SCHEMA),
            "quarantine": (self.quarantine, QUARANTINE_SCHEMA),
        }


def _settle(
    t: _Tables, part: dict[str, object], *, check: bool = False, full: bool = False
) -> tuple[ledger.LedgerState, list[int]]:
    """The partition's ledger, after finishing any batch a crashed writer left pending.

    With ``check`` (a run's first look), the ledger is first checked against what bronze and
    quarantine hold (:func:`ledger.check_tables`); a full re-ingest rebuilds it instead, with
    batch numbers above what the tables hold.
    """
    hold = 0
    if check:  # read before the ledger: see check_tables
        hold = max(ledger.held(uri, t.options, part) for uri, _ in t.targets().values())
    state = ledger.read_state(t.ledger, t.options, part)
    if check and not full:
        ledger.check_tables(state, hold, t.ledger, part)
    state.tables_hold = hold
    finished = []
    for batch in state.pending():
        versions = ledger.finish(t.targets(), t.ledger, t.options, part, batch)
        if versions is None:  # its staged files are gone: abandoned, its objects taken again
            state = ledger.read_state(t.ledger, t.options, part)
            state.tables_hold = hold
            continue
        state.committed[batch.number] = versions
        finished.append(batch.number)
    return state, finished


def _lookup(t: _Tables, part: dict[str, object]) -> Callable[[list[str]], set[str]]:
    def lookup(ids: list[str]) -> set[str]:
        return set(delta.read_values(t.bronze, t.options, part, "event_id", ids))

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
    ``keep_rows``). A closed day's partition is compacted. ``rules`` default to those of the
    configuration in use. ``stop`` is asked after each batch: once it says True, the run ends
    there (the batch in flight is committed first; what is left waits for the next run).
    """
    memory.bound_heap()
    storage = open_storage(location.root_uri(), options)
    infos, unconfigured = landing_listing(storage, location.landing, landing_date)
    part: dict[str, object] = {"landing_date": landing_date, "region": location.region}
    t = _Tables(
        location.table_uri(BRONZE_TABLE),
        location.table_uri(QUARANTINE_TABLE),
        location.table_uri(ledger.LEDGER_TABLE),
        dict(options),
    )
    limits = (batch_objects, batch_bytes)
    state, finished = _settle(t, part, check=True, full=full)
    if not full and not state.objects and delta.partition_rows(t.bronze, t.options, part):
        full = True  # written before the ledger existed: replace it once, then go on
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
            readable = [i for i in infos if _printable(i.path) not in skipped]
            todo = _next_batch(state, readable, limits, shard)
            if not todo.infos and not todo.rewritten:
                break
        todo.replace = replace
        committed = _one_batch(storage, location, t, part, state, todo, rules, skipped)
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
        state, more = _settle(t, part)
        state.tables_hold = hold
        done.batches.extend(more)
        memory.give_back()  # so that a day of any size peaks at one batch
        if stop is not None and stop():
            break
    done.compacted = _compact_if_closed(t, part, landing_date, now)
    return _totals(done, state, t, part)


def backlog(
    location: LakeLocation,
    options: dict[str, str],
    landing_date: dt.date,
    now: dt.datetime | None = None,
) -> str | None:
    """Why a partition needs an ingest run, or None: what the hourly safety net asks.

    Costs one listing of the date's folders and a narrow read of the ledger: objects listed
    but not in the ledger (new or rewritten), or a closed day whose bronze still has many files.
    """
    storage = open_storage(location.root_uri(), options)
    infos = landing_listing(storage, location.landing, landing_date)[0]
    part: dict[str, object] = {"landing_date": landing_date, "region": location.region}
    done = ledger.identities(location.table_uri(ledger.LEDGER_TABLE), options, part)
    new = sum((_printable(i.path), i.etag, i.size) not in done for i in infos)
    if new:
        return f"{new} landed objects not ingested"
    closes = dt.datetime.combine(landing_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    if (now or dt.datetime.now(dt.UTC)) >= closes + DAY_CLOSES_AFTER and (
        delta.partition_files(location.table_uri(BRONZE_TABLE), options, part) > COMPACT_ABOVE_FILES
    ):
        return "closed day with small files to compact"
    return None


def _one_batch(
    storage: Storage,
    location: LakeLocation,
    t: _Tables,
    part: dict[str, object],
    state: ledger.LedgerState,
    todo: _Todo,
    rules: RecordRules | None,
    skipped: dict[str, str],
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
        seen = Seen(ledger.read_hashes(t.ledger, t.options, part), _lookup(t, part))
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
    if not ledger.claim(t.ledger, t.options, part, number, entries, batch, np.sort(result.hashes)):
        delta.discard_files(t.bronze, t.options, b_adds)
        delta.discard_files(t.quarantine, t.options, q_adds)
        return None
    versions = ledger.finish(t.targets(), t.ledger, t.options, part, batch)
    if versions is None:  # its files vanished before the commit: abandoned, taken again
        return None
    return result, number, versions


def _compact_if_closed(
    t: _Tables, part: dict[str, object], landing_date: dt.date, now: dt.datetime | None
) -> bool:
    """Compact a closed day's partition of the three tables once it has many small files."""
    closes = dt.datetime.combine(landing_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    if (now or dt.datetime.now(dt.UTC)) < closes + DAY_CLOSES_AFTER:
        return False
    return any(
        [
            delta.compact_partition(uri, t.options, part, COMPACT_ABOVE_FILES)
            for uri in (t.bronze, t.quarantine, t.ledger)
        ]
    )


def _totals(
    done: PartitionIngest, state: ledger.LedgerState, t: _Tables, part: dict[str, object]
) -> PartitionIngest:
    done.totals = state.totals()
    done.objects = state.objects
    if done.compacted:  # compaction made a newer version than the last batch's
        done.bronze_version = done.quarantine_version = -1
    if done.bronze_version < 0:  # nothing appended to it by this run: its current version
        done.bronze_version = delta.table_version(t.bronze, t.options) or 0
    if done.quarantine_version < 0:
        done.quarantine_version = delta.table_version(t.quarantine, t.options) or 0
    done.table_rows = {
        "bronze": delta.partition_rows(t.bronze, t.options, part),
        "quarantine": delta.partition_rows(t.quarantine, t.options, part),
    }
    return done
