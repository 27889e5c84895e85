"""Upkeep of one table at one location per call: a source (rewritten) or a replica (never)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.lake.config import LakeConfig, LakeLocation, MaintenanceSettings
from pipelines.lake.storage import Storage, open_storage
from pipelines.operations.maintenance.compaction import checkpoint, compact
from pipelines.operations.maintenance.floor import (
    Floor,
    MaintenanceError,
    Pin,
    Target,
    compute_floor,
    find_target,
    replica_pins,
)
from pipelines.operations.maintenance.vacuum import (
    VacuumResult,
    _is_data_object,
    keep_set,
    log_cleanup,
    log_vacuum,
    vacuum,
)
from pipelines.replication.deltalog import (
    SyncError,
    latest_version,
    list_log,
)


@dataclass
class MaintenanceReport:
    """What one upkeep run did (or, dry, would do)."""

    table: str
    location: str
    uri: str
    role: str
    dry_run: bool
    version_before: int
    version_after: int
    retention_floor_version: int
    floor_set_by: dict[str, Any]
    replica_floor_version: int
    pinned_versions: list[dict[str, Any]]
    compaction: dict[str, Any]
    vacuum: dict[str, Any]
    checkpoint: dict[str, Any]
    log_cleanup: dict[str, Any]
    settings: dict[str, Any]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _vacuum_dict(result: VacuumResult) -> dict[str, Any]:
    out = asdict(result)
    deleted = out.pop("deleted")
    return {**out, "deleted_sample": deleted[:5]}


def maintain_source(
    storage: Storage,
    uri: str,
    options: Mapping[str, str],
    pins: Iterable[Pin],
    settings: MaintenanceSettings,
    *,
    z_order: Sequence[str] = (),
    staged: Callable[[], set[str]] = set,
    dry_run: bool = False,
    sweep: bool = False,
) -> dict[str, Any]:
    """Compact, then VACUUM under the floor, checkpoint, clean the log under the floor.

    The floor is computed from ``pins`` before compaction: the files compaction replaces are
    live at every replica's version, so they stay until the replicas have moved past them.
    VACUUM is planned from the log (:func:`log_vacuum`), or with ``sweep`` lists every object
    (:func:`vacuum`, the orphan sweep). ``staged`` (the sweep's only) gives the files a writer
    staged and has yet to commit (an ingest batch claimed in the ledger): no commit names them
    yet, and the sweep keeps them. It is called after the table's keep set is read, so a batch
    claimed meanwhile has files younger than retention. The log's plan never sees them.
    """
    before = latest_version(storage)
    if before is None:
        raise MaintenanceError(f"{uri} is not a Delta table: its _delta_log has no commit")
    compaction = compact(
        uri, options, z_order=z_order, target_size=settings.target_file_size, dry_run=dry_run
    )
    after = latest_version(storage) or before
    # Replicas hold versions up to ``before`` at most: the files compaction just replaced stay
    # while one of them has not synced past it; without replicas they may go now.
    floor = compute_floor(after, pins)
    if sweep:
        keep = keep_set(storage, floor)
        keep.current |= staged()
        swept = vacuum(storage, keep, retention_hours=settings.retention_hours, dry_run=dry_run)
    else:
        swept = log_vacuum(
            storage, floor, retention_hours=settings.retention_hours, dry_run=dry_run
        )
    # a dry run writes none: the version it would be at is known without opening the table
    cp = {"version": after, "written": False} if dry_run else checkpoint(uri, options)
    logs = log_cleanup(
        storage, floor.oldest, log_retention_hours=settings.log_retention_hours, dry_run=dry_run
    )
    return {
        "version_before": before,
        "version_after": after,
        "floor": floor,
        "compaction": compaction,
        "vacuum": _vacuum_dict(swept),
        "checkpoint": cp,
        "log_cleanup": logs,
    }


def maintain_replica(
    storage: Storage,
    source: Storage,
    pins: Iterable[Pin],
    settings: MaintenanceSettings,
    *,
    dry_run: bool = False,
    sweep: bool = False,
) -> dict[str, Any]:
    """A replica's upkeep: only what its source's upkeep already did, never a commit.

    Data files are deleted when no version the replica keeps needs them and the source has
    already vacuumed them; log entries when they are older than the source's oldest and the
    replica holds a (mirrored) checkpoint after them. Planned from the replica's (mirrored)
    log, each candidate looked up at the source; with ``sweep``, both are listed in full.
    """
    version = latest_version(storage)
    if version is None:
        raise MaintenanceError(f"{storage.uri} is not a Delta table: its _delta_log has no commit")
    floor = compute_floor(version, pins)
    if sweep:
        keep = keep_set(storage, floor)
        at_source = {i.path for i in source.list() if _is_data_object(i.path)}
        swept = vacuum(
            storage,
            keep,
            retention_hours=settings.retention_hours,
            may_delete=lambda info: info.path not in at_source,
            dry_run=dry_run,
        )
    else:
        swept = log_vacuum(
            storage,
            floor,
            retention_hours=settings.retention_hours,
            may_delete=lambda path: source.head(path) is None,
            dry_run=dry_run,
        )
    source_log = list_log(source, None)
    oldest_at_source = min(source_log.commits, default=version + 1)
    logs = log_cleanup(
        storage,
        min(floor.oldest, oldest_at_source),
        log_retention_hours=settings.log_retention_hours,
        dry_run=dry_run,
    )
    return {
        "version_before": version,
        "version_after": version,
        "floor": floor,
        "compaction": {"mode": "none", "why": "a replica never commits its own versions"},
        "vacuum": _vacuum_dict(swept),
        "checkpoint": {"version": version, "written": False, "why": "mirrored from the source"},
        "log_cleanup": logs,
    }


def staged_files(target: Target, options: Mapping[str, str]) -> set[str]:
    """Files of ``target`` that a pending ingest batch names (see :func:`ledger.pending_files`)."""
    from pipelines.ingest import ledger
    from pipelines.lake.tables import BRONZE, LEDGER, QUARANTINE

    kind = {BRONZE.name: "bronze", QUARANTINE.name: "quarantine"}.get(target.table)
    if target.replica is not None or kind is None:
        return set()
    return ledger.pending_files(target.location.table_uri(LEDGER.name), options)[kind]


def maintain(
    cfg: LakeConfig,
    table: str,
    location: str,
    *,
    model_pins_of: Callable[[str], list[Pin]] | None = None,
    options_for: Callable[[LakeLocation], dict[str, str]] | None = None,
    dry_run: bool = False,
    sweep: bool = False,
) -> MaintenanceReport:
    """Upkeep of ``table`` at ``location`` (a registered table or a replica's name).

    ``model_pins_of(uri)`` gives the pins of registered model versions (see
    :func:`model_pins`); ``options_for`` a location's storage options (secrets resolved).
    ``sweep``: VACUUM lists every object of the table (the orphan sweep, its own schedule)
    instead of planning from the log.
    """
    t0 = time.perf_counter()
    options_for = options_for or (lambda loc: loc.storage_options())
    target = find_target(cfg, table, location)
    options = options_for(target.location)
    storage = open_storage(target.uri, options, create=False)
    settings = cfg.maintenance
    pins = list(model_pins_of(target.uri) if model_pins_of else [])
    try:
        if target.replica is None:
            pins += replica_pins(cfg, target, options_for)
            z = settings.z_order.get(target.table, ())
            done = maintain_source(
                storage,
                target.uri,
                options,
                pins,
                settings,
                z_order=z,
                staged=lambda: staged_files(target, options),
                dry_run=dry_run,
                sweep=sweep,
            )
        else:
            source = open_storage(
                target.replica.source_uri, options_for(target.replica.source), create=False
            )
            done = maintain_replica(storage, source, pins, settings, dry_run=dry_run, sweep=sweep)
    except SyncError as exc:
        raise MaintenanceError(f"{target.name} at {location}: {exc}") from None
    floor: Floor = done["floor"]
    return MaintenanceReport(
        table=target.name,
        location=location,
        uri=target.uri,
        role=target.role,
        dry_run=dry_run,
        version_before=done["version_before"],
        version_after=done["version_after"],
        retention_floor_version=floor.oldest,
        floor_set_by=floor.set_by(),
        replica_floor_version=floor.replica_floor,
        pinned_versions=[p.describe() for p in floor.pins],
        compaction=done["compaction"],
        vacuum=done["vacuum"],
        checkpoint=done["checkpoint"],
        log_cleanup=done["log_cleanup"],
        settings=settings.model_dump(mode="json"),
        seconds=round(time.perf_counter() - t0, 3),
    )
