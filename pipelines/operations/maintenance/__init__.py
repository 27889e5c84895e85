"""Table upkeep that respects replicas and model lineage: compaction, VACUUM, checkpoints, logs.

Free of Dagster. Owns the tables upkeep covers and the floor (:mod:`.floor`), VACUUM and log
cleanup (:mod:`.vacuum`), compaction and checkpoints (:mod:`.compaction`) and the upkeep of
one table at one location per call (:mod:`.maintain`: :func:`maintain`), as a source (it may be
rewritten) or as a replica (it may not: see below). The rule that makes it safe:

* **The retention floor.** Every configured replica of the table records the source version it
  holds (its latest commit is the source's commit of that version, byte for byte). The files of
  every version from the oldest replica's version on stay, and so do the log entries from the
  newest checkpoint at or before it: the replica then reaches the source's current version with
  no hole. Every model version still in the registry whose lineage names this table's URI pins
  the one version it was trained on (``ml`` lineage tags); its files and the log entries needed
  to read it stay too (``maintenance.model_pin_days`` lets pins of old versions that hold no
  alias lapse). The report says the floor and which replica or model set it.
* **Compaction** (sources only) rewrites small files (``delta.rewrite_partition``), Z-ordered
  by the columns readers filter on when ``maintenance.z_order`` names them for the table; only
  partitions holding more than one file are rewritten. Each partition's rewrite commits on the
  version it read, so a concurrent ingest, compaction or replace never doubles a row
  (delta-rs's ``optimize`` does not check that, and is not used).
* **VACUUM** deletes a data file only when no kept version references it and its removal (or,
  for a file no commit names, its write) is older than ``maintenance.retention_hours``. It
  writes no commit (delta-rs' and Spark's VACUUM write two), so replicas never see one. Each
  run plans it from the log (the newest checkpoint's tombstones, the commits of a bounded
  window: :func:`log_vacuum`), never listing the table; the orphan sweep (``sweep``, its own
  schedule) lists every object and also finds files no commit names.
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

from pipelines.operations.maintenance.compaction import (
    checkpoint,
    compact,
)
from pipelines.operations.maintenance.floor import (
    HOUR,
    Floor,
    MaintenanceError,
    Pin,
    Target,
    compute_floor,
    default_tracking,
    find_target,
    lineage_pins,
    model_pins,
    registry_pins,
    replica_pins,
    same_table,
    targets,
)
from pipelines.operations.maintenance.maintain import (
    MaintenanceReport,
    maintain,
    maintain_replica,
    maintain_source,
    staged_files,
)
from pipelines.operations.maintenance.vacuum import (
    PLAN_STATE,
    KeepSet,
    VacuumResult,
    keep_set,
    log_cleanup,
    log_vacuum,
    vacuum,
)

__all__ = [
    "HOUR",
    "PLAN_STATE",
    "Floor",
    "KeepSet",
    "MaintenanceError",
    "MaintenanceReport",
    "Pin",
    "Target",
    "VacuumResult",
    "checkpoint",
    "compact",
    "compute_floor",
    "default_tracking",
    "find_target",
    "keep_set",
    "lineage_pins",
    "log_cleanup",
    "log_vacuum",
    "maintain",
    "maintain_replica",
    "maintain_source",
    "model_pins",
    "registry_pins",
    "replica_pins",
    "same_table",
    "staged_files",
    "targets",
    "vacuum",
]
