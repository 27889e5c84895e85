"""Compaction (each partition's rewrite commits on the version it read) and checkpoints."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from pipelines.operations.maintenance.floor import MaintenanceError


def _partitions_with_many_files(table: Any) -> list[list[tuple[str, str, Any]]]:
    """Partition filters of the partitions holding more than one file (all: ``[[]]``).

    A partition holding a clustered file (grouped by a keyed customer bucket, written by the
    closed day's rewrite: :mod:`pipelines.lake.delta.cluster`) is left alone: merging its
    files would make an erasure rewrite the whole partition again.
    """
    from pipelines.lake.delta.cluster import is_clustered

    columns = table.metadata().partition_columns
    adds = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    paths = [str(p) for p in adds.get("path", [])]
    if not columns:
        return [[]] if len(paths) > 1 and not any(map(is_clustered, paths)) else []
    counts: dict[tuple[Any, ...], int] = {}
    clustered: set[tuple[Any, ...]] = set()
    keys = [adds.get(f"partition.{c}", []) for c in columns]
    for values, path in zip(zip(*keys, strict=True), paths, strict=True):
        counts[values] = counts.get(values, 0) + 1
        if is_clustered(path):
            clustered.add(values)
    return [
        [(c, "=", _partition_text(v)) for c, v in zip(columns, values, strict=True)]
        for values, n in sorted(counts.items(), key=lambda kv: str(kv[0]))
        if n > 1 and values not in clustered
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
