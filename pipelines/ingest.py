"""Ingestion: one (landing date, region) partition of landing objects into bronze Delta.

Nothing is lost and nothing is counted twice: every landed record ends up either in bronze,
in the quarantine table with its raw bytes, source object and reason, or is counted as a
duplicate event id, so that ``landed = ingested + quarantined + duplicates``. An object that
cannot be decoded at all is quarantined whole, as one record.

Parsing is Arrow's JSON reader over chunks of records; a chunk that fails is split in halves
until the bad records stand alone and are classified one by one, so a few bad records cost
little and never fail the partition.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from pipelines import capture, delta
from pipelines.config import LakeLocation, LandingConfig
from pipelines.events import (
    BRONZE_PARTITION_BY,
    BRONZE_SCHEMA,
    FUTURE_TOLERANCE_HOURS,
    MAX_EVENT_BYTES,
    QUARANTINE_SCHEMA,
    REQUIRED,
    WIRE_SCHEMA,
    wrong_type_field,
)
from pipelines.storage import Storage, open_storage

CHUNK_RECORDS = 2048
BRONZE_TABLE = "bronze_events"
QUARANTINE_TABLE = "bronze_quarantine"
_PARSE = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="ignore")
_READ = pj.ReadOptions(use_threads=False, block_size=8 << 20)


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
    corrupt_objects: int
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def ingested(self) -> int:
        """Rows written to bronze."""
        return self.bronze.num_rows

    @property
    def quarantined(self) -> int:
        """Records (and whole corrupt objects) written to quarantine."""
        return self.quarantine.num_rows

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
        }


def _classify(raw: bytes) -> str:
    """Why Arrow could not parse one record."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return "malformed_json"
    if not isinstance(obj, dict):
        return "malformed_json: not an object"
    bad = wrong_type_field(obj)
    return f"wrong_type:{bad}" if bad else "unparseable"


def _try_parse(records: Sequence[bytes]) -> pa.Table | None:
    try:
        table = pj.read_json(
            io.BytesIO(b"\n".join(records)), read_options=_READ, parse_options=_PARSE
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(records) else None


def _parse_chunk(
    records: Sequence[bytes], ids: np.ndarray
) -> tuple[list[tuple[np.ndarray, pa.Table]], list[tuple[int, str]]]:
    """Parse records; split failing ranges in halves until bad records stand alone."""
    good: list[tuple[np.ndarray, pa.Table]] = []
    bad: list[tuple[int, str]] = []
    stack = [(0, len(records))]
    while stack:
        lo, hi = stack.pop()
        table = _try_parse(records[lo:hi])
        if table is not None:
            good.append((ids[lo:hi], table))
        elif hi - lo == 1:
            bad.append((int(ids[lo]), _classify(records[lo])))
        else:
            mid = (lo + hi) // 2
            stack.extend([(mid, hi), (lo, mid)])
    return good, bad


def parse_records(records: Sequence[bytes]) -> tuple[np.ndarray, pa.Table, list[tuple[int, str]]]:
    """Parse raw records into wire-schema rows.

    Returns the indices of the parsed records, their rows (same order) and the rejected
    (index, reason) pairs.
    """
    rejected: list[tuple[int, str]] = []
    keep: list[int] = []
    try:
        b"\n".join(records).decode("utf-8")
        utf8_ok = True
    except UnicodeDecodeError:
        utf8_ok = False
    for i, rec in enumerate(records):
        if len(rec) > MAX_EVENT_BYTES:
            rejected.append((i, "oversized_payload"))
        elif not rec.strip():
            rejected.append((i, "empty_record"))
        elif not utf8_ok and not _is_utf8(rec):
            rejected.append((i, "invalid_utf8"))
        else:
            keep.append(i)
    ids = np.asarray(keep, dtype=np.int64)
    # An Avro body may hold pretty-printed JSON; one line per record is what Arrow reads.
    kept = [records[i] if b"\n" not in records[i] else _compact(records[i]) for i in keep]
    spans = [(lo, min(lo + CHUNK_RECORDS, len(kept))) for lo in range(0, len(kept), CHUNK_RECORDS)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda s: _parse_chunk(kept[s[0] : s[1]], ids[s[0] : s[1]]), spans))
    parts: list[tuple[np.ndarray, pa.Table]] = []
    for good, bad in results:
        parts.extend(good)
        rejected.extend(bad)
    if not parts:
        return np.zeros(0, dtype=np.int64), WIRE_SCHEMA.empty_table(), rejected
    parts.sort(key=lambda p: int(p[0][0]))
    return np.concatenate([p[0] for p in parts]), pa.concat_tables([p[1] for p in parts]), rejected


def _compact(rec: bytes) -> bytes:
    try:
        return json.dumps(json.loads(rec), separators=(",", ":")).encode()
    except ValueError:
        return rec.replace(b"\n", b" ")  # still malformed: classified when parsing fails


def _is_utf8(rec: bytes) -> bool:
    try:
        rec.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse_timestamps(values: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """ISO-8601 strings to UTC timestamps; returns the array and a mask of unparseable ones."""
    target = pa.timestamp("us", tz="UTC")
    try:
        ts = pc.cast(values, target)
        return ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts, np.zeros(
            len(values), bool
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out: list[dt.datetime | None] = []
    bad = np.zeros(len(values), bool)
    for i, v in enumerate(values.to_pylist()):
        try:
            out.append(
                dt.datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(dt.UTC)
                if v
                else None
            )
        except (ValueError, AttributeError):
            out.append(None)
            bad[i] = v is not None
    return pa.array(out, type=target), bad


def validate(rows: pa.Table, region: str, landing_date: dt.date) -> tuple[pa.Table, np.ndarray]:
    """Vectorized rules; returns rows with parsed timestamps and the reason per row ('' = ok)."""
    n = rows.num_rows
    reason = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, why: str) -> None:
        reason[(reason == "") & mask] = why

    for col in REQUIRED:
        flag(rows[col].is_null().to_numpy(zero_copy_only=False), f"missing_field:{col}")
    ts, bad_ts = _parse_timestamps(rows["event_ts"])
    flag(bad_ts, "bad_timestamp")
    limit = dt.datetime.combine(landing_date, dt.time(0), tzinfo=dt.UTC) + dt.timedelta(
        days=1, hours=FUTURE_TOLERANCE_HOURS
    )
    flag(
        pc.fill_null(
            pc.greater(ts, pa.scalar(limit, pa.timestamp("us", tz="UTC"))), False
        ).to_numpy(zero_copy_only=False),
        "future_timestamp",
    )
    flag(
        pc.fill_null(pc.less(rows["quantity"], 0), False).to_numpy(zero_copy_only=False),
        "negative_quantity",
    )
    flag(
        pc.fill_null(pc.less_equal(rows["unit_price"], 0), False).to_numpy(zero_copy_only=False),
        "non_positive_price",
    )
    flag(
        pc.fill_null(pc.not_equal(rows["region"], region), False).to_numpy(zero_copy_only=False),
        "wrong_region",
    )
    return rows.set_column(rows.schema.get_field_index("event_ts"), "event_ts", ts), reason


def _first_occurrence(keys: pa.Array) -> np.ndarray:
    """Mask of the first row of each distinct key (input order)."""
    idx = pa.table({"k": keys, "i": pa.array(np.arange(len(keys)))})
    first = idx.group_by("k", use_threads=False).aggregate([("i", "min")])["i_min"].to_numpy()
    mask = np.zeros(len(keys), bool)
    mask[first] = True
    return mask


def ingest_objects(
    objects: Iterable[tuple[str, bytes]],
    landing: LandingConfig,
    region: str,
    landing_date: dt.date,
) -> IngestResult:
    """Decode, validate and de-duplicate landing objects of one partition."""
    records: list[bytes] = []
    source_idx: list[int] = []
    record_idx: list[int] = []
    names: list[str] = []
    q_rows: list[dict[str, Any]] = []
    corrupt = 0
    ordered = sorted(objects, key=lambda o: o[0])

    def decode(data: bytes) -> list[bytes] | capture.CorruptObjectError:
        try:
            return capture.decode(landing, data)
        except capture.CorruptObjectError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=2) as pool:  # zlib and fastavro release the GIL
        decoded = list(pool.map(decode, (data for _, data in ordered)))
    for (key, data), recs in zip(ordered, decoded, strict=True):
        if isinstance(recs, capture.CorruptObjectError):
            corrupt += 1
            q_rows.append(
                {
                    "source_object": key,
                    "record_index": -1,
                    "reason": f"corrupt_object: {recs}",
                    "raw": data,
                }
            )
            continue
        names.append(key)
        records.extend(recs)
        source_idx.extend([len(names) - 1] * len(recs))
        record_idx.extend(range(len(recs)))
    src = np.asarray(source_idx, dtype=np.int64)
    rec = np.asarray(record_idx, dtype=np.int64)

    ids, rows, rejected = parse_records(records)
    rows, why = validate(rows, region, landing_date)
    # Records Arrow could not parse and parsed rows that broke a rule, by record position.
    invalid = np.nonzero(why != "")[0]
    bad = [*rejected, *((int(ids[j]), str(why[j])) for j in invalid)]
    for i, reason in bad:
        q_rows.append(
            {
                "source_object": names[src[i]],
                "record_index": int(rec[i]),
                "reason": reason,
                "raw": records[i],
            }
        )
    valid = why == ""
    rows, ids = rows.filter(pa.array(valid)), ids[valid]
    first = _first_occurrence(rows["event_id"]) if rows.num_rows else np.zeros(0, bool)
    duplicates = int((~first).sum())
    rows, ids = rows.filter(pa.array(first)), ids[first]

    name_arr = pa.array(names, pa.string())
    bronze = (
        rows.append_column("source_object", pc.take(name_arr, pa.array(src[ids])))
        if rows.num_rows
        else rows.append_column("source_object", pa.array([], pa.string()))
    )
    bronze = bronze.append_column(
        "landing_date", pa.array([landing_date] * bronze.num_rows, pa.date32())
    )
    bronze = bronze.select(BRONZE_SCHEMA.names).cast(BRONZE_SCHEMA)

    q_rows.sort(key=lambda r: (r["source_object"], r["record_index"]))
    quarantine = pa.Table.from_pylist(
        [{"landing_date": landing_date, "region": region, **r} for r in q_rows],
        schema=QUARANTINE_SCHEMA,
    )
    reasons = Counter(
        r["reason"].split(":")[0] if r["reason"].startswith("corrupt_object") else r["reason"]
        for r in q_rows
    )
    return IngestResult(
        landing_date=landing_date,
        region=region,
        bronze=bronze,
        quarantine=quarantine,
        landed=len(records) + corrupt,
        duplicates=duplicates,
        objects=len(names) + corrupt,
        corrupt_objects=corrupt,
        reasons=dict(reasons),
    )


def landing_objects(storage: Storage, landing: LandingConfig, landing_date: dt.date) -> list[str]:
    """Keys of the objects that landed on a date (only that date's prefixes are listed)."""
    return [
        info.path
        for prefix in capture.date_prefixes(landing, landing_date)
        for info in storage.list(prefix)
    ]


def read_partition_objects(
    storage: Storage, landing: LandingConfig, landing_date: dt.date
) -> list[tuple[str, bytes]]:
    """The landing objects of one date, read concurrently."""
    keys = landing_objects(storage, landing, landing_date)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(zip(keys, pool.map(storage.get, keys), strict=True))


@dataclass
class PartitionIngest:
    """An ingested partition and the table versions it produced."""

    result: IngestResult
    bronze_uri: str
    quarantine_uri: str
    bronze_version: int
    quarantine_version: int

    def report(self) -> dict[str, Any]:
        """The reconciliation plus where the rows went."""
        return {
            **self.result.report(),
            "bronze_table": self.bronze_uri,
            "bronze_version": self.bronze_version,
            "quarantine_table": self.quarantine_uri,
            "quarantine_version": self.quarantine_version,
        }


def ingest_partition(
    location: LakeLocation, options: dict[str, str], landing_date: dt.date
) -> PartitionIngest:
    """Ingest one landing date of a location into its bronze and quarantine Delta tables.

    Replaces exactly the (landing_date, region) partition in both tables, so re-running it,
    or running it twice at once, leaves the same rows.
    """
    storage = open_storage(location.root_uri(), options)
    objects = read_partition_objects(storage, location.landing, landing_date)
    result = ingest_objects(objects, location.landing, location.region, landing_date)
    part = {"landing_date": landing_date, "region": location.region}
    bronze_uri, quarantine_uri = (
        location.table_uri(BRONZE_TABLE),
        location.table_uri(QUARANTINE_TABLE),
    )
    v_bronze = delta.write_partition(
        bronze_uri, result.bronze, part, options, partition_by=BRONZE_PARTITION_BY
    )
    v_quarantine = delta.write_partition(
        quarantine_uri, result.quarantine, part, options, partition_by=BRONZE_PARTITION_BY
    )
    return PartitionIngest(result, bronze_uri, quarantine_uri, v_bronze, v_quarantine)
