"""VACUUM and log cleanup below the floor: what every kept version references stays.

No commit is written (delta-rs' and Spark's VACUUM write two), so replicas never see one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.lake.storage import ObjectInfo, Storage
from pipelines.operations.maintenance.floor import HOUR, Floor, MaintenanceError
from pipelines.replication.deltalog import (
    LOG,
    check_protocols,
    checkpoint_state,
    commit_path,
    complete_checkpoint,
    list_log,
    parse_commit,
)


@dataclass
class _Replay:
    """Live files of a version, and when each file removed before it was removed (ms)."""

    live: set[str]
    removed_at: dict[str, int]


def _replay(storage: Storage, version: int, checkpoints: Mapping[int, list[ObjectInfo]]) -> _Replay:
    """Files (data and deletion vectors) live at ``version``: newest checkpoint, then commits."""
    usable = [v for v, parts in checkpoints.items() if v <= version and complete_checkpoint(parts)]
    start = max(usable) if usable else -1
    live: set[str] = set()
    removed_at: dict[str, int] = {}
    if start >= 0:
        state = checkpoint_state(storage, start, checkpoints[start])
        # A feature whose files upkeep does not know would make it delete what it needs.
        check_protocols(state.protocols, f"{storage.uri} (checkpoint of version {start})")
        live, removed_at = set(state.files), dict(state.removed_at)
    for v in range(start + 1, version + 1):
        try:
            data = storage.get(commit_path(v))
        except FileNotFoundError:
            raise MaintenanceError(
                f"{storage.uri}: version {version} cannot be read: commit {v} is gone and no "
                "checkpoint covers it"
            ) from None
        c = parse_commit(v, data, f"{storage.uri}/{commit_path(v)} (version {v})")
        check_protocols(c.protocols, f"{storage.uri}/{commit_path(v)}")
        live -= c.removed | c.removed_dvs
        live |= set(c.files) - c.cdc
        removed_at.update(c.removed_at)
    return _Replay(live, removed_at)


@dataclass
class KeepSet:
    """Every file some kept version needs, and the removal times upkeep knows of."""

    files: set[str]
    removed_at: dict[str, int]
    current: set[str]


def keep_set(storage: Storage, floor: Floor) -> KeepSet:
    """Files of every version from the replica floor on, and of every model-pinned version."""
    listing = list_log(storage, None)
    try:
        base = _replay(storage, floor.replica_floor, listing.checkpoints)
    except MaintenanceError as exc:
        raise MaintenanceError(f"{exc}; {_who(floor, floor.replica_floor)}") from None
    files = set(base.live)
    current = set(base.live)
    removed_at = dict(base.removed_at)
    for v in range(floor.replica_floor + 1, floor.current + 1):
        data = storage.get(commit_path(v))
        c = parse_commit(v, data, f"{storage.uri}/{commit_path(v)} (version {v})")
        check_protocols(c.protocols, f"{storage.uri}/{commit_path(v)}")
        files |= set(c.files)
        current -= c.removed | c.removed_dvs
        current |= set(c.files) - c.cdc
        removed_at.update(c.removed_at)
    for pin in floor.models:
        try:
            files |= _replay(storage, pin.version, listing.checkpoints).live
        except MaintenanceError as exc:
            raise MaintenanceError(f"{exc}; {_who(floor, pin.version)}") from None
    return KeepSet(files, removed_at, current)


def _who(floor: Floor, version: int) -> str:
    """Who needs an unreadable version, and what to do (nothing is deleted meanwhile)."""
    needs = [p for p in floor.pins if p.version == version]
    if not needs:
        return "nothing was deleted"
    pin = needs[0]
    if pin.kind == "replica":
        return (
            f"replica {pin.name} ({pin.uri}) needs it: reseed the replica before upkeep; "
            "nothing was deleted"
        )
    return (
        f"{pin.name} pins it in its lineage but it can no longer be read; delete that model "
        "version from the registry or restore the log; nothing was deleted"
    )


def _is_data_object(path: str) -> bool:
    """A file of the table VACUUM may consider: not in the log, not hidden (``_x``, ``.x``).

    Partition folders (``_col=value``) and change data (``_change_data``) are the exceptions,
    as in Delta's own VACUUM.
    """
    parts = path.split("/")
    if parts[0] == LOG.rstrip("/"):
        return False
    hidden = [s for s in parts if s.startswith(".") or (s.startswith("_") and "=" not in s)]
    return all(seg == "_change_data" for seg in hidden)


@dataclass
class VacuumResult:
    """What a VACUUM deleted (or would), and what the floor kept."""

    files_deleted: int = 0
    bytes_reclaimed: int = 0
    kept_for_floor: int = 0  # unreferenced by the current version, kept for a replica or model
    kept_young: int = 0  # removed (or written) less than retention_hours ago
    deleted: list[str] = field(default_factory=list)


def vacuum(
    storage: Storage,
    keep: KeepSet,
    *,
    retention_hours: float,
    may_delete: Callable[[ObjectInfo], bool] | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> VacuumResult:
    """Delete data files no kept version needs, removed (or written) long enough ago.

    ``may_delete`` narrows further (a replica deletes only what its source vacuumed).
    """
    now = time.time() if now is None else now
    cutoff = now - retention_hours * HOUR
    out = VacuumResult()
    for info in storage.list():
        if not _is_data_object(info.path) or info.path in keep.current:
            continue
        if info.path in keep.files:
            out.kept_for_floor += 1
            continue
        when = max(keep.removed_at.get(info.path, 0) / 1000, info.modified or now)
        if when > cutoff:
            out.kept_young += 1
            continue
        if may_delete is not None and not may_delete(info):
            continue
        if not dry_run:
            storage.delete(info.path)
        out.files_deleted += 1
        out.bytes_reclaimed += info.size
        out.deleted.append(info.path)
    return out


def log_cleanup(
    storage: Storage,
    keep_from: int,
    *,
    log_retention_hours: float,
    dry_run: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """Delete log entries below the newest complete checkpoint at or before ``keep_from``.

    Only entries older than ``log_retention_hours`` go; the checkpoint itself and everything
    after it stay, so every version from ``keep_from`` on can still be read and synced.
    """
    now = time.time() if now is None else now
    listing = list_log(storage, None)
    checkpoints = listing.checkpoints.items()
    usable = [v for v, parts in checkpoints if v <= keep_from and complete_checkpoint(parts)]
    if not usable:
        return {"kept_from_version": 0, "entries_deleted": 0, "reason": "no checkpoint to start at"}
    start = max(usable)
    cutoff = now - log_retention_hours * HOUR
    doomed = [
        info
        for kind in (listing.commits, listing.crcs)
        for v, info in kind.items()
        if v < start and (info.modified or now) <= cutoff
    ]
    doomed += [
        info
        for v, parts in listing.checkpoints.items()
        if v < start
        for info in parts
        if (info.modified or now) <= cutoff
    ]
    if not dry_run:
        # Oldest first: a crash leaves a shorter log, never a hole in the middle.
        for info in sorted(doomed, key=lambda i: i.path):
            storage.delete(info.path)
    return {"kept_from_version": start, "entries_deleted": len(doomed)}
