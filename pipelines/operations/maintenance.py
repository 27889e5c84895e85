"""Table upkeep that respects replicas and model lineage: compaction, VACUUM, checkpoints, logs.

Free of Dagster. One table at one location per call (:func:`maintain`), as a source (it may be
rewritten) or as a replica (it may not: see below). The rule that makes it safe:

* **The retention floor.** Every configured replica of the table records the source version it
  holds (its latest commit is the source's commit of that version, byte for byte). The files of
  every version from the oldest replica's version on stay, and so do the log entries from the
  newest checkpoint at or before it: the replica then reaches the source's current version with
  no hole. Every model version still in the registry whose lineage names this table's URI pins
  the one version it was trained on (``ml`` lineage tags); its files and the log entries needed
  to read it stay too (``maintenance.model_pin_days`` lets pins of old versions that hold no
  alias lapse). The report says the floor and which replica or model set it.
* **Compaction** (sources only) rewrites small files
(:func:`pipelines.lake.delta.rewrite_partition`),
  Z-ordered by the columns readers filter on when ``maintenance.z_order`` names them for the
  table; only partitions holding more than one file are rewritten. Each partition's rewrite
  commits on the version it read, so a concurrent ingest, compaction or replace never doubles a
  row (delta-rs's ``optimize`` does not check that, and is not used).
* **VACUUM** deletes a data file only when no kept version references it and its removal (or,
  for a file no commit names, its write) is older than ``maintenance.retention_hours``. It
  writes no commit (delta-rs' and Spark's VACUUM write two), so replicas never see one.
* **Checkpoint and log cleanup** (sources only): a checkpoint at the current version, then the
  commits, checkpoints and ``.crc`` files before the newest checkpoint at or before the floor
  and older than ``maintenance.log_retention_hours`` are deleted. delta-rs ``cleanup_metadata``
  is not used: it has no version bound, only an age, and would cut a lagging replica off.
* **A replica never writes its own version**: the sync mirrors the source's version numbers,
  so a replica's own compaction or checkpoint would be a divergence. Its upkeep only mirrors
  the source's: it deletes data files that no version it keeps references and that the source
  has already vacuumed, and log entries older than both the source's oldest log entry and the
  replica's newest (mirrored) checkpoint. Checkpoints reach it through the sync.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from pipelines.lake.config import LakeConfig, LakeLocation, MaintenanceSettings, Replica
from pipelines.lake.storage import ObjectInfo, Storage, StorageError, open_storage
from pipelines.replication.deltalog import (
    LOG,
    SyncError,
    check_protocols,
    checkpoint_state,
    commit_path,
    complete_checkpoint,
    latest_version,
    list_log,
    parse_commit,
)

HOUR = 3600.0


class MaintenanceError(RuntimeError):
    """Upkeep cannot go on; the message names the table, the location and why."""


@dataclass(frozen=True)
class Pin:
    """A version whose files must stay, and who needs it."""

    version: int
    kind: str  # "replica" (every version from here on) or "model" (this version alone)
    name: str  # the replica's asset name, or model name and version
    uri: str = ""

    def describe(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """One table at one location that upkeep runs on."""

    name: str  # asset-style name: the table, or the replica's name
    table: str
    location: LakeLocation
    replica: Replica | None = None  # set when the table here is a replica

    @property
    def uri(self) -> str:
        """The table's URI (resolved when asked: a root may name an environment variable)."""
        return self.replica.target_uri if self.replica else self.location.table_uri(self.table)

    @property
    def role(self) -> str:
        """``source`` (may be rewritten) or ``replica`` (mirrors its source only)."""
        return "replica" if self.replica else "source"


def targets(cfg: LakeConfig) -> list[Target]:
    """Every table and location upkeep runs on: each table where it lives, each replica."""
    from pipelines.lake.tables import TABLES, Role

    out: list[Target] = []
    for spec in TABLES.values():
        homes = [cfg.home] if spec.role == Role.ML_HOME else list(cfg.locations.values())
        out.extend(Target(spec.name, spec.name, loc) for loc in homes)
    for r in cfg.replicas():
        out.append(Target(r.name, r.table, r.target, r))
    return out


def find_target(cfg: LakeConfig, table: str, location: str) -> Target:
    """The target named ``table`` (a registered table or a replica) at ``location``."""
    cfg.location(location)  # an unknown location is named with the known ones
    found = [t for t in targets(cfg) if t.location.name == location]
    for t in found:
        if table in (t.name, t.table) and (t.replica is None or table == t.name):
            return t
    known = ", ".join(sorted(t.name for t in found))
    raise MaintenanceError(
        f"table {table!r} does not live at location {location!r}; there: {known}"
    )


@dataclass
class Floor:
    """The retention floor: kept versions and who keeps them."""

    current: int
    replica_floor: int  # every version from here on keeps its files
    models: list[Pin] = field(default_factory=list)  # single versions kept besides
    pins: list[Pin] = field(default_factory=list)

    @property
    def oldest(self) -> int:
        """The oldest version whose files stay."""
        return min([self.replica_floor, *(p.version for p in self.models)])

    def set_by(self) -> dict[str, Any]:
        """Which replica or model set the oldest kept version (or the current version)."""
        oldest = [p for p in self.pins if p.version == self.oldest]
        if not oldest:
            return {"kind": "current_version", "name": "", "version": self.current}
        return oldest[0].describe()


def compute_floor(current: int, pins: Iterable[Pin]) -> Floor:
    """The floor of a table at ``current``: replicas keep a range, models single versions."""
    pins = sorted(pins, key=lambda p: (p.version, p.kind, p.name))
    replica = [p.version for p in pins if p.kind == "replica"]
    models = [p for p in pins if p.kind == "model" and p.version <= current]
    return Floor(
        current=current,
        replica_floor=min([current, *replica]),
        models=models,
        pins=[p for p in pins if p.version <= current],
    )


def replica_pins(
    cfg: LakeConfig, target: Target, options_for: Callable[[LakeLocation], dict[str, str]]
) -> list[Pin]:
    """The version each configured replica of ``target`` holds (replicas not yet made: none)."""
    pins = []
    for r in cfg.replicas():
        if r.table != target.table or r.source.name != target.location.name:
            continue
        try:
            store = open_storage(r.target_uri, options_for(r.target), create=False)
        except StorageError as exc:
            if "does not exist" in str(exc):
                continue  # not made yet: its first sync starts from the source's checkpoint
            raise
        version = latest_version(store)
        if version is not None:
            pins.append(Pin(version, "replica", r.name, r.target_uri))
    return pins


def same_table(a: str, b: str) -> bool:
    """Whether two table URIs name the same table (trailing slashes, file:// aside)."""

    def norm(uri: str) -> str:
        return uri.removeprefix("file://").rstrip("/")

    return norm(a) == norm(b)


def lineage_pins(
    versions: Iterable[Any],
    uri: str,
    model_name: str,
    settings: MaintenanceSettings,
    now: float | None = None,
) -> list[Pin]:
    """Pins from registered model versions whose lineage tags name ``uri``.

    ``versions`` are MLflow ``ModelVersion`` objects (``tags``, ``aliases``,
    ``creation_timestamp`` in ms). With ``model_pin_days`` set, a version older than that and
    holding no alias no longer pins.
    """
    now = time.time() if now is None else now
    pins = []
    for mv in versions:
        tags = dict(getattr(mv, "tags", None) or {})
        aliases = list(getattr(mv, "aliases", None) or [])
        created = (getattr(mv, "creation_timestamp", None) or 0) / 1000
        if (
            settings.model_pin_days is not None
            and not aliases
            and now - created > settings.model_pin_days * 86400
        ):
            continue
        for key, value in tags.items():
            if not (key.startswith("lineage.") and key.endswith(".uri")):
                continue
            version = tags.get(key[: -len(".uri")] + ".version")
            if same_table(value, uri) and version is not None and str(version).isdigit():
                pins.append(Pin(int(version), "model", f"{model_name} v{mv.version}", value))
    return pins


def model_pins(tracking: Any, uri: str, settings: MaintenanceSettings) -> list[Pin]:
    """Pins of every version of the tracking location's model still in the registry.

    An unreachable registry is an error: upkeep never deletes what it could not check.
    """
    try:
        with tracking.session() as client:
            versions = client.search_model_versions(f"name = '{tracking.model_name}'")
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MaintenanceError(
            f"model registry {tracking.registry}: cannot list the versions of "
            f"{tracking.model_name!r} ({text[:200]}); no file is deleted without that check"
        ) from None
    return lineage_pins(versions, uri, tracking.model_name, settings)


def registry_pins(
    tracking: Any | None, settings: MaintenanceSettings
) -> Callable[[str], list[Pin]]:
    """``model_pins_of`` for :func:`maintain` from a tracking location (None: no registry)."""
    if tracking is None:
        return lambda uri: []
    return lambda uri: model_pins(tracking, uri, settings)


def default_tracking(cfg: LakeConfig) -> Any | None:
    """The registry the CLI checks for model lineage pins.

    ``MLFLOW_TRACKING_URI`` (or the emulated environment's ``LAKEHOUSE_MLFLOW_TRACKING_URI``),
    else the local store if it exists (none: no models are registered, nothing is pinned).
    """
    import os

    from pipelines.lake.config import lake_home
    from pipelines.ml.tracking import Tracking

    uri = os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("LAKEHOUSE_MLFLOW_TRACKING_URI")
    if not uri:
        db = lake_home() / ".mlflow" / "mlflow.db"
        if not db.exists():
            return None
        uri = f"sqlite:///{db}"
    return Tracking(
        tracking_uri=uri,
        model_name=cfg.ml.model_name,
        experiment=cfg.ml.experiment,
        registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or None,
        token=os.environ.get("MLFLOW_TRACKING_TOKEN") or None,
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


def _partitions_with_many_files(table: Any) -> list[list[tuple[str, str, Any]]]:
    """Partition filters of the partitions holding more than one file (all: ``[[]]``)."""
    columns = table.metadata().partition_columns
    adds = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    if not columns:
        return [[]] if len(adds.get("path", [])) > 1 else []
    counts: dict[tuple[Any, ...], int] = {}
    keys = [adds.get(f"partition.{c}", []) for c in columns]
    for values in zip(*keys, strict=True):
        counts[values] = counts.get(values, 0) + 1
    return [
        [(c, "=", _partition_text(v)) for c, v in zip(columns, values, strict=True)]
        for values, n in sorted(counts.items(), key=lambda kv: str(kv[0]))
        if n > 1
    ]


def _first(exc: BaseException) -> str:
    """The first line of an error, bounded (delta-rs errors carry whole plans)."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _partition_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def compact(
    uri: str,
    options: Mapping[str, str],
    *,
    z_order: Sequence[str] = (),
    target_size: int | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Rewrite small files (Z-ordered by ``z_order`` when given), partition by partition.

    A table delta-rs cannot rewrite (a writer feature it lacks) is reported, not broken.
    """
    from deltalake.exceptions import DeltaError

    from pipelines.lake.delta import TableError, open_table, rewrite_partition

    try:
        table = open_table(uri, options)
    except (
        DeltaError,
        TableError,
    ) as exc:  # a reader feature delta-rs lacks: Spark's OPTIMIZE then
        return {"mode": "none", "skipped": f"delta-rs cannot open this table: {_first(exc)}"}
    if table is None:
        raise MaintenanceError(f"{uri} is not a Delta table")
    t0 = time.perf_counter()
    files_before = len(table.file_uris())
    parts = _partitions_with_many_files(table)
    out: dict[str, Any] = {
        "mode": "z_order" if z_order else "compact",
        "z_order_columns": list(z_order),
        "partitions": len(parts),
        "files_before": files_before,
    }
    if dry_run or not parts:
        return {**out, "files_after": files_before, "seconds": 0.0}
    removed = added = 0
    try:
        for filters in parts:
            got = rewrite_partition(
                uri,
                options,
                filters,
                z_order=tuple(z_order),
                target_size=target_size,
                table=table,
            )
            if got is not None:
                removed += got["files_removed"]
                added += got["files_added"]
        table.update_incremental()
    except DeltaError as exc:
        return {**out, "skipped": f"delta-rs cannot rewrite this table: {_first(exc)}"}
    return {
        **out,
        "files_removed": removed,
        "files_added": added,
        "files_after": len(table.file_uris()),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def checkpoint(uri: str, options: Mapping[str, str], dry_run: bool = False) -> dict[str, Any]:
    """A checkpoint at the current version (delta-rs ``create_checkpoint``)."""
    from deltalake.exceptions import DeltaError

    from pipelines.lake.delta import TableError, open_table

    try:
        table = open_table(uri, options)
    except (DeltaError, TableError) as exc:
        return {"written": False, "skipped": f"delta-rs cannot open this table: {_first(exc)}"}
    if table is None:
        raise MaintenanceError(f"{uri} is not a Delta table")
    if dry_run:
        return {"version": table.version(), "written": False}
    try:
        table.create_checkpoint()
    except DeltaError as exc:
        return {"version": table.version(), "written": False, "skipped": _first(exc)}
    return {"version": table.version(), "written": True}


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
) -> dict[str, Any]:
    """Compact, then VACUUM under the floor, checkpoint, clean the log under the floor.

    The floor is computed from ``pins`` before compaction: the files compaction replaces are
    live at every replica's version, so they stay until the replicas have moved past them.
    ``staged`` gives the files a writer staged and has yet to commit (an ingest batch claimed
    in the ledger): no commit names them yet, and VACUUM keeps them. It is called after the
    table's keep set is read, so a batch claimed meanwhile has files younger than retention.
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
    keep = keep_set(storage, floor)
    keep.current |= staged()
    swept = vacuum(storage, keep, retention_hours=settings.retention_hours, dry_run=dry_run)
    cp = checkpoint(uri, options, dry_run=dry_run)
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
) -> dict[str, Any]:
    """A replica's upkeep: only what its source's upkeep already did, never a commit.

    Data files are deleted when no version the replica keeps needs them and the source has
    already vacuumed them; log entries when they are older than the source's oldest and the
    replica holds a (mirrored) checkpoint after them.
    """
    version = latest_version(storage)
    if version is None:
        raise MaintenanceError(f"{storage.uri} is not a Delta table: its _delta_log has no commit")
    floor = compute_floor(version, pins)
    keep = keep_set(storage, floor)
    at_source = {i.path for i in source.list() if _is_data_object(i.path)}
    swept = vacuum(
        storage,
        keep,
        retention_hours=settings.retention_hours,
        may_delete=lambda info: info.path not in at_source,
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
) -> MaintenanceReport:
    """Upkeep of ``table`` at ``location`` (a registered table or a replica's name).

    ``model_pins_of(uri)`` gives the pins of registered model versions (see
    :func:`model_pins`); ``options_for`` a location's storage options (secrets resolved).
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
            )
        else:
            source = open_storage(
                target.replica.source_uri, options_for(target.replica.source), create=False
            )
            done = maintain_replica(storage, source, pins, settings, dry_run=dry_run)
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
