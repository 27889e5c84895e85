"""Parsing and validation of one object's records: what becomes a row, and why a record is refused.

Records stay in one buffer per object: size, emptiness and UTF-8 are checked on it with numpy
and one decode of its non-ASCII parts. The records between those that fail are parsed as spans
by Arrow's streaming JSON reader, which keeps the blocks before a failing one; the row its error
names is tried alone, so a bad record costs about one block's re-parse and never fails the
partition. Records that are not one ``{...}`` are parsed alone, so that Arrow can never read a
line as two rows and shift the rest. Fields outside the event schema are kept in
``_rescued_data``. Every rule of :class:`RecordRules` is applied by :func:`validate` with Arrow
kernels. An object with more than :data:`MAX_REJECTED_RECORDS` records to refuse raises
:class:`TooManyRejectedError` (its caller quarantines it whole).
"""

from __future__ import annotations

import codecs
import datetime as dt
import itertools
import json
import re
from collections import Counter
from collections.abc import Collection

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipelines.ingest import capture
from pipelines.ingest.events import (
    MAX_EVENT_BYTES,
    MAX_EVENT_TS,
    MAX_JSON_DEPTH,
    MIN_EVENT_TS,
    PARSED_SCHEMA,
    RESCUED_COLUMN,
    WIRE_SCHEMA,
    RecordRules,
    nesting_depth,
    non_finite_field,
    out_of_range_field,
    record_rules,
    wrong_type_field,
)
from pipelines.lake.config import load_config

# Arrow reads about this much per block; a block costs ~0.1 ms on its own, so smaller
# blocks cost more on clean data than they save around a bad record.
STREAM_BLOCK_BYTES = 256 * 1024
# The stream is read strictly: a record with a field outside the schema stops it, so that the
# few records holding one are found (and their fields rescued) without looking at the others.
_STRICT = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="error")
_PARSE = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="ignore")
_UNEXPECTED = "unexpected field"
_WIRE_NAMES = frozenset(WIRE_SCHEMA.names)
_ERROR_ROW = re.compile(r" in row (\d+)$")
_UTF8_WINDOW = 1 << 16
# Records not one '{...}' whose '}' are counted one by one at most; past this numpy counts
# every '}' of the object at once (cheaper than a Python call per record).
_FEW_OTHERS = 4096
_WHITESPACE = np.frombuffer(b" \t\r\x0b\x0c", np.uint8)  # what bytes.strip() removes, but \n
# Records of one object refused one by one at most; past this the object is quarantined whole
# (TOO_MANY_REJECTED), its landed copy kept for a look. A real object holds at most about 1.3M
# events (Firehose's 128 MiB); one with more than 100,000 refused is a broken producer or not
# this feed at all, and refusing its records one by one (a Python call, a quarantine row and
# often a block's re-parse each) would cost minutes and gigabytes for millions of them.
MAX_REJECTED_RECORDS = 100_000
TOO_MANY_REJECTED = "too_many_rejected_records"


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


class TooManyRejectedError(ValueError):
    """An object with more refused records than :data:`MAX_REJECTED_RECORDS`."""


class _Parsed:
    """What parsing one object's records gave: row batches by first record, rejected records.

    ``rescued`` maps a record to the JSON of its fields outside the schema.
    """

    def __init__(
        self, buf: pa.Buffer, records: capture.Records, max_depth: int, most_bad: int
    ) -> None:
        self.buf, self.records, self.max_depth = buf, records, max_depth
        self.good: list[tuple[int, list[pa.RecordBatch]]] = []
        self.bad: list[tuple[int, str]] = []
        self.rescued: dict[int, str] = {}
        self.most_bad = most_bad

    def reject(self, i: int, why: str) -> None:
        """Refuse record ``i``; past ``most_bad`` refused, give up on the object.

        Raises:
            TooManyRejectedError: more records refused than ``most_bad``.
        """
        self.bad.append((i, why))
        if len(self.bad) > self.most_bad:
            raise TooManyRejectedError(TOO_MANY_REJECTED)

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
            self.reject(i, _classify(self.records.raw(i), self.max_depth))
            return
        if extra:
            rescued, why = _rescue(self.records.raw(i), self.max_depth)
            if why is not None:
                self.reject(i, why)
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
            self.reject(at + row, _classify(self.records.raw(at + row), self.max_depth))
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
                self.reject(i, why)
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
    records: capture.Records, candidates: np.ndarray, rejected: Collection[int]
) -> np.ndarray:
    """Mask over ``candidates``: records that are one JSON value for Arrow, or a parse error.

    Arrow reads every JSON value of a line as a row, so ``{..}{..}`` would give two rows and
    shift all after it. A record that starts with '{', ends with '}' and holds no other '}' is
    one object or a parse error. The '}' are counted over the whole buffer (less those of the
    records not asked about); only when that count is off (nested objects, braces in strings)
    are they counted per record, and also when there are many records not asked about.
    """
    raw = np.frombuffer(records.data, np.uint8)
    first, last = raw[records.starts[candidates]], raw[records.ends[candidates] - 1]
    ok = (first == ord("{")) & (last == ord("}"))
    if len(rejected) + int((~ok).sum()) <= _FEW_OTHERS:
        others = [*rejected, *candidates[~ok].tolist()]
        braces = records.data.count(b"}") - sum(records.raw(i).count(b"}") for i in others)
        if braces == int(ok.sum()):  # each has at least its last byte: so exactly one
            return ok
    where = np.flatnonzero(raw == ord("}"))
    owner = np.searchsorted(records.starts, where, side="right") - 1
    per_record = np.bincount(owner, minlength=len(records))
    return ok & (per_record[candidates] == 1)


def _invalid_utf8(records: capture.Records, most: int | None = None) -> list[int]:
    """Records that are not valid UTF-8 (only the first ``most`` + 1 when ``most`` is given).

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
                if most is not None and len(bad) > most:
                    return bad
    return bad


def _blank(records: capture.Records) -> list[int]:
    """Non-empty records of only whitespace (Arrow would skip them and shift every row after)."""
    nonempty = np.flatnonzero(records.ends > records.starts)
    first = np.frombuffer(records.data, np.uint8)[records.starts[nonempty]]
    maybe = nonempty[np.isin(first, _WHITESPACE)].tolist()  # a record starts with '{' or is bad
    return [i for i in maybe if not records.raw(i).strip()]


def smallest_event_bytes(rules: RecordRules) -> int:
    """Fewest bytes a record holding every required field can take: ``{"name":v,...}``.

    Each value is counted as one byte and names unescaped, so a shorter record is sure to miss
    a required field (and be refused), whatever else it holds.
    """
    names = [len(name.encode()) + 3 for name in rules.required]  # quotes and the colon
    return 2 + sum(n + 1 for n in names) + max(len(names) - 1, 0)


def parse_records(
    records: capture.Records,
    max_bytes: int = MAX_EVENT_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    most_rejected: int | None = None,
    min_bytes: int = 0,
) -> tuple[np.ndarray, pa.Table, list[tuple[int, str]]]:
    """Parse raw records into rows of the parsed schema (wire fields and ``_rescued_data``).

    Returns the indices of the parsed records, their rows (same order) and the rejected
    (index, reason) pairs. Size, emptiness and UTF-8 are checked on the whole buffer; the
    records between those that fail them are parsed as spans, by Arrow's streaming reader.
    Records over ``max_bytes`` are refused before anything parses them, and records nested
    deeper than ``max_depth`` when Python's json reads them.

    Raises:
        TooManyRejectedError: more than ``most_rejected`` records (default
            :data:`MAX_REJECTED_RECORDS`) are refused. Those the whole-buffer checks refuse,
            those that start with neither '{' nor whitespace and those under ``min_bytes``
            (too short to hold every required field) are counted before any record is looked
            at alone or parsed; the others as they are refused.
    """
    n = len(records)
    most = MAX_REJECTED_RECORDS if most_rejected is None else most_rejected
    empty = np.concatenate(
        [np.flatnonzero(records.ends == records.starts), np.asarray(_blank(records), np.int64)]
    )
    oversized = np.flatnonzero(records.sizes() > max_bytes)
    invalid = _invalid_utf8(records, most)
    keep = np.ones(n, bool)
    keep[empty] = keep[oversized] = keep[invalid] = False
    candidates = np.flatnonzero(keep)
    first = np.frombuffer(records.data, np.uint8)[records.starts[candidates]]
    not_objects = np.count_nonzero(
        ((first != ord("{")) & capture.NOT_SPACE[first])
        | (records.ends[candidates] - records.starts[candidates] < min_bytes)
    )
    if n - len(candidates) + not_objects > most:
        raise TooManyRejectedError(TOO_MANY_REJECTED)
    # Later checks win: a record both oversized and not UTF-8 is oversized, as it always was.
    why: dict[int, str] = dict.fromkeys(invalid, "invalid_utf8")
    why.update(dict.fromkeys(empty.tolist(), "empty_record"))
    why.update(dict.fromkeys(oversized.tolist(), "oversized_payload"))
    alone = candidates[~_one_value_each(records, candidates, why)]
    keep[alone] = False
    parsed = _Parsed(pa.py_buffer(records.data), records, max_depth, most - len(why))
    for i in map(int, alone):  # not .tolist(): there may be millions, and few get looked at
        raw = records.raw(i)
        if raw.lstrip().startswith(b"{"):
            parsed.one(i)
        else:  # not an object; and a block that starts with `null` crashes Arrow 25's reader
            parsed.reject(i, _classify(raw, max_depth))
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


def first_occurrence(
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


def without_rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table`` less the (sorted) ``rows``, as slices of it: nothing is copied."""
    if not len(rows):
        return table
    bounds = [-1, *rows.tolist(), table.num_rows]
    pieces = [table.slice(a + 1, b - a - 1) for a, b in itertools.pairwise(bounds) if b - a > 1]
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


def default_rules() -> RecordRules:
    """The record rules of the configuration in use (``lakehouse.yaml`` ``regions:``)."""
    return record_rules(load_config())
