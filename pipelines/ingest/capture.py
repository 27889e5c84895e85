"""The capture services' real landing formats: how objects are named, written and read.

- Kinesis Data Firehose: gzip NDJSON,
  ``{prefix}/YYYY/MM/DD/HH/{stream}-1-YYYY-MM-DD-HH-MM-SS-{id}.gz``.
- Event Hubs Capture: Avro records (``SequenceNumber``, ``Offset``, ``EnqueuedTimeUtc``,
  ``SystemProperties``, ``Properties``, ``Body``) under
  ``{prefix}/{namespace}/{hub}/{partition}/YYYY/MM/DD/hh/mm/ss.avro``.
- Pub/Sub Cloud Storage subscription, Avro with metadata (``subscription_name``,
  ``message_id``, ``publish_time``, ``attributes``, ``data``), or text (NDJSON), under
  ``{prefix}/YYYY/MM/DD/HH/{subscription}_{YYYY-MM-DDTHH:MM:SS+00:00}_{id}.avro|.json``.

Readers turn an object into :class:`Records` (the raw events as one buffer plus offsets, so a
million events are not a million ``bytes`` objects) or raise :class:`CorruptObjectError`,
which the ingest quarantines as a whole object.

Nothing is inflated without a bound: gzip members and Avro blocks (every codec the Avro spec
names: null, deflate, snappy, bzip2, xz, zstandard) are inflated against what is left of
:data:`MAX_OBJECT_BYTES`, and an object that would go over it raises
:class:`ObjectTooLargeError` after at most that many bytes, whatever its headers claim.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import io
import json
import lzma
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cramjam
import fastavro
import numpy as np
from backports import zstd
from isal import isal_zlib

from pipelines.ingest.events import MAX_EVENT_BYTES
from pipelines.lake.config import LandingConfig
from pipelines.lake.storage import Storage

EVENTHUBS_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "EventData",
        "namespace": "Microsoft.ServiceBus.Messaging",
        "fields": [
            {"name": "SequenceNumber", "type": "long"},
            {"name": "Offset", "type": "string"},
            {"name": "EnqueuedTimeUtc", "type": "string"},
            {
                "name": "SystemProperties",
                "type": {"type": "map", "values": ["long", "double", "string", "bytes"]},
            },
            {
                "name": "Properties",
                "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]},
            },
            {"name": "Body", "type": ["null", "bytes"]},
        ],
    }
)
PUBSUB_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "PubsubMessage",
        "fields": [
            {"name": "subscription_name", "type": "string"},
            {"name": "message_id", "type": "string"},
            {"name": "publish_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "attributes", "type": {"type": "map", "values": "string"}},
            {"name": "data", "type": "bytes"},
        ],
    }
)
FORMATS = ("firehose", "eventhubs_capture", "pubsub_avro", "pubsub_text")
# Most bytes one landing object may hold, as landed and once inflated. A bigger one (a
# decompression bomb, a runaway producer) is refused whole after at most this many bytes.
# Firehose buffers at most 128 MiB; set Event Hubs Capture's and Pub/Sub's size windows below it.
MAX_OBJECT_BYTES = 256 * 1024 * 1024
_AVRO_MAGIC = b"Obj\x01"
_AVRO_MAX_METADATA = 1024  # header entries; real writers put two or three


class CorruptObjectError(ValueError):
    """A landing object that cannot be decoded as its format says."""

    @property
    def reason(self) -> str:
        """The quarantine reason of the whole object."""
        return f"corrupt_object: {self}"


class ObjectTooLargeError(CorruptObjectError):
    """A landing object over :data:`MAX_OBJECT_BYTES`, as landed or once inflated."""

    def __init__(self, what: str, limit: int) -> None:
        self.what, self.limit = what, limit
        super().__init__(f"object_too_large:{what}>{limit}")

    @property
    def reason(self) -> str:
        """``object_too_large:inflated>N`` or ``object_too_large:landed>N``."""
        return f"object_too_large:{self.what}>{self.limit}"


class TooManyShortRecordsError(ValueError):
    """More records shorter than asked than allowed (see :meth:`Records.from_lines`)."""


@dataclass(frozen=True)
class Batch:
    """Events that arrive together in one landing object."""

    window_start: dt.datetime
    records: Sequence[bytes]
    partition: int = 0


def stream_roots(landing: LandingConfig) -> list[str]:
    """Prefixes under which object keys sort in arrival order (one per configured partition).

    Event Hubs may have more partitions than the configuration says (partitions can be added
    to a hub); :func:`discover_stream_roots` also finds those.
    """
    if landing.format == "eventhubs_capture":
        ns, hub = landing.options["namespace"], landing.options["hub"]
        return [
            f"{landing.prefix}/{ns}/{hub}/{p}"
            for p in range(int(landing.options.get("partitions", 1)))
        ]
    if landing.format not in FORMATS:
        raise ValueError(f"unknown landing format {landing.format!r}; known: {', '.join(FORMATS)}")
    return [landing.prefix]


def partitions_root(landing: LandingConfig) -> str | None:
    """The folder whose sub-folders are the capture partitions (Event Hubs), else None."""
    if landing.format != "eventhubs_capture":
        return None
    return f"{landing.prefix}/{landing.options['namespace']}/{landing.options['hub']}"


def discover_stream_roots(landing: LandingConfig, storage: Storage) -> tuple[list[str], list[str]]:
    """Every stream root that holds objects or is configured, and those not configured.

    The partition folders under an Event Hub are listed (one delimiter listing), so objects of
    a partition beyond the configured count are seen too; they are capture objects like the
    others, and the second list lets a report name them so the configuration can be fixed.
    """
    roots = stream_roots(landing)
    hub = partitions_root(landing)
    if hub is None:
        return roots, []
    found = {p.rstrip("/") for p in storage.list_dirs(hub + "/")}
    unconfigured = sorted(found - set(roots))
    return sorted(set(roots) | found), unconfigured


def date_prefixes(
    landing: LandingConfig, day: dt.date, roots: Iterable[str] | None = None
) -> list[str]:
    """Key prefixes holding exactly the objects that landed on ``day`` (under ``roots``)."""
    return [
        f"{root}/{day:%Y/%m/%d}/" for root in (stream_roots(landing) if roots is None else roots)
    ]


def landing_date_of(landing: LandingConfig, key: str) -> dt.date:
    """The landing date encoded in an object key (under any Event Hubs partition folder)."""
    hub = partitions_root(landing)
    try:
        if hub is not None and key.startswith(hub + "/"):
            y, m, d = key[len(hub) + 1 :].split("/")[1:4]
            return dt.date(int(y), int(m), int(d))
        if hub is None and key.startswith(landing.prefix + "/"):
            y, m, d = key[len(landing.prefix) + 1 :].split("/")[:3]
            return dt.date(int(y), int(m), int(d))
    except ValueError:
        pass
    raise ValueError(f"{key!r} is not under any landing stream of {landing.prefix!r}")


def object_key(landing: LandingConfig, batch: Batch, seq: int) -> str:
    """Where the capture service would put this batch."""
    t = batch.window_start
    if landing.format == "firehose":
        stream = landing.options.get("stream", "events")
        return f"{landing.prefix}/{t:%Y/%m/%d/%H}/{stream}-1-{t:%Y-%m-%d-%H-%M-%S}-{seq:08d}.gz"
    if landing.format == "eventhubs_capture":
        root = stream_roots(landing)[batch.partition]
        return f"{root}/{t:%Y/%m/%d/%H/%M/%S}.avro"
    sub = landing.options.get("subscription", "sub")
    ext = "avro" if landing.format == "pubsub_avro" else "json"
    return f"{landing.prefix}/{t:%Y/%m/%d/%H}/{sub}_{t:%Y-%m-%dT%H:%M:%S}+00:00_{seq:08d}.{ext}"


def encode(landing: LandingConfig, batch: Batch, seq: int, codec: str = "deflate") -> bytes:
    """Serialize a batch in the location's capture format (Avro blocks in ``codec``)."""
    if landing.format == "firehose":
        return gzip.compress(b"".join(r + b"\n" for r in batch.records), compresslevel=1)
    if landing.format == "pubsub_text":
        return b"".join(r + b"\n" for r in batch.records)
    buf = io.BytesIO()
    t = batch.window_start
    if landing.format == "eventhubs_capture":
        enq = t.strftime("%m/%d/%Y %I:%M:%S %p")
        rows: Iterable[dict[str, object]] = (
            {
                "SequenceNumber": seq * 1_000_000 + i,
                "Offset": str((seq * 1_000_000 + i) * 512),
                "EnqueuedTimeUtc": enq,
                "SystemProperties": {"x-opt-enqueued-time": int(t.timestamp() * 1000)},
                "Properties": {"content-type": "application/json"},
                "Body": r,
            }
            for i, r in enumerate(batch.records)
        )
        fastavro.writer(buf, EVENTHUBS_SCHEMA, rows, codec=codec)
    else:
        sub = landing.options.get("subscription", "sub")
        rows = (
            {
                "subscription_name": f"projects/lakehouse/subscriptions/{sub}",
                "message_id": f"{seq}-{i}",
                "publish_time": t,
                "attributes": {"content-type": "application/json"},
                "data": r,
            }
            for i, r in enumerate(batch.records)
        )
        fastavro.writer(buf, PUBSUB_SCHEMA, rows, codec=codec)
    return buf.getvalue()


@dataclass(frozen=True)
class Records:
    """The raw records of one object: record ``i`` is ``data[starts[i]:ends[i]]``.

    NDJSON objects are held as decoded, records split at newlines; a blank line (empty or only
    whitespace) is no record: ``blank_lines`` counts them and ``lines`` gives each record's line
    in the object (None when there is no blank line: record ``i`` is line ``i``). Avro bodies
    are joined with newlines, pretty-printed ones compacted to one line first; ``originals``
    then keeps the bodies as sent, which is what sizes are checked on and what quarantine keeps.
    """

    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    originals: Sequence[bytes] | None = None
    lines: np.ndarray | None = None
    blank_lines: int = 0

    def __len__(self) -> int:
        return len(self.starts)

    def raw(self, i: int) -> bytes:
        """Record ``i`` as it landed."""
        if self.originals is not None:
            return self.originals[i]
        return self.data[self.starts[i] : self.ends[i]]

    def sizes(self) -> np.ndarray:
        """Byte length of each record as it landed."""
        if self.originals is not None:
            return np.fromiter(map(len, self.originals), np.int64, len(self.originals))
        return self.ends - self.starts

    def to_list(self) -> list[bytes]:
        """Every record as it landed."""
        return [self.raw(i) for i in range(len(self))]

    def line_of(self, ids: np.ndarray) -> np.ndarray:
        """The position in the object (its line, or its message) of each record in ``ids``."""
        ids = np.asarray(ids, np.int64)
        return ids if self.lines is None else self.lines[ids]

    @classmethod
    def from_lines(cls, data: bytes, shortest: int = 0, most: int | None = None) -> Records:
        """Newline-delimited records, blank lines left out (counted); see :func:`_lines`.

        Raises:
            TooManyShortRecordsError: more than ``most`` records are shorter than ``shortest``
                bytes; raised as soon as they are seen, before millions of them are held.
        """
        starts, ends, lines, total = _lines(data, shortest, most)
        if len(lines) == total:
            return cls(data, starts, ends)
        return cls(data, starts, ends, lines=lines, blank_lines=total - len(lines))

    @classmethod
    def from_bodies(cls, bodies: Sequence[bytes]) -> Records:
        """Message bodies, one record each, one line each."""
        lines = [b if b"\n" not in b else _one_line(b) for b in bodies]
        ends = np.cumsum([len(b) + 1 for b in lines], dtype=np.int64) - 1
        starts = ends - np.fromiter(map(len, lines), np.int64, len(lines))
        return cls(b"\n".join(lines), starts, ends, originals=bodies)


# What ``bytes.strip()`` removes: a line of only these is blank.
NOT_SPACE = np.ones(256, bool)
NOT_SPACE[list(b" \t\n\r\x0b\x0c")] = False
# Bytes of an object split into lines at a time: the per-line arrays of one window (about 25
# bytes a line) are all that a million blank lines cost, not 25 bytes each for the object.
_LINES_WINDOW = 1 << 20


def _lines(
    data: bytes, shortest: int = 0, most: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Start, end and line number of each non-blank line of ``data``, and how many lines.

    A final newline does not start a line. ``data`` is split a window at a time. A line whose
    first byte is not whitespace (an event's '{') is not blank; only the others are looked at
    whole: a line's bytes plus its newline are reduced with ``logical_or`` over a
    non-whitespace mask (an empty line is just its newline, so it comes out blank too). A line
    that began in an earlier window carries whether it has a non-blank byte so far.
    """
    raw = np.frombuffer(data, np.uint8)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    start, nonblank, count = 0, False, 0  # the open line: where it starts, whether non-blank
    short = 0
    for lo in range(0, len(raw), _LINES_WINDOW):
        window = raw[lo : lo + _LINES_WINDOW]
        newlines = np.flatnonzero(window == ord("\n"))
        if not len(newlines):
            nonblank = nonblank or bool(NOT_SPACE[window].any())
            continue
        inner = newlines[:-1] + 1  # starts of the lines after the open one, in this window
        keep = np.empty(len(newlines), bool)
        keep[0] = nonblank or bool(NOT_SPACE[window[: newlines[0]]].any())
        keep[1:] = NOT_SPACE[window[inner]]
        unsure = np.flatnonzero(~keep[1:])
        if len(unsure):
            mask = NOT_SPACE[window[: newlines[-1] + 1]]
            keep[1 + unsure] = np.logical_or.reduceat(mask, inner)[unsure]
        picked = np.flatnonzero(keep)
        starts = np.concatenate([[start - lo], inner])
        parts.append((starts[picked] + lo, newlines[picked] + lo, picked + count))
        if most is not None:
            short += int(np.count_nonzero(parts[-1][1] - parts[-1][0] < shortest))
            if short > most:
                raise TooManyShortRecordsError(f"more than {most} records under {shortest} bytes")
        count += len(newlines)
        start = lo + int(newlines[-1]) + 1
        nonblank = bool(NOT_SPACE[window[newlines[-1] + 1 :]].any())
    if start < len(raw):  # a last line without its newline
        if nonblank:
            parts.append((np.array([start]), np.array([len(raw)]), np.array([count])))
        count += 1
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, count
    starts, ends, lines = (np.concatenate(p) for p in zip(*parts, strict=True))  # all int64
    return starts, ends, lines, count


def _one_line(body: bytes) -> bytes:
    if len(body) > MAX_EVENT_BYTES:  # refused for its size before anything parses it
        return body.replace(b"\n", b" ")
    try:
        return json.dumps(json.loads(body), separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return body.replace(b"\n", b" ")  # still malformed or too deep: the ingest classifies it


def _gunzip(data: bytes, limit: int = MAX_OBJECT_BYTES) -> bytes:
    """All gzip members of ``data``, like ``gzip.decompress``, inflating at most ``limit`` bytes.

    ISA-L inflates about twice as fast as zlib; with gzip's own member loop it was a fifth of
    the ingest's time. Asking it for at most what is left of the bound costs nothing on a
    normal object and stops a bomb after ``limit`` bytes.
    """
    out: list[bytes] = []
    left = limit
    while data:
        inflate = isal_zlib.decompressobj(wbits=31)
        out.append(inflate.decompress(data, left + 1))
        left -= len(out[-1])
        if left < 0:
            raise ObjectTooLargeError("inflated", limit)
        if not inflate.eof:
            # gzip.decompress's words, which quarantine reasons have always carried
            raise CorruptObjectError(
                "gzip: Compressed file ended before the end-of-stream marker was reached"
            )
        data = inflate.unused_data.lstrip(b"\0")  # zero padding after a member is allowed
    return out[0] if len(out) == 1 else b"".join(out)


def _streams(new: Callable[[], Any], data: bytes, left: int, limit: int) -> bytes:
    """Every stream (bzip2, xz) or frame (zstd) of ``data``, at most ``left`` bytes in all."""
    out: list[bytes] = []
    while data:
        inflate = new()
        out.append(inflate.decompress(data, left + 1))
        left -= len(out[-1])
        if left < 0:
            raise ObjectTooLargeError("inflated", limit)
        if not inflate.eof:
            raise CorruptObjectError("the compressed block ends before its end-of-stream marker")
        data = inflate.unused_data
    return b"".join(out)


def _deflate(block: bytes, left: int, limit: int) -> bytes:
    inflate = isal_zlib.decompressobj(wbits=-15)  # raw deflate, as the Avro spec says
    out = inflate.decompress(block, left + 1)
    if len(out) > left:
        raise ObjectTooLargeError("inflated", limit)
    return out


def _snappy(block: bytes, left: int, limit: int) -> bytes:
    # Each block is raw snappy, whose first varint is the inflated size, then a CRC-32 of it.
    body, crc = block[:-4], block[-4:]
    if len(crc) != 4:
        raise CorruptObjectError("snappy block shorter than its checksum")
    if cramjam.snappy.decompress_raw_len(body) > left:
        raise ObjectTooLargeError("inflated", limit)
    out = bytes(cramjam.snappy.decompress_raw(body))
    if zlib.crc32(out) != int.from_bytes(crc, "big"):
        raise CorruptObjectError("snappy block checksum does not match")
    return out


def _null_block(block: bytes, left: int, limit: int) -> bytes:
    if len(block) > left:
        raise ObjectTooLargeError("inflated", limit)
    return block


_AVRO_CODECS: dict[str, Callable[[bytes, int, int], bytes]] = {
    "null": _null_block,
    "deflate": _deflate,
    "snappy": _snappy,
    "bzip2": lambda block, left, limit: _streams(bz2.BZ2Decompressor, block, left, limit),
    "xz": lambda block, left, limit: _streams(lzma.LZMADecompressor, block, left, limit),
    "zstandard": lambda block, left, limit: _streams(zstd.ZstdDecompressor, block, left, limit),
}


class _Cursor:
    """Reads Avro's binary encoding from a buffer; running past its end is corruption."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def long(self) -> int:
        """A zig-zag varint (at most 10 bytes)."""
        shift = value = 0
        for _ in range(10):
            if self.pos >= len(self.data):
                raise CorruptObjectError("avro: the file ends inside a number")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (value >> 1) ^ -(value & 1)
            shift += 7
        raise CorruptObjectError("avro: a number longer than 10 bytes")

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes."""
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptObjectError("avro: a block or value runs past the end of the file")
        self.pos += n
        return self.data[self.pos - n : self.pos]


def _zigzag(n: int) -> bytes:
    value = (n << 1) ^ (n >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _avro_header(cur: _Cursor) -> tuple[dict[str, bytes], bytes]:
    """The container's metadata and sync marker."""
    if cur.take(4) != _AVRO_MAGIC:
        raise CorruptObjectError("avro: not an Avro object container file")
    meta: dict[str, bytes] = {}
    while count := cur.long():
        if count < 0:  # a negative count is followed by the block's size in bytes
            count = -count
            cur.long()
        if len(meta) + count > _AVRO_MAX_METADATA:
            raise CorruptObjectError("avro: more header entries than any writer puts")
        for _ in range(count):
            key = cur.take(cur.long()).decode("utf-8", "replace")
            meta[key] = cur.take(cur.long())
    return meta, cur.take(16)


def _inflated_avro(data: bytes, limit: int) -> bytes:
    """The same container with every block inflated (codec ``null``), at most ``limit`` bytes.

    fastavro inflates a block whole, whatever its size; here each block is inflated against
    what is left of the bound, and fastavro then reads the result.
    """
    cur = _Cursor(data)
    meta, sync = _avro_header(cur)
    codec = meta.get("avro.codec", b"null").decode("utf-8", "replace")
    inflate = _AVRO_CODECS.get(codec)
    if inflate is None:
        raise CorruptObjectError(f"avro: codec {codec[:40]!r} is not one the Avro spec names")
    meta["avro.codec"] = b"null"
    header = [_AVRO_MAGIC, _zigzag(len(meta))]
    for key, value in meta.items():
        encoded = key.encode()
        header += [_zigzag(len(encoded)), encoded, _zigzag(len(value)), value]
    out = [*header, _zigzag(0), sync]
    left = limit
    while not cur.at_end():
        count, block = cur.long(), cur.take(cur.long())
        if count < 0:
            raise CorruptObjectError("avro: a block with a negative record count")
        try:
            raw = inflate(block, left, limit)
        except CorruptObjectError:
            raise
        except Exception as exc:  # every codec library has its own error types
            raise CorruptObjectError(f"avro: {codec} block: {type(exc).__name__}: {exc}") from exc
        left -= len(raw)
        if cur.take(16) != sync:
            raise CorruptObjectError("avro: a block's sync marker differs from the header's")
        out += [_zigzag(count), _zigzag(len(raw)), raw, sync]
    return b"".join(out)


def _body_type_error(schema: object, field: str) -> str | None:
    """Why a container's writer schema does not carry ``field`` as bytes (None when it does).

    The capture services write it as ``bytes`` or ``["null", "bytes"]``. Any other type is
    another producer's file: read as it is, a ``long`` body ``n`` became ``bytes(n)``, n zero
    bytes, past any bound on the object (an 80-byte file gave an 8 GiB record).
    """
    fields = schema.get("fields") if isinstance(schema, dict) else None
    found = [f for f in fields or [] if isinstance(f, dict) and f.get("name") == field]
    if not found:
        return f"avro: the writer schema has no {field!r} field"
    kind = found[0].get("type")
    kinds = [_plain(k) for k in (kind if isinstance(kind, list) else [kind])]
    if "bytes" in kinds and set(kinds) <= {"bytes", "null"}:
        return None
    return f"avro: the writer schema's {field!r} is {json.dumps(kind)[:80]}, not bytes"


def _plain(kind: object) -> object:
    """``{"type": "bytes"}`` as ``"bytes"`` (a logical type over bytes, a decimal, is not)."""
    if isinstance(kind, dict) and set(kind) == {"type"}:
        return kind["type"]
    return kind


def _avro_bodies(data: bytes, field: str, limit: int) -> list[bytes]:
    container = _inflated_avro(data, limit)
    try:
        reader = fastavro.reader(io.BytesIO(container))
    except Exception as exc:  # fastavro raises many types on a damaged file
        raise CorruptObjectError(f"avro: {type(exc).__name__}: {exc}") from exc
    if why := _body_type_error(reader.writer_schema, field):
        raise CorruptObjectError(why)
    try:
        return [bytes(rec[field] or b"") for rec in reader]  # type: ignore[call-overload,index,arg-type]
    except Exception as exc:  # fastavro raises many types on a damaged file
        raise CorruptObjectError(f"avro: {type(exc).__name__}: {exc}") from exc


def decode_records(
    landing: LandingConfig,
    data: bytes,
    limit: int = MAX_OBJECT_BYTES,
    shortest: int = 0,
    most_short: int | None = None,
) -> Records:
    """Raw event records of one landing object.

    Raises:
        ObjectTooLargeError: the object is over ``limit`` bytes, as landed or once inflated.
        CorruptObjectError: it cannot be decoded as its format says.
        TooManyShortRecordsError: an NDJSON object holds more than ``most_short`` records
            shorter than ``shortest`` bytes (see :meth:`Records.from_lines`).
    """
    fmt = landing.format
    if len(data) > limit:
        raise ObjectTooLargeError("landed", limit)
    if fmt in ("firehose", "pubsub_text"):
        if fmt == "firehose":
            try:
                data = _gunzip(data, limit)
            except isal_zlib.error as exc:  # type: ignore[misc]  # stub: an instance, not a class
                raise CorruptObjectError(f"gzip: {exc}") from exc
        return Records.from_lines(data, shortest, most_short)
    return Records.from_bodies(
        _avro_bodies(data, "Body" if fmt == "eventhubs_capture" else "data", limit)
    )


def decode(landing: LandingConfig, data: bytes) -> list[bytes]:
    """Raw event records of one landing object as a list; see :func:`decode_records`."""
    return decode_records(landing, data).to_list()
