"""One batch of landed objects into bronze rows, quarantine rows and the counts that reconcile them.

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
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.ingest import capture
from pipelines.ingest.events import (
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
from pipelines.ingest.reasons import reason_kind
from pipelines.lake import tables
from pipelines.lake.config import LandingConfig

# Objects decoded and parsed at once: three on two cores keep both busy while one thread
# waits for the GIL or a page fault (2.16 s -> 2.07 s for 1M events).
OBJECT_THREADS = 3
BRONZE_TABLE = tables.BRONZE.name
QUARANTINE_TABLE = tables.QUARANTINE.name
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
            reasons[reason_kind(out)] += 1
            continue
        names.append(key)
        tables.append(out.rows)
        hashes.append(out.hashes)
        landed += len(out.records)
        blank = out.records.blank_lines
        per_object[key] = ObjectCounts(len(out.records), 0, len(out.rejected), blank_lines=blank)
        q_tables.append(_rejected_rows(key, out.records, out.rejected, region, landing_date))
        reasons.update(reason_kind(why) for _, why in out.rejected)
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


@dataclass
class Seen:
    """The event ids a partition already holds: their 64-bit hashes, sorted, and a lookup.

    ``lookup`` answers, for candidate ids whose hash is among ``hashes`` (and those hashes),
    which of them the partition really holds: hashes say "maybe", values decide, so a
    collision drops nothing.
    """

    hashes: np.ndarray | list[np.ndarray]  # sorted, or several sorted runs (SeenHashes)
    lookup: Callable[[list[str], np.ndarray], set[str]]

    def already(self, keys: pa.ChunkedArray, hashes: np.ndarray) -> np.ndarray:
        """Mask of the rows whose id the partition already holds."""
        held = np.zeros(len(hashes), bool)
        runs = [self.hashes] if isinstance(self.hashes, np.ndarray) else self.hashes
        runs = [r for r in runs if len(r)]
        if not runs or not len(hashes):
            return held
        # sorted needles walk the sorted hashes once (5x faster than random probes on 5M)
        order = np.argsort(hashes, kind="stable")
        needles = hashes[order]
        hit = np.zeros(len(hashes), bool)
        for run in runs:
            hit |= run[np.minimum(np.searchsorted(run, needles), len(run) - 1)] == needles
        maybe = np.sort(order[hit])
        if len(maybe):
            candidates = keys.take(maybe).to_pylist()
            found = self.lookup(sorted(set(candidates)), np.unique(needles[hit]))
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
        result.reasons[reason_kind(reason)] = result.reasons.get(reason_kind(reason), 0) + 1
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
