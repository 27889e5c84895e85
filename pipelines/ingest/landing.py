"""The landing area of one date: listing its objects and reading them, bounded.

An object listed but not readable (gone, a link, no permission) is skipped and reported, not
recorded in the ledger: the next run reads it again.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from pipelines.ingest import capture
from pipelines.ingest.batch import MAX_QUARANTINE_RAW_BYTES, LandedObject
from pipelines.lake.config import LandingConfig
from pipelines.lake.storage import ObjectInfo, Storage, StorageError, one_line


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
