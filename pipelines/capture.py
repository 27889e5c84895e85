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
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import fastavro
import numpy as np
from isal import isal_zlib

from pipelines.config import LandingConfig

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


class CorruptObjectError(ValueError):
    """A landing object that cannot be decoded as its format says."""


@dataclass(frozen=True)
class Batch:
    """Events that arrive together in one landing object."""

    window_start: dt.datetime
    records: Sequence[bytes]
    partition: int = 0


def stream_roots(landing: LandingConfig) -> list[str]:
    """Prefixes under which object keys sort in arrival order (one per capture partition)."""
    if landing.format == "eventhubs_capture":
        ns, hub = landing.options["namespace"], landing.options["hub"]
        return [
            f"{landing.prefix}/{ns}/{hub}/{p}"
            for p in range(int(landing.options.get("partitions", 1)))
        ]
    if landing.format not in FORMATS:
        raise ValueError(f"unknown landing format {landing.format!r}; known: {', '.join(FORMATS)}")
    return [landing.prefix]


def date_prefixes(landing: LandingConfig, day: dt.date) -> list[str]:
    """Key prefixes holding exactly the objects that landed on ``day``."""
    return [f"{root}/{day:%Y/%m/%d}/" for root in stream_roots(landing)]


def landing_date_of(landing: LandingConfig, key: str) -> dt.date:
    """The landing date encoded in an object key."""
    for root in stream_roots(landing):
        if key.startswith(root + "/"):
            y, m, d = key[len(root) + 1 :].split("/")[:3]
            return dt.date(int(y), int(m), int(d))
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


def encode(landing: LandingConfig, batch: Batch, seq: int) -> bytes:
    """Serialize a batch in the location's capture format."""
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
        fastavro.writer(buf, EVENTHUBS_SCHEMA, rows, codec="deflate")
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
        fastavro.writer(buf, PUBSUB_SCHEMA, rows, codec="deflate")
    return buf.getvalue()


@dataclass(frozen=True)
class Records:
    """The raw records of one object: record ``i`` is ``data[starts[i]:ends[i]]``.

    NDJSON objects are held as decoded, records split at newlines. Avro bodies are joined with
    newlines, pretty-printed ones compacted to one line first; ``originals`` then keeps the
    bodies as sent, which is what sizes are checked on and what quarantine keeps.
    """

    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    originals: Sequence[bytes] | None = None

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

    @classmethod
    def from_lines(cls, data: bytes) -> Records:
        """Newline-delimited records; a final newline does not start an empty record."""
        newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
        starts = np.concatenate([[0], newlines + 1])
        ends = np.concatenate([newlines, [len(data)]])
        if ends[-1] == starts[-1]:  # trailing newline, or no data at all
            starts, ends = starts[:-1], ends[:-1]
        return cls(data, starts.astype(np.int64), ends.astype(np.int64))

    @classmethod
    def from_bodies(cls, bodies: Sequence[bytes]) -> Records:
        """Message bodies, one record each, one line each."""
        lines = [b if b"\n" not in b else _one_line(b) for b in bodies]
        ends = np.cumsum([len(b) + 1 for b in lines], dtype=np.int64) - 1
        starts = ends - np.fromiter(map(len, lines), np.int64, len(lines))
        return cls(b"\n".join(lines), starts, ends, originals=bodies)


def _one_line(body: bytes) -> bytes:
    try:
        return json.dumps(json.loads(body), separators=(",", ":")).encode()
    except ValueError:
        return body.replace(b"\n", b" ")  # still malformed: the ingest classifies it


def _gunzip(data: bytes) -> bytes:
    """All gzip members of ``data``, like ``gzip.decompress``.

    ISA-L inflates about twice as fast as zlib; with gzip's own member loop it was a fifth of
    the ingest's time.
    """
    out: list[bytes] = []
    while data:
        inflate = isal_zlib.decompressobj(wbits=31)
        out.append(inflate.decompress(data))
        if not inflate.eof:
            # gzip.decompress's words, which quarantine reasons have always carried
            raise CorruptObjectError(
                "gzip: Compressed file ended before the end-of-stream marker was reached"
            )
        data = inflate.unused_data.lstrip(b"\0")  # zero padding after a member is allowed
    return out[0] if len(out) == 1 else b"".join(out)


def decode_records(landing: LandingConfig, data: bytes) -> Records:
    """Raw event records of one landing object; CorruptObjectError if it cannot be read."""
    fmt = landing.format
    if fmt in ("firehose", "pubsub_text"):
        if fmt == "firehose":
            try:
                data = _gunzip(data)
            except isal_zlib.error as exc:  # type: ignore[misc]  # stub: an instance, not a class
                raise CorruptObjectError(f"gzip: {exc}") from exc
        return Records.from_lines(data)
    field = "Body" if fmt == "eventhubs_capture" else "data"
    try:
        reader = fastavro.reader(io.BytesIO(data))
        bodies = [bytes(rec[field] or b"") for rec in reader]  # type: ignore[call-overload,index,arg-type]
    except Exception as exc:  # fastavro raises many types on a damaged file
        raise CorruptObjectError(f"avro: {type(exc).__name__}: {exc}") from exc
    return Records.from_bodies(bodies)


def decode(landing: LandingConfig, data: bytes) -> list[bytes]:
    """Raw event records of one landing object as a list; see :func:`decode_records`."""
    return decode_records(landing, data).to_list()
