"""Landing objects rewritten without a subject's records, and the ingest ledger told.

A landing object holding a subject's record is rewritten in place in its capture format
(Firehose gzip NDJSON, Pub/Sub NDJSON, Event Hubs Capture and Pub/Sub Avro with their schema and
codec kept), the other records unchanged and in order; an object left without records stays as an
empty object of its format (a full re-ingest of its partition refuses a partition whose ingested
objects are gone). One that cannot be decoded is replaced by an empty object of its format when
its raw bytes hold the subject as a token, and its ledger rows moved like a rewritten one's (the
rows deleted of it, its whole-object quarantine row, leave its counts): the partition reconciles.

The ledger keys an ingested object by (key, etag, size) (:mod:`pipelines.ingest.ledger`): a
rewritten object would be taken for one rewritten by its producer and quarantined whole
(``object_rewritten``). Its ``object`` rows are therefore updated in the same request to the new
etag and size, and their counts lowered by the records removed (ingested, quarantined, or
duplicates), so the next run skips it and every object still reconciles.

An ingest running meanwhile must not take the object's old bytes while the erasure rewrites it
(both would win: the subject back in bronze, or the object quarantined as rewritten). Before
any table is touched, the objects holding a subject are found (:func:`find_landing`) and fenced
in the ledger (:func:`fence_landing`: a batch of their partition claimed, which an ingest
planning the same batch loses, and rows no ingest takes an object past); the erasure then
deletes the rows, rewrites each object only if its etag is still the one it read, moves its
ledger rows, and lifts the fence (:func:`release_landing`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import fastavro

from pipelines.ingest import capture, ledger
from pipelines.ingest.landing import listed_now
from pipelines.ingest.partition import fence_objects
from pipelines.lake import delta
from pipelines.lake.config import LakeLocation
from pipelines.lake.storage import ObjectInfo, Storage
from pipelines.privacy.erase import Subject

AVRO_BODY = {"eventhubs_capture": "Body", "pubsub_avro": "data"}
# the tables an object's records were counted into (``removed_from``'s keys)
TABLES_OF_RECORDS = ("bronze", "quarantine")


@dataclass
class LandingErasure:
    """What erasing subjects from one location's landing area did."""

    objects_scanned: int = 0
    bytes_scanned: int = 0
    rewritten: list[dict[str, object]] = field(default_factory=list)
    deleted: list[dict[str, object]] = field(default_factory=list)
    ledger_rows_updated: int = 0
    bytes_rewritten: int = 0
    # the ledger's files its updates rewrote (the erasure's cost too, beside the objects')
    ledger_files_rewritten: int = 0
    ledger_bytes_rewritten: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (keys, sizes, counts; never a record)."""
        return asdict(self)


def _pattern(subject: Subject) -> re.Pattern[bytes]:
    """Any identifier as a token (the quarantine's rule, :meth:`Subject.token_pattern`)."""
    pattern = subject.matcher()
    if pattern is None:
        raise ValueError("an erasure names at least one identifier")
    return pattern


def _empty(location: LakeLocation) -> bytes:
    """An object of the location's capture format holding no record."""
    window = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return capture.encode(location.landing, capture.Batch(window, []), 0)


def _rewrite(fmt: str, data: bytes, holds: re.Pattern[bytes]) -> tuple[bytes, int] | None:
    """The object without the records ``holds`` matches and how many went; None if none did."""
    if fmt in ("firehose", "pubsub_text"):
        text = gzip.decompress(data) if fmt == "firehose" else data
        lines = text.split(b"\n")
        kept = [line for line in lines if not holds.search(line)]
        if len(kept) == len(lines):
            return None
        body = b"\n".join(kept)
        return (gzip.compress(body, compresslevel=6) if fmt == "firehose" else body), len(
            lines
        ) - len(kept)
    body_field = AVRO_BODY[fmt]
    reader = fastavro.reader(io.BytesIO(data))
    schema = reader.writer_schema
    codec = reader.codec
    rows = [r for r in reader if isinstance(r, dict)]
    kept_rows = [r for r in rows if not holds.search(bytes(r.get(body_field) or b""))]
    if len(kept_rows) == len(rows):
        return None
    out = io.BytesIO()
    fastavro.writer(out, schema, kept_rows, codec=codec)
    return out.getvalue(), len(rows) - len(kept_rows)


def _landing_date(location: LakeLocation, key: str) -> object | None:
    try:
        return capture.landing_date_of(location.landing, key)
    except ValueError:
        return None


@dataclass
class Found:
    """The landing objects holding a subject, as first read (etag and size)."""

    objects: list[ObjectInfo] = field(default_factory=list)
    scanned: int = 0
    bytes_scanned: int = 0
    fences: dict[object, int] = field(default_factory=dict)  # landing date -> fence batch

    def by_day(self, location: LakeLocation) -> dict[object, list[str]]:
        """Their keys per landing date (objects outside any date's folder aside)."""
        out: dict[object, list[str]] = {}
        for info in self.objects:
            day = _landing_date(location, info.path)
            if day is not None:
                out.setdefault(day, []).append(info.path)
        return out


def _holds_subject(fmt: str, data: bytes, holds: re.Pattern[bytes]) -> bool:
    try:
        return _rewrite(fmt, data, holds) is not None
    except Exception:  # undecodable: its raw bytes are what it holds, matched as tokens too
        return holds.search(data) is not None


def find_landing(location: LakeLocation, storage: Storage, subject: Subject) -> Found:
    """Every landing object of ``location`` holding the subject (read only)."""
    out = Found()
    holds = _pattern(subject)
    for info in list(storage.list(location.landing.prefix.strip("/") + "/")):
        data = storage.get(info.path)
        out.scanned += 1
        out.bytes_scanned += info.size
        if _holds_subject(location.landing.format, data, holds):
            out.objects.append(info)
    return out


def fence_landing(location: LakeLocation, options: dict[str, str], found: Found) -> int:
    """Fence the found objects in the ledger of each partition (no ingest takes them); fences."""
    days = found.by_day(location)
    for day, keys in days.items():
        found.fences[day] = fence_objects(location, options, day, keys)  # type: ignore[arg-type]
    return len(days)


def release_landing(location: LakeLocation, options: Mapping[str, str], found: Found) -> None:
    """Lift the fences once every found object is rewritten and its ledger rows moved."""
    uri = location.table_uri(ledger.LEDGER_TABLE)
    for day, keys in found.by_day(location).items():
        if day in found.fences:
            part = {"landing_date": day, "region": location.region}
            ledger.release(uri, options, part, found.fences[day], keys)


def erase_landing(
    location: LakeLocation,
    storage: Storage,
    options: Mapping[str, str],
    subject: Subject,
    removed_from: Mapping[str, Mapping[str, int]],
    found: Found | None = None,
) -> LandingErasure:
    """Rewrite every landing object of ``location`` holding the subject; update the ledger.

    ``removed_from`` maps ``bronze`` and ``quarantine`` to the rows the erasure deleted per
    source object, which says how the removed records were counted when ingested. ``found``:
    the objects :func:`find_landing` read (and :func:`fence_landing` fenced); each is read
    again and rewritten only if its listing (etag, size) did not change between that read and
    the write (else :class:`LandingChangedError`). None: the landing area is scanned here.
    """
    found = found or find_landing(location, storage, subject)
    report = LandingErasure(found.scanned, found.bytes_scanned)
    holds = _pattern(subject)
    fmt = location.landing.format
    ledger_uri = location.table_uri(ledger.LEDGER_TABLE)
    # a day's objects rewritten, then their ledger rows moved in one UPDATE (one rewrite of the
    # day's ledger files, not one per object); also when an object stops the pass
    moved: dict[object, list[Moved]] = {}

    def flush(day: object) -> None:
        report.ledger_rows_updated += _update_ledger(
            ledger_uri, options, location, day, moved.pop(day, []), removed_from
        )

    try:
        for first in sorted(
            found.objects, key=lambda i: (str(_landing_date(location, i.path)), i.path)
        ):
            day = _landing_date(location, first.path)
            for done_day in [d for d in moved if d != day]:
                flush(done_day)
            info = listed_now(storage, first.path)
            if info is None:
                continue  # gone since: nothing left to erase
            data = storage.get(info.path)
            corrupt = False
            try:
                done = _rewrite(fmt, data, holds)
            except Exception:  # undecodable: nothing to keep, if its raw bytes hold the subject
                if holds.search(data) is None:
                    continue
                # emptied, not deleted: the ledger keeps the object (a full re-ingest reads it
                # again) and counts it as the tables now hold it: the rows the erasure deleted
                # of it (its whole-object quarantine row) leave its counts
                gone = sum(removed_from.get(t, {}).get(info.path, 0) for t in TABLES_OF_RECORDS)
                done, corrupt = (_empty(location), gone), True
            if done is None:
                continue
            new, records = done
            if listed_now(storage, info.path) != info:  # changed while read: the next pass takes it
                raise LandingChangedError(f"landing object {info.path} changed while being erased")
            storage.put(info.path, new)
            # the etag as a listing gives it (a HEAD may quote it): what the ingest compares
            now = listed_now(storage, info.path)
            etag, size = (now.etag, now.size) if now is not None else (None, len(new))
            entry = {"key": info.path, "bytes_before": info.size, "bytes_after": size}
            if corrupt:  # its bytes are gone: an empty object of the format holds its key
                report.deleted.append({"key": info.path, "bytes": info.size, "bytes_after": size})
            else:
                report.rewritten.append({**entry, "records": records})
            report.bytes_rewritten += size
            moved.setdefault(day, []).append(Moved(info.path, etag, size, records))
    finally:
        for day in list(moved):
            flush(day)
    return report


@dataclass(frozen=True)
class Moved:
    """A rewritten landing object: its new identity and the records that left it."""

    key: str
    etag: str | None
    size: int
    records: int


class LandingChangedError(RuntimeError):
    """A landing object changed between the erasure's read and its rewrite (serve again)."""


def _update_ledger(
    uri: str,
    options: Mapping[str, str],
    location: LakeLocation,
    day: object,
    moved: list[Moved],
    removed_from: Mapping[str, Mapping[str, int]],
) -> int:
    """One day's ``moved`` objects: their ledger rows to the new identity and counts; rows.

    One UPDATE for the day: the day's ledger files are rewritten once, not once an object.
    """
    table = delta.open_table(uri, options) if moved else None
    if table is None:
        return 0
    before = table.version()
    lit = delta.sql_literal
    keys = ", ".join(lit(m.key) for m in moved)
    where = f"kind = 'object' AND source_object IN ({keys})"
    if day is not None:  # the partition's files only
        part = {"landing_date": day, "region": location.region}
        where = f"{delta.partition_predicate(part)} AND {where}"

    def less(column: str, n: int) -> str:
        # a finished batch may have been recorded twice, once with no records: never below 0
        return f"CASE WHEN {column} >= {n} THEN {column} - {n} ELSE 0 END"

    def each(column: str, value: Callable[[Moved], str]) -> str:
        whens = " ".join(f"WHEN source_object = {lit(m.key)} THEN {value(m)}" for m in moved)
        return f"CASE {whens} ELSE {column} END"

    def counts(m: Moved) -> dict[str, int]:
        ingested = removed_from.get("bronze", {}).get(m.key, 0)
        quarantined = removed_from.get("quarantine", {}).get(m.key, 0)
        duplicates = max(m.records - ingested - quarantined, 0)
        return {
            "records": m.records,
            "ingested": ingested,
            "quarantined": quarantined,
            "duplicates": duplicates,
        }

    updates = {
        "etag": each("etag", lambda m: lit(m.etag) if m.etag is not None else "NULL"),
        "size": each("size", lambda m: str(m.size)),
    }

    def lowered(column: str) -> Callable[[Moved], str]:
        return lambda m: less(column, counts(m)[column])

    for column in ("records", "ingested", "quarantined", "duplicates"):
        updates[column] = each(column, lowered(column))
    metrics = table.update(updates=updates, predicate=where)
    delta.settle_native_writes(uri, options, before)
    return int(metrics.get("num_updated_rows", 0) or 0)
