"""VACUUM and log cleanup below the floor: what every kept version references stays.

No commit is written (delta-rs' and Spark's VACUUM write two), so replicas never see one.
Two ways to find what may go:

* :func:`log_vacuum`, every run: the candidates are the log's removals. The run reads the
  commits after the last version it planned (kept in :data:`PLAN_STATE`, a small object in
  the table's folder that Delta readers ignore, with the removed files still waiting: young,
  or needed by the floor). Without that state (a first run, a reseeded replica) it starts
  from the newest checkpoint's tombstones (its remove column, read by ranges) and the commits
  after the older of that checkpoint and the floor. No object of the table is listed and no
  live-file list is read: a run costs what changed since the last one, never the history.
* :func:`vacuum` over :func:`keep_set`, the orphan sweep (``sweep=True``, its own schedule):
  lists every object of the table, page by page, and deletes those no kept version needs,
  files no commit names (a crashed writer's) included. It costs what the table holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.lake.storage import ObjectInfo, Storage, stable_etag
from pipelines.operations.maintenance.floor import HOUR, Floor, MaintenanceError
from pipelines.replication.deltalog import (
    LOG,
    SyncError,
    check_protocols,
    checkpoint_state,
    commit_path,
    complete_checkpoint,
    list_log,
    parse_commit,
)

# Where :func:`log_vacuum` keeps what it planned (ignored by Delta readers: a ``_`` folder).
PLAN_STATE = "_lakehouse_upkeep/vacuum.json"


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
    mode: str = "sweep"  # "log" (planned from the log) or "sweep" (every object listed)
    candidates: int = 0  # log: removed files not live now that were looked at
    commits_read: int = 0  # log: commits read since the last plan (or the checkpoint, floor)
    checkpoint_version: int = -1  # log: the checkpoint whose tombstones were read (-1: none)


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
    after it stay, so every version from ``keep_from`` on can still be read and synced. The age
    that counts is also that of the checkpoint which made an entry unneeded (the first one after
    it): until then a reader that read ``_last_checkpoint`` before it was written loads the older
    checkpoint and the commits after it, however old those files are.
    """
    now = time.time() if now is None else now
    listing = list_log(storage, None)
    checkpoints = listing.checkpoints.items()
    complete = {v: parts for v, parts in checkpoints if complete_checkpoint(parts)}
    usable = [v for v in complete if v <= keep_from]
    if not usable:
        return {"kept_from_version": 0, "entries_deleted": 0, "reason": "no checkpoint to start at"}
    start = max(usable)
    cutoff = now - log_retention_hours * HOUR

    def superseded(version: int, *, by_own: bool) -> bool:
        """True when the checkpoint that made ``version`` unneeded is older than the retention.

        A commit's: the first complete checkpoint at or after it; a checkpoint's: after it.
        """
        first = min(v for v in complete if v > version or (by_own and v == version))
        return all((p.modified or now) <= cutoff for p in complete[first])

    doomed = [
        info
        for kind in (listing.commits, listing.crcs)
        for v, info in kind.items()
        if v < start and (info.modified or now) <= cutoff and superseded(v, by_own=True)
    ]
    doomed += [
        info
        for v, parts in listing.checkpoints.items()
        if v < start and superseded(v, by_own=False)
        for info in parts
        if (info.modified or now) <= cutoff
    ]
    if not dry_run:
        # Oldest first: a crash leaves a shorter log, never a hole in the middle.
        for info in sorted(doomed, key=lambda i: i.path):
            storage.delete(info.path)
    return {"kept_from_version": start, "entries_deleted": len(doomed)}


@dataclass
class _Removed:
    """A file the log removed and has not added back: when, by which version, added when.

    ``version`` is the removal's version, or for a tombstone found in a checkpoint the
    version the log was read from (it was removed then or before: no later version needs it).
    ``added`` is the version that added it when upkeep read that commit, else None.
    """

    at_ms: int
    version: int
    added: int | None = None


def _uses_deletion_vectors(protocols: list[dict[str, Any]]) -> bool:
    return any("deletionVectors" in (p.get("readerFeatures") or []) for p in protocols)


def _anchor(storage: Storage, version: int) -> list[Any] | None:
    """What identifies a commit object without reading it: its size and etag (or time)."""
    info = storage.head(commit_path(version))
    if info is None:
        return None
    return [info.size, info.etag if info.etag else info.modified]


def _read_plan(storage: Storage, current: int) -> tuple[int, dict[str, _Removed]] | None:
    """The last plan's version and waiting files, when its commit is still the log's own.

    A missing, unreadable or foreign plan (the log was replaced: a reseed) is None.
    """
    try:
        raw = json.loads(storage.get(PLAN_STATE))
        version, anchor = int(raw["version"]), list(raw["commit"])
        if len(anchor) == 2 and isinstance(anchor[1], str):  # recorded with a local inode
            anchor[1] = stable_etag(anchor[1])
        waiting = {
            str(p): _Removed(int(at), int(v), None if a is None else int(a))
            for p, at, v, a in raw["waiting"]
        }
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if version > current or _anchor(storage, version) != anchor:
        return None
    return version, waiting


def _write_plan(storage: Storage, version: int, waiting: Mapping[str, _Removed]) -> None:
    anchor = _anchor(storage, version)
    if anchor is None:
        return  # no commit to anchor the plan on: the next run starts from the checkpoint
    rows = [[p, w.at_ms, w.version, w.added] for p, w in sorted(waiting.items())]
    doc = {"version": version, "commit": anchor, "waiting": rows}
    storage.put(PLAN_STATE, json.dumps(doc).encode())


def _from_checkpoint(
    storage: Storage, floor: Floor, out: VacuumResult
) -> tuple[int, dict[str, _Removed]]:
    """Where a first plan starts: the newest checkpoint's tombstones, read by ranges."""
    listing = list_log(storage, None)
    usable = [
        v
        for v, parts in listing.checkpoints.items()
        if v <= floor.current and complete_checkpoint(parts)
    ]
    checkpoint = max(usable, default=-1)
    start = min(floor.oldest, checkpoint)
    out.checkpoint_version = checkpoint
    if checkpoint < 0:
        return start, {}
    parts = listing.checkpoints[checkpoint]
    state = checkpoint_state(storage, checkpoint, parts, tombstones_only=True)
    check_protocols(state.protocols, f"{storage.uri} (checkpoint of version {checkpoint})")
    live: set[str] = set()
    if _uses_deletion_vectors(state.protocols):
        # a path may be both removed (one vector) and live (another): read the adds too
        live = set(checkpoint_state(storage, checkpoint, parts).files)
    return start, {p: _Removed(at, start) for p, at in state.removed_at.items() if p not in live}


def _removed_files(storage: Storage, floor: Floor, out: VacuumResult) -> dict[str, _Removed]:
    """Files removed and not live now: the last plan's (or the checkpoint's) and the new ones."""
    plan = _read_plan(storage, floor.current)
    if plan is None:
        start, removed = _from_checkpoint(storage, floor, out)
    else:
        start, removed = plan
        out.mode = "log (since the last plan)"
    added: dict[str, int] = {}
    for v in range(start + 1, floor.current + 1):
        try:
            data = storage.get(commit_path(v))
        except FileNotFoundError:
            raise MaintenanceError(
                f"{storage.uri}: version {floor.oldest} cannot be read: commit {v} is gone "
                f"and no checkpoint covers it (upkeep reads the log from version {start + 1}); "
                f"{_who(floor, floor.oldest)}"
            ) from None
        c = parse_commit(v, data, f"{storage.uri}/{commit_path(v)} (version {v})")
        check_protocols(c.protocols, f"{storage.uri}/{commit_path(v)}")
        for path in c.removed:
            at = c.removed_at.get(path, removed[path].at_ms if path in removed else 0)
            removed[path] = _Removed(at, v, added.get(path))
        for path in set(c.files) - c.cdc:
            added[path] = v
            removed.pop(path, None)  # live again
        out.commits_read += 1
    return removed


def _needed(gone: _Removed, floor: Floor) -> bool:
    """Whether a kept version references a removed file (live from ``added`` to before removal)."""
    if gone.version > floor.replica_floor:
        return True
    return any(
        pin.version < gone.version and (gone.added is None or gone.added <= pin.version)
        for pin in floor.models
    )


def log_vacuum(
    storage: Storage,
    floor: Floor,
    *,
    retention_hours: float,
    may_delete: Callable[[str], bool] | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> VacuumResult:
    """Delete files the log removed, no kept version needs, removed long enough ago.

    Planned from the log alone (the module's docstring): no listing of the table. A file no
    commit ever removed (a crashed writer's) is never a candidate: the orphan sweep's. Each
    file about to go is looked up first (gone already: forgotten; its size is what is
    reclaimed). ``may_delete`` narrows further (a replica deletes only what its source
    vacuumed). The files left waiting are kept in :data:`PLAN_STATE` (not on a dry run).
    """
    now = time.time() if now is None else now
    cutoff = now - retention_hours * HOUR
    out = VacuumResult(mode="log (from the checkpoint)")
    try:
        removed = _removed_files(storage, floor, out)
    except SyncError as exc:
        raise MaintenanceError(f"{exc}; nothing was deleted") from None
    out.candidates = len(removed)
    waiting: dict[str, _Removed] = {}
    for path, gone in sorted(removed.items()):
        if not _is_data_object(path):
            continue
        if _needed(gone, floor):
            out.kept_for_floor += 1
            waiting[path] = gone
            continue
        if gone.at_ms / 1000 > cutoff:
            out.kept_young += 1
            waiting[path] = gone
            continue
        info = storage.head(path)
        if info is None:
            continue  # vacuumed already (its tombstone outlives it)
        if max(gone.at_ms / 1000, info.modified or 0.0) > cutoff:
            out.kept_young += 1
            waiting[path] = gone
            continue
        if may_delete is not None and not may_delete(path):
            waiting[path] = gone
            continue
        if not dry_run:
            storage.delete(path)
        out.files_deleted += 1
        out.bytes_reclaimed += info.size
        out.deleted.append(path)
    if not dry_run:
        _write_plan(storage, floor.current, waiting)
    return out
