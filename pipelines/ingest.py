"""Ingestion: one (landing date, region) partition of landing objects into bronze Delta.

Nothing is lost and nothing is counted twice: every landed record ends up either in bronze,
in the quarantine table with its raw bytes, source object and reason, or is counted as a
duplicate event id, so that ``landed = ingested + quarantined + duplicates``. An object that
cannot be decoded at all is quarantined whole, as one record.

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
"""

from __future__ import annotations

import codecs
import datetime as dt
import itertools
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipelines import capture, delta, ledger, memory
from pipelines.config import LakeLocation, LandingConfig, load_config
from pipelines.events import (
    BRONZE_PARTITION_BY,
    BRONZE_SCHEMA,
    MAX_EVENT_BYTES,
    MAX_EVENT_TS,
    MAX_JSON_DEPTH,
    MIN_EVENT_TS,
    PARSED_SCHEMA,
    QUARANTINE_SCHEMA,
    RESCUED_COLUMN,
    WIRE_SCHEMA,
    RecordRules,
    nesting_depth,
    non_finite_field,
    out_of_range_field,
    record_rules,
    wrong_type_field,
)
from pipelines.storage import ObjectInfo, Storage, open_storage

# Arrow reads about this much per block; a block costs ~0.1 ms on its own, so smaller
# blocks cost more on clean data than they save around a bad record.
STREAM_BLOCK_BYTES = 256 * 1024
# Objects decoded and parsed at once: three on two cores keep both busy while one thread
# waits for the GIL or a page fault (2.16 s -> 2.07 s for 1M events).
OBJECT_THREADS = 3
BRONZE_TABLE = "bronze_events"
QUARANTINE_TABLE = "bronze_quarantine"
# Bytes of a refused record or object kept in quarantine; the landed object itself stays in
# the landing area, so a cut copy loses nothing that cannot be read again.
MAX_QUARANTINE_RAW_BYTES = 1024 * 1024
# The stream is read strictly: a record with a field outside the schema stops it, so that the
# few records holding one are found (and their fields rescued) without looking at the others.
_STRICT = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="error")
_PARSE = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="ignore")
_UNEXPECTED = "unexpected field"
_WIRE_NAMES = frozenset(WIRE_SCHEMA.names)
_ERROR_ROW = re.compile(r" in row (\d+)$")
_UTF8_WINDOW = 1 << 16
_WHITESPACE = np.frombuffer(b" \t\r\x0b\x0c", np.uint8)  # what bytes.strip() removes, but \n


@dataclass
class ObjectCounts:
    """What became of one object's records: ``records = ingested + quarantined + duplicates``."""

    records: int = 0
    ingested: int = 0
    quarantined: int = 0
    duplicates: int = 0
    reason: str | None = None  # why the whole object was quarantined, if it was


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
        }


def default_rules() -> RecordRules:
    """The record rules of the configuration in use (``lakehouse.yaml`` ``regions:``)."""
    return record_rules(load_config())


class _Duplicate(ValueError):
    """A JSON object naming one field twice (Arrow refuses it; Python keeps the last)."""


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Duplicate(next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1))
    return obj


def _named(field: str | None) -> str:
    """A field as reasons name it: its own name in the schema, else the rescued column.

    Names from outside the schema are the producer's (any length, any number of them); the
    reasons stay a short, fixed vocabulary.
    """
    return field if field is not None and field in _WIRE_NAMES else RESCUED_COLUMN


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs)


def _load(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, object] | str:
    """A record as a Python dict, or the reason it is not one that can be kept."""
    try:
        obj = _DECODER.decode(raw.decode("utf-8"))
    except _Duplicate as dup:
        return f"duplicate_field:{_named(str(dup))}"
    except RecursionError:  # deeper than Python's json goes (about 1,000 levels)
        return "too_deeply_nested"
    except ValueError:  # UnicodeDecodeError too: the ingest refuses such records before
        return "malformed_json"
    if not isinstance(obj, dict):
        return "malformed_json: not an object"
    flat = raw.count(b"{") == 1 and b"[" not in raw  # one object, nothing in it: no walk
    if not flat and nesting_depth(obj) > max_depth:
        return "too_deeply_nested"
    return obj


def _classify(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> str:
    """Why Arrow could not parse one record."""
    if not raw.strip():
        return "empty_record"  # whitespace only: Arrow skips it instead of failing
    obj = _load(raw, max_depth)
    if isinstance(obj, str):
        return obj
    if bad := non_finite_field(obj):
        return f"non_finite_number:{_named(bad)}"
    if bad := wrong_type_field(obj):
        return f"wrong_type:{bad}"
    if bad := out_of_range_field(obj):
        return f"number_out_of_range:{bad}"
    return "unparseable"


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _rescued_json(extra: dict[str, object]) -> tuple[str | None, str | None]:
    """Fields outside the schema as one JSON object (None if none), or why they cannot be."""
    if not extra:
        return None, None
    try:
        return _ENCODER.encode(extra), None
    except ValueError:  # NaN has no JSON spelling: the column must stay JSON
        return None, f"non_finite_number:{RESCUED_COLUMN}"
    except RecursionError:
        return None, "too_deeply_nested"


def _rescue(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> tuple[str | None, str | None]:
    """A parsed record's fields outside the schema as a JSON object, or why it is refused.

    Returns (rescued JSON or None when there is no such field, quarantine reason or None).
    """
    obj = _load(raw, max_depth)
    if isinstance(obj, str):
        return None, obj
    return _rescued_json({k: v for k, v in obj.items() if k not in _WIRE_NAMES})


def _read(buf: pa.Buffer, start: int, end: int, parse: pj.ParseOptions = _PARSE) -> pa.Table:
    # One block per call, so a row number in Arrow's error counts from ``start``.
    size = end - start
    read = pj.ReadOptions(use_threads=False, block_size=max(size + 1, 1 << 16))
    return pj.read_json(pa.BufferReader(buf.slice(start, size)), read, parse)


def _failed_row(exc: Exception) -> int | None:
    """The row Arrow names in a parse error (counted from the failing block), if it names one."""
    found = _ERROR_ROW.search(str(exc))
    return int(found.group(1)) if found else None


class _Parsed:
    """What parsing one object's records gave: row batches by first record, rejected records.

    ``rescued`` maps a record to the JSON of its fields outside the schema.
    """

    def __init__(self, buf: pa.Buffer, records: capture.Records, max_depth: int) -> None:
        self.buf, self.records, self.max_depth = buf, records, max_depth
        self.good: list[tuple[int, list[pa.RecordBatch]]] = []
        self.bad: list[tuple[int, str]] = []
        self.rescued: dict[int, str] = {}

    def _stream(
        self, lo: int, hi: int, parse: pj.ParseOptions = _STRICT
    ) -> tuple[list[pa.RecordBatch], Exception | None]:
        """Records lo..hi-1 block by block; the blocks before a failing one, and its error."""
        start, end = int(self.records.starts[lo]), int(self.records.ends[hi - 1])
        batches: list[pa.RecordBatch] = []
        try:
            read = pj.ReadOptions(use_threads=False, block_size=STREAM_BLOCK_BYTES)
            batches.extend(
                pj.open_json(pa.BufferReader(self.buf.slice(start, end - start)), read, parse)
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            return batches, exc
        return batches, None

    def _alone(self, i: int) -> tuple[pa.Table | None, bool]:
        """Record ``i`` parsed by itself, and whether it holds a field outside the schema.

        The row is None when the record gives no single row.
        """
        start, end = int(self.records.starts[i]), int(self.records.ends[i])
        extra = False
        try:
            table = _read(self.buf, start, end, _STRICT)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if _UNEXPECTED not in str(exc):
                return None, False
            try:
                table, extra = _read(self.buf, start, end, _PARSE), True
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None, False
        return (table if table.num_rows == 1 else None), extra

    def one(self, i: int) -> None:
        """Parse record ``i`` alone; keep its row (and rescued fields), or reject it."""
        table, extra = self._alone(i)
        if table is None:
            self.bad.append((i, _classify(self.records.raw(i), self.max_depth)))
            return
        if extra:
            rescued, why = _rescue(self.records.raw(i), self.max_depth)
            if why is not None:
                self.bad.append((i, why))
                return
            if rescued is not None:
                self.rescued[i] = rescued
        self.good.append((i, table.to_batches()))

    def span(self, lo: int, hi: int, parse: pj.ParseOptions = _STRICT) -> None:
        """Parse records lo..hi-1, each known to be one JSON value or a parse error.

        Arrow's streaming reader keeps the blocks before a failing one. When a field outside
        the schema stopped it, that block is handed to :meth:`_extra`. Otherwise the row its
        error names is tried alone: when it fails alone, the rows before it are parsed again
        and the stream resumes after it; otherwise (or when the error names no row) what is
        left is halved.
        """
        while lo < hi:
            batches, exc = self._stream(lo, hi, parse)
            at = lo + sum(b.num_rows for b in batches)  # first record of the failing block
            if batches:
                self.good.append((lo, batches))
            if exc is None:
                if at != hi:  # cannot happen for one-value records; never let rows shift
                    raise RuntimeError(f"Arrow gave {at - lo} rows for {hi - lo} records")
                return
            row = _failed_row(exc)
            if hi - at == 1:
                self.one(at)
                return
            if _UNEXPECTED in str(exc):
                # about one block: Arrow's blocks end at the last newline within their size
                start = self.records.starts[at] + STREAM_BLOCK_BYTES
                end = int(np.searchsorted(self.records.ends, start, side="right"))
                lo = min(hi, max(at + 1, end))
                self._extra(at, lo)
                continue
            if row is not None and at + row < hi and self._alone(at + row)[0] is not None:
                row = None
            if row is None:
                mid = (at + hi) // 2
                self.span(at, mid, parse)
                lo = mid
                continue
            self.span(at, at + row, parse)
            self.bad.append((at + row, _classify(self.records.raw(at + row), self.max_depth)))
            lo = at + row + 1

    def _extra(self, lo: int, hi: int) -> None:
        """Records lo..hi-1, where Arrow met a field outside the schema.

        Python's json reads each: the fields outside the schema are rescued (or the record is
        refused), then the block is parsed again ignoring such fields, which is safe for every
        record Python has read; the others are parsed alone. A producer adding a field to every
        event so costs one json.loads per event, not one Arrow parse per event.
        """
        unread: list[int] = []
        skip: list[int] = []
        found = False
        for i in range(lo, hi):
            obj = _load(self.records.raw(i), self.max_depth)
            if isinstance(obj, str):
                unread.append(i)
                skip.append(i)
                continue
            extra = {k: v for k, v in obj.items() if k not in _WIRE_NAMES}
            if not extra:
                continue
            found = True
            rescued, why = _rescued_json(extra)
            if why is not None:
                self.bad.append((i, why))
                skip.append(i)
            else:
                self.rescued[i] = str(rescued)
        if not found:  # the field is past ``hi``, or in a record Python cannot read: halve
            mid = (lo + hi) // 2
            self.span(lo, mid)
            self.span(mid, hi)
            return
        prev, alone = lo, set(unread)
        for i in [*skip, hi]:
            if prev < i:
                self.span(prev, i, _PARSE)
            if i in alone:
                self.one(i)
            prev = i + 1


def _one_value_each(
    records: capture.Records, candidates: np.ndarray, rejected: Iterable[int]
) -> np.ndarray:
    """Mask over ``candidates``: records that are one JSON value for Arrow, or a parse error.

    Arrow reads every JSON value of a line as a row, so ``{..}{..}`` would give two rows and
    shift all after it. A record that starts with '{', ends with '}' and holds no other '}' is
    one object or a parse error. The '}' are counted over the whole buffer (less those of the
    records not asked about); only when that count is off (nested objects, braces in strings)
    are they counted per record.
    """
    raw = np.frombuffer(records.data, np.uint8)
    first, last = raw[records.starts[candidates]], raw[records.ends[candidates] - 1]
    ok = (first == ord("{")) & (last == ord("}"))
    others = [*rejected, *candidates[~ok].tolist()]
    braces = records.data.count(b"}") - sum(records.raw(i).count(b"}") for i in others)
    if braces == int(ok.sum()):  # each has at least its last byte: so exactly one
        return ok
    where = np.flatnonzero(raw == ord("}"))
    owner = np.searchsorted(records.starts, where, side="right") - 1
    per_record = np.bincount(owner, minlength=len(records))
    return ok & (per_record[candidates] == 1)


def _invalid_utf8(records: capture.Records) -> list[int]:
    """Records that are not valid UTF-8.

    Only windows of the buffer that hold a non-ASCII byte are decoded, over whole records: a
    newline is never part of a multi-byte sequence, so every error is inside one record.
    """
    data, view = records.data, memoryview(records.data)
    if data.isascii():
        return []
    bad: list[int] = []
    checked = 0  # records before this one have been decoded
    for lo in range(0, len(data), _UTF8_WINDOW):
        if data[lo : lo + _UTF8_WINDOW].isascii():
            continue
        first = max(checked, int(np.searchsorted(records.ends, lo, side="right")))
        checked = max(checked, int(np.searchsorted(records.starts, lo + _UTF8_WINDOW)))
        if first >= checked:
            continue
        pos, end = int(records.starts[first]), int(records.ends[checked - 1])
        while pos < end:
            try:
                codecs.utf_8_decode(view[pos:end], "strict", True)
                break
            except UnicodeDecodeError as exc:
                i = int(np.searchsorted(records.ends, pos + exc.start, side="right"))
                bad.append(i)
                pos = int(records.ends[i]) + 1
    return bad


def _blank(records: capture.Records) -> list[int]:
    """Non-empty records of only whitespace (Arrow would skip them and shift every row after)."""
    nonempty = np.flatnonzero(records.ends > records.starts)
    first = np.frombuffer(records.data, np.uint8)[records.starts[nonempty]]
    maybe = nonempty[np.isin(first, _WHITESPACE)].tolist()  # a record starts with '{' or is bad
    return [i for i in maybe if not records.raw(i).strip()]


def parse_records(
    records: capture.Records,
    max_bytes: int = MAX_EVENT_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> tuple[np.ndarray, pa.Table, list[tuple[int, str]]]:
    """Parse raw records into rows of the parsed schema (wire fields and ``_rescued_data``).

    Returns the indices of the parsed records, their rows (same order) and the rejected
    (index, reason) pairs. Size, emptiness and UTF-8 are checked on the whole buffer; the
    records between those that fail them are parsed as spans, by Arrow's streaming reader.
    Records over ``max_bytes`` are refused before anything parses them, and records nested
    deeper than ``max_depth`` when Python's json reads them.
    """
    n = len(records)
    empty = [*np.flatnonzero(records.ends == records.starts).tolist(), *_blank(records)]
    oversized = np.flatnonzero(records.sizes() > max_bytes).tolist()
    # Later checks win: a record both oversized and not UTF-8 is oversized, as it always was.
    why: dict[int, str] = dict.fromkeys(_invalid_utf8(records), "invalid_utf8")
    why.update(dict.fromkeys(empty, "empty_record"))
    why.update(dict.fromkeys(oversized, "oversized_payload"))
    keep = np.ones(n, bool)
    keep[list(why)] = False
    candidates = np.flatnonzero(keep)
    alone = candidates[~_one_value_each(records, candidates, why)]
    keep[alone] = False
    parsed = _Parsed(pa.py_buffer(records.data), records, max_depth)
    for i in alone.tolist():
        raw = records.raw(i)
        if raw.lstrip().startswith(b"{"):
            parsed.one(i)
        else:  # not an object; and a block that starts with `null` crashes Arrow 25's reader
            why[i] = _classify(raw, max_depth)
    # Spans of consecutive kept records, cut at every record rejected or parsed alone.
    kept = np.flatnonzero(keep)
    cuts = np.flatnonzero(np.diff(kept) != 1) + 1
    for span in np.split(kept, cuts) if len(kept) else []:
        parsed.span(int(span[0]), int(span[-1]) + 1)
    rejected = sorted([*why.items(), *parsed.bad])
    if not parsed.good:
        return np.zeros(0, dtype=np.int64), PARSED_SCHEMA.empty_table(), rejected
    parsed.good.sort(key=lambda g: g[0])
    batches = [b for _, bs in parsed.good for b in bs]
    ids = np.concatenate(
        [np.arange(lo, lo + sum(b.num_rows for b in bs)) for lo, bs in parsed.good]
    )
    rows = pa.Table.from_batches(batches, WIRE_SCHEMA)
    return ids, rows.append_column(RESCUED_COLUMN, _rescued_column(ids, parsed.rescued)), rejected


def _rescued_column(ids: np.ndarray, rescued: dict[int, str]) -> pa.Array:
    """The ``_rescued_data`` of each parsed record (``ids`` sorted): mostly nulls."""
    if not rescued:
        return pa.nulls(len(ids), pa.string())
    values = np.full(len(ids), None, dtype=object)
    keys = np.fromiter(rescued, np.int64, len(rescued))
    at = np.minimum(np.searchsorted(ids, keys), len(ids) - 1)
    hit = ids[at] == keys  # a record refused after its fields were read has no row
    values[at[hit]] = [rescued[int(k)] for k in keys[hit]]
    return pa.array(values, pa.string())


_TS = pa.timestamp("us", tz="UTC")


def _parse_timestamps(values: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """ISO-8601 strings to UTC timestamps; returns the array and a mask of the bad ones.

    Bad: not ISO-8601, or an instant outside years 1-9999 in UTC (``0001-01-01T00:00:00+01:00``,
    ``9999-12-31T23:59:59-14:00``), which neither Python nor Spark can hold.
    """
    try:
        cast = pc.cast(values, _TS)
        ts = cast.combine_chunks() if isinstance(cast, pa.ChunkedArray) else cast
        bounds = pc.min_max(ts)  # one pass; the mask only when something is out of range
        low, high = bounds["min"], bounds["max"]
        if not low.is_valid or (
            low.value >= MIN_EVENT_TS.value and high.value <= MAX_EVENT_TS.value
        ):
            return ts, np.zeros(len(values), bool)
        outside = pc.or_(pc.less(ts, MIN_EVENT_TS), pc.greater(ts, MAX_EVENT_TS))
        bad = pc.fill_null(outside, False).to_numpy(zero_copy_only=False)
        return pc.if_else(bad, pa.scalar(None, _TS), ts), bad
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out: list[dt.datetime | None] = []
    bad = np.zeros(len(values), bool)
    for i, v in enumerate(values.to_pylist()):
        try:
            stamp = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
            # no offset: UTC, as Arrow's cast would need one, and never this machine's zone
            stamp = stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp
            out.append(stamp.astimezone(dt.UTC))
        except (ValueError, AttributeError, OverflowError):
            out.append(None)
            bad[i] = v is not None  # a null is missing_field's to report
    return pa.array(out, type=_TS), bad


def _missing(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Null, or for strings also empty or only whitespace ("", "  ")."""
    if not pa.types.is_string(column.type):
        return column.is_null()
    blank = pc.or_(pc.equal(pc.binary_length(column), 0), pc.utf8_is_space(column))
    return pc.or_kleene(column.is_null(), blank)


# A blank value of these columns always breaks another rule too (no region, currency or time
# is blank), so whether it is blank is only asked of the rows already refused: the full-column
# check would cost about 20 ms per million events for nothing.
_BLANK_BREAKS_ANOTHER_RULE = ("event_ts", "region", "currency")


def validate(
    rows: pa.Table, region: str, landing_date: dt.date, rules: RecordRules | None = None
) -> tuple[pa.Table, np.ndarray]:
    """Every record rule, vectorized: rows with parsed timestamps, and each row's reason.

    The reason is '' for a valid row. A row breaking several rules gets the first one in
    this order: a missing field, a non-finite number, the timestamp, quantity, price,
    currency, store id, region.
    """
    rules = rules or default_rules()
    ts, bad_ts = _parse_timestamps(rows["event_ts"])
    limit = dt.datetime.combine(landing_date, dt.time(0), tzinfo=dt.UTC) + dt.timedelta(
        days=1, hours=rules.future_tolerance_hours
    )
    store = rows["store_id"]
    later = [c for c in rules.required if c in _BLANK_BREAKS_ANOTHER_RULE]
    checks: list[tuple[str, pa.Array | pa.ChunkedArray | np.ndarray]] = [
        *(
            (f"missing_field:{c}", rows[c].is_null() if c in later else _missing(rows[c]))
            for c in rules.required
        ),
        *((f"non_finite_number:{c}", pc.invert(pc.is_finite(rows[c]))) for c in rules.finite),
        ("bad_timestamp", bad_ts),
        ("future_timestamp", pc.greater(ts, pa.scalar(limit, _TS))),
        ("negative_quantity", pc.less(rows["quantity"], rules.quantity_min)),
        ("non_positive_price", pc.less_equal(rows["unit_price"], rules.unit_price_above)),
        ("unknown_currency", pc.invert(pc.is_in(rows["currency"], pa.array(rules.currencies)))),
        (
            "store_id_out_of_range",
            pc.or_(pc.less(store, rules.store_id_min), pc.greater(store, rules.store_id_max)),
        ),
        ("wrong_region", pc.not_equal(rows["region"], region)),
    ]
    broken = np.zeros(rows.num_rows, np.int8)  # 0 = ok, k = checks[k - 1]
    for k in range(len(checks), 0, -1):
        mask = checks[k - 1][1]
        if not isinstance(mask, np.ndarray):
            if not pc.any(mask).as_py():  # the usual case: nothing to convert
                continue
            mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        broken[mask] = k
    refused = np.flatnonzero(broken)
    for c in later if len(refused) else []:
        k = 1 + rules.required.index(c)
        blank = _missing(rows[c].take(refused)).to_numpy(zero_copy_only=False)
        broken[refused[blank]] = np.minimum(broken[refused[blank]], k)
    reason = np.asarray(["", *(why for why, _ in checks)], dtype=object)[broken]
    return rows.set_column(rows.schema.get_field_index("event_ts"), "event_ts", ts), reason


def key_hashes(keys: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A 64-bit hash of each key (polars' string hash: 1M keys in about 30 ms)."""
    return pl.from_arrow(keys).hash(seed=0).to_numpy()  # type: ignore[union-attr]


def _first_occurrence(
    keys: pa.ChunkedArray | pa.Array, hashes: np.ndarray | None = None
) -> np.ndarray:
    """Mask of the first row of each distinct key (input order).

    Rows are first told apart by a 64-bit hash of their key; the few rows whose hash repeats
    (the duplicates, and any hash collision) are then compared by value, so it is exact.
    """
    h = key_hashes(keys) if hashes is None else hashes
    first = np.ones(len(h), bool)
    shared = np.flatnonzero(pd.Series(h, copy=False).duplicated(keep=False).to_numpy())
    if len(shared):
        seen: set[object] = set()
        for i, key in zip(shared.tolist(), keys.take(shared).to_pylist(), strict=True):
            first[i] = key not in seen
            seen.add(key)
    return first


def _without(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table`` less the (sorted) ``rows``, as slices of it: nothing is copied."""
    if not len(rows):
        return table
    bounds = [-1, *rows.tolist(), table.num_rows]
    pieces = [table.slice(a + 1, b - a - 1) for a, b in itertools.pairwise(bounds) if b - a > 1]
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


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
    try:
        records = capture.decode_records(landing, obj.data, capture.MAX_OBJECT_BYTES)
    except capture.CorruptObjectError as exc:
        return exc.reason
    ids, rows, rejected = parse_records(records, rules.max_event_bytes, rules.max_json_depth)
    rows, why = validate(rows, region, landing_date, rules)
    # Records Arrow could not parse and parsed rows that broke a rule, by record position.
    invalid = np.flatnonzero(why != "")
    rejected.extend((int(ids[j]), str(why[j])) for j in invalid)
    rows = _without(rows, invalid)
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
    q_rows: list[dict[str, Any]] = []
    per_object: dict[str, ObjectCounts] = {}
    landed = whole = 0
    for obj, out in zip(ordered, done, strict=True):
        key = _printable(obj.key)
        if isinstance(out, str):
            whole += 1
            per_object[key] = ObjectCounts(1, 0, 1, 0, out)
            q_rows.append(
                {"source_object": key, "record_index": -1, "reason": out, "raw": _raw(obj.data)}
            )
            continue
        names.append(key)
        tables.append(out.rows)
        hashes.append(out.hashes)
        landed += len(out.records)
        per_object[key] = ObjectCounts(len(out.records), 0, len(out.rejected))
        q_rows.extend(
            {
                "source_object": key,
                "record_index": i,
                "reason": why,
                "raw": _raw(out.records.raw(i)),
            }
            for i, why in out.rejected
        )
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
        quarantine=_quarantine(q_rows, region, landing_date),
        landed=landed + whole,
        duplicates=duplicates,
        objects=len(names) + whole,
        corrupt_objects=whole,
        reasons=dict(Counter(_reason_key(r["reason"]) for r in q_rows)),
        rescued_fields=_rescued_fields(bronze[RESCUED_COLUMN]),
        per_object=per_object,
        hashes=kept_hashes,
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
    first = _first_occurrence(keys, h)
    if seen is not None:
        first &= ~seen.already(keys, h)
    ends = np.cumsum([t.num_rows for t in tables])
    masks = np.split(first, ends[:-1]) if tables else []
    dropped = [int((~keep).sum()) for keep in masks]
    if sum(dropped):
        tables = [_without(t, np.flatnonzero(~keep)) for t, keep in zip(tables, masks, strict=True)]
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
    storage: Storage, rewritten: list[tuple[ObjectInfo, ledger.ObjectEntry]]
) -> list[tuple[str, str, bytes]]:
    """(key, reason, head) of each object rewritten in place since it was ingested."""
    out = []
    for info, entry in rewritten:
        reason = (
            f"{REWRITTEN}: etag {entry.etag} size {entry.size} ingested in batch {entry.batch}, "
            f"now etag {info.etag} size {info.size}; `lakehouse ingest --full` re-ingests it"
        )
        out.append((_printable(info.path), reason, _raw(_fetch(storage, info).data)))
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
    each batch recorded in the ledger (:mod:`pipelines.ledger`) and appended to bronze and
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
    done = PartitionIngest(total, t.bronze, t.quarantine, -1, -1, t.ledger, finished)
    replace = full
    while True:
        if plan:  # a full re-ingest's batches, the first one replacing the partition
            known = set() if replace else state.identities()
            todo = _Todo(
                [i for i in plan[0] if (_printable(i.path), i.etag, i.size) not in known], []
            )
            if not todo.infos and not replace:
                plan.pop(0)
                continue
        elif replace:  # a full re-ingest of a partition with no objects: empty it
            todo = _Todo([], [])
        else:
            todo = _next_batch(state, infos, limits, shard)
            if not todo.infos and not todo.rewritten:
                break
        todo.replace = replace
        committed = _one_batch(storage, location, t, part, state, todo, rules)
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
) -> tuple[IngestResult, int, tuple[int, int]] | None:
    """Ingest, stage, claim and commit one batch; None when another writer claimed it first."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        objects = list(pool.map(lambda info: _fetch(storage, info), todo.infos))
    seen = None
    if not todo.replace and state.batches:  # read now: a later batch of another writer only adds
        seen = Seen(ledger.read_hashes(t.ledger, t.options, part), _lookup(t, part))
    day = dt.date.fromisoformat(str(part["landing_date"]))
    result = ingest_objects(objects, location.landing, location.region, day, rules, seen)
    del objects
    result = _add_whole(result, _rewritten_rows(storage, todo.rewritten))
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
