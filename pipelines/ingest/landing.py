"""The landing area of one date: listing its objects and reading them, bounded.

An object listed but not readable (gone, a link, no permission) is skipped and reported, not
recorded in the ledger: the next run reads it again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
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


def list_after(storage: Storage, prefix: str, after: str | None) -> Iterator[ObjectInfo]:
    """Objects under ``prefix`` (ending in ``/``) whose keys sort after ``after``, in order.

    What a listing with an offset returns, at a cost that follows what is new rather than
    what the prefix holds: capture services write keys under date folders
    (``YYYY/MM/DD/...``), so the walk takes one delimiter listing per level down the
    cursor's own folders (years, then that year's months, then that month's days, ...), lists
    the cursor's deepest folder after the cursor, and lists whole only the folders that sort
    after the cursor's (all new). On S3 an offset listing is already StartAfter; on Azure, GCS
    and local folders the store would otherwise list everything under ``prefix`` and drop the
    old keys afterwards. ``after`` None (no cursor yet) lists everything; ``after`` may also
    be a folder's key without the slash (``<root>/2026/10/06``: from that date on). An object
    placed directly in a folder beside the date folders, above the cursor's own, is not seen
    (no capture service writes one there).
    """
    if after is None:
        yield from storage.list(prefix)
        return
    if not after.startswith(prefix):
        yield from storage.list(prefix, offset=after)
        return
    rest = after[len(prefix) :]
    head = rest.split("/", 1)[0]
    folders = storage.list_dirs(prefix)
    if "/" not in rest and not folders:  # the cursor's own folder: list it from the cursor
        yield from storage.list(prefix, offset=after)
        return
    for folder in folders:
        name = folder[len(prefix.rstrip("/")) + 1 :] if prefix.strip("/") else folder
        if name > head or (name == head and "/" not in rest):  # a date floor's own folder
            yield from storage.list(folder + "/")
        elif name == head:
            yield from list_after(storage, folder + "/", after)


def date_folders(storage: Storage, root: str) -> list[dt.date]:
    """The dates a stream root holds folders for (``<root>/YYYY/MM/DD``), by delimiter listings.

    One listing of the root, one per year and one per month: what it costs follows the number
    of dates, never the objects under them.
    """
    out: list[dt.date] = []
    for year in storage.list_dirs(root + "/"):
        for month in storage.list_dirs(year + "/"):
            for day in storage.list_dirs(month + "/"):
                try:
                    out.append(dt.datetime.strptime(day[len(root) + 1 :], "%Y/%m/%d").date())
                except ValueError:
                    continue  # not a date folder
    return out


def landing_objects(storage: Storage, landing: LandingConfig, landing_date: dt.date) -> list[str]:
    """Keys of the objects that landed on a date (only that date's prefixes are listed)."""
    return [info.path for info in landing_listing(storage, landing, landing_date)[0]]


def listed_now(storage: Storage, path: str) -> ObjectInfo | None:
    """The object as a listing gives it now (etag and size), or None when it is gone.

    Listed, not HEAD: a HEAD may quote the etag, and the ledger keeps a listing's.
    """
    folder = path.rsplit("/", 1)[0] + "/"
    listed = [i for i in storage.list(folder) if i.path == path]
    return listed[0] if listed else None


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
