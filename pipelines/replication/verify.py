"""Replica verification: per run, of what the sync copied; weekly, of the whole table.

Per run (:func:`verify_copy`), the cost follows the change: every data file the copied
versions reference is checked on the replica against the source's log at those versions (its
size) and against the MD5 of the bytes the sync streamed from the source; the replica's
commits of those versions against the source's; and the partitions those commits touched are
read once from the replica (their rows are counted against the log's ``numRecords`` and
handed back for the Great Expectations check). Nothing older is read, so an older partition
altered on the replica behind the sync's back is *not* seen here: that is the job of
:func:`compare_tables`, the full comparison run on its own weekly schedule, which streams both
tables file by file (memory bounded by one data file) and compares each partition's row count
and an order-independent content hash.

Every byte either reads goes through :mod:`pipelines.lake.storage`, whose counter says how
many came from each side; the source's side crosses clouds and is egress. The snapshots' file
lists come from delta-rs reading the logs (not counted: logs, not data).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.lake.delta import open_table
from pipelines.lake.storage import (
    Storage,
    bytes_read,
    bytes_read_since,
    bytes_under,
    md5_hex,
    open_storage,
)
from pipelines.replication.deltalog import commit_path, log_path
from pipelines.replication.plan import CopiedChanges

PartitionKey = tuple[tuple[str, str | None], ...]


def _key(values: Mapping[str, Any]) -> PartitionKey:
    return tuple(sorted((k, None if v is None else str(v)) for k, v in values.items()))


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    rows: int | None
    partition: PartitionKey


@dataclass
class _Snapshot:
    schema: pa.Schema
    partition_columns: list[str]
    files: list[_File]

    def by_partition(self) -> dict[PartitionKey, list[_File]]:
        out: dict[PartitionKey, list[_File]] = {}
        for f in self.files:
            out.setdefault(f.partition, []).append(f)
        return out


def _snapshot(uri: str, options: Mapping[str, str], version: int | None) -> _Snapshot | None:
    """The live data files of a table at a version, from its log (no data read)."""
    table = open_table(uri, options, version=version)
    if table is None:
        return None
    adds = pa.table(table.get_add_actions(flatten=True))
    parts = list(table.metadata().partition_columns)
    columns = {
        c: pc.cast(adds.column(f"partition.{c}"), pa.string()).to_pylist()
        for c in parts
        if f"partition.{c}" in adds.column_names
    }
    rows = adds.column("num_records").to_pylist() if "num_records" in adds.column_names else None
    files = [
        _File(
            log_path(path, uri),
            int(size),
            None if rows is None or rows[i] is None else int(rows[i]),
            tuple(sorted((c, vals[i]) for c, vals in columns.items())),
        )
        for i, (path, size) in enumerate(
            zip(adds.column("path").to_pylist(), adds.column("size_bytes").to_pylist(), strict=True)
        )
    ]
    return _Snapshot(pa.schema(table.schema().to_arrow()), parts, files)  # type: ignore[arg-type]


def _with_partition(rows: pa.Table, snap: _Snapshot, partition: PartitionKey) -> pa.Table:
    """A data file's rows with its partition columns (kept in the log, not the file) added."""
    values = dict(partition)
    for name in snap.partition_columns:
        if name in rows.column_names:
            continue
        typ = snap.schema.field(name).type
        column = pa.array([values.get(name)] * rows.num_rows, pa.string())
        rows = rows.append_column(pa.field(name, typ), pc.cast(column, typ))
    names = [n for n in snap.schema.names if n in rows.column_names]
    return rows.select(names).cast(pa.schema([snap.schema.field(n) for n in names]))


@dataclass
class CopyCheck:
    """The per-run verification of what one sync copied."""

    version: int | None
    files_checked: int = 0
    partitions: list[dict[str, str | None]] = field(default_factory=list)
    source_rows: int = 0  # the log's numRecords over the touched partitions
    replica_rows: int = 0  # rows read from the replica's files of those partitions
    problems: list[str] = field(default_factory=list)
    source_bytes_read: int = 0  # across clouds: egress
    replica_bytes_read: int = 0
    rows: pa.Table = field(default_factory=lambda: pa.table({}))

    @property
    def passed(self) -> bool:
        """No problem found."""
        return not self.problems

    def metadata(self) -> dict[str, Any]:
        """Run metadata (JSON-ready)."""
        return {
            "version": self.version,
            "files_checked": self.files_checked,
            "partitions_checked": len(self.partitions),
            "source_rows": self.source_rows,
            "replica_rows": self.replica_rows,
            "verify_source_bytes_read": self.source_bytes_read,
            "verify_replica_bytes_read": self.replica_bytes_read,
            "problems": self.problems[:20],
        }


def _source_md5(src: Storage, path: str, streamed: dict[str, str]) -> str | None:
    """The source's MD5 of a file: streamed by this sync, given by the store, or read."""
    if path in streamed:
        return streamed[path]
    info = src.head(path)
    if info is None:
        return None
    if info.md5:
        return info.md5
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in src.read_chunks(path):  # copied by an earlier, interrupted run: read it
        digest.update(chunk)
    return digest.hexdigest()


def _check_commits(check: CopyCheck, dst: Storage, changes: CopiedChanges) -> None:
    """The replica's commits of the copied versions are the source's, byte for byte."""
    for v, md5 in sorted(changes.commit_md5.items()):
        try:
            held = md5_hex(dst.get(commit_path(v)))
        except FileNotFoundError:
            held = None
        if held != md5:
            check.problems.append(
                f"{commit_path(v)}: the replica's commit differs from the source's"
            )


def _replica_file(
    check: CopyCheck,
    src: Storage,
    dst: Storage,
    f: _File,
    unchecked: dict[str, int | None],
    streamed: dict[str, str],
) -> pa.Table | None:
    """Read one live file of a touched partition; check it if copied; count its rows."""
    data = _get(check, dst, f.path)
    if data is None:
        return None
    if f.path in unchecked and not _check_file(
        check, src, f.path, unchecked.pop(f.path), data, streamed
    ):
        return None
    try:
        rows = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        check.problems.append(f"{dst.uri}/{f.path} is not readable Parquet: {exc}")
        return None
    check.source_rows += f.rows if f.rows is not None else rows.num_rows
    check.replica_rows += rows.num_rows
    if f.rows is not None and f.rows != rows.num_rows:
        check.problems.append(f"{dst.uri}/{f.path}: {rows.num_rows} rows, the log says {f.rows}")
    return rows


def verify_copy(
    source_uri: str,
    source_options: Mapping[str, str],
    replica_uri: str,
    replica_options: Mapping[str, str],
    changes: CopiedChanges,
    version: int | None,
) -> CopyCheck:
    """Check on the replica what a sync copied (see the module's docstring)."""
    check = CopyCheck(version)
    before = bytes_read()
    src = open_storage(source_uri, dict(source_options), create=False)
    dst = open_storage(replica_uri, dict(replica_options))
    _check_commits(check, dst, changes)
    snap = _snapshot(replica_uri, replica_options, version)
    if snap is None:
        if version is not None:
            check.problems.append(f"{replica_uri}: no table at version {version}")
        return check
    touched = {_key(p) for p in changes.partitions}
    groups = snap.by_partition()
    if changes.whole_table:
        touched = set(groups)
    unchecked = dict(changes.files)
    frames = []
    for partition in sorted(touched, key=str):
        check.partitions.append(dict(partition))
        for f in groups.get(partition, []):
            rows = _replica_file(check, src, dst, f, unchecked, changes.md5)
            if rows is not None:
                frames.append(_with_partition(rows, snap, partition))
    live = {f.path for f in snap.files}
    for path, size in unchecked.items():
        # A file the copied versions reference but which is no longer live at ``version``
        # (a later copied commit removed it), or a deletion vector / change-data file.
        if path not in live and dst.head(path) is None:
            continue  # vacuumed at the source before the copy: counted missing by the sync
        data = _get(check, dst, path)
        if data is not None:
            _check_file(check, src, path, size, data, changes.md5)
    if frames:
        check.rows = pa.concat_tables(frames)
    counts = bytes_read_since(before)
    check.source_bytes_read = bytes_under(counts, src.uri)
    check.replica_bytes_read = bytes_under(counts, dst.uri)
    return check


def _get(check: CopyCheck, dst: Storage, path: str) -> bytes | None:
    """A replica file's bytes, or None (and a problem) when it is missing."""
    try:
        return dst.get(path)
    except FileNotFoundError:
        check.problems.append(f"{dst.uri}/{path}: referenced by the log, missing on the replica")
        return None


def _check_file(
    check: CopyCheck,
    src: Storage,
    path: str,
    size: int | None,
    data: bytes,
    streamed: dict[str, str],
) -> bool:
    """Size against the log, MD5 against the source's; False (and a problem) if they differ."""
    check.files_checked += 1
    where = f"{path} (version {check.version})"
    if size is not None and len(data) != size:
        check.problems.append(f"{where} has {len(data)} bytes on the replica, the log says {size}")
        return False
    expected = _source_md5(src, path, streamed)
    if expected is not None and md5_hex(data) != expected:
        check.problems.append(f"{where}: the replica's bytes differ from the source's (MD5)")
        return False
    return True  # (no expected MD5: vacuumed at the source since; its size was checked)


@dataclass
class FullCheck:
    """The full comparison of a replica with its source at one version."""

    version: int | None
    partitions: int = 0
    source_rows: int = 0
    replica_rows: int = 0
    mismatched: list[dict[str, str | None]] = field(default_factory=list)
    source_bytes_read: int = 0  # across clouds: egress
    replica_bytes_read: int = 0

    @property
    def passed(self) -> bool:
        """Every partition has the same rows on both sides."""
        return not self.mismatched

    def metadata(self) -> dict[str, Any]:
        """Run metadata (JSON-ready)."""
        return {
            "version": self.version,
            "partitions_compared": self.partitions,
            "source_rows": self.source_rows,
            "replica_rows": self.replica_rows,
            "mismatched_partitions": self.mismatched[:20],
            "source_bytes_read": self.source_bytes_read,
            "replica_bytes_read": self.replica_bytes_read,
        }


def _row_hash(rows: pa.Table) -> int:
    """Sum of the rows' hashes mod 2**64: independent of row order and of file boundaries."""
    import pandas as pd

    rows = rows.select(sorted(rows.column_names))
    # dates as datetime64, not Python objects (which pandas would hash as strings)
    frame = rows.to_pandas(date_as_object=False)
    if frame.empty:
        return 0
    hashes = pd.util.hash_pandas_object(frame, index=False)
    return int(hashes.astype("uint64").sum()) % 2**64


def _partition_digest(storage: Storage, files: list[_File]) -> Iterator[tuple[int, int]]:
    for f in files:
        rows = pq.read_table(io.BytesIO(storage.get(f.path)))
        yield rows.num_rows, _row_hash(rows)


def compare_tables(
    source_uri: str,
    source_options: Mapping[str, str],
    replica_uri: str,
    replica_options: Mapping[str, str],
    version: int | None,
) -> FullCheck:
    """Every partition of source and replica at ``version``: same row count and content hash.

    Streamed one data file at a time on each side (memory bounded by a file, not the table).
    """
    check = FullCheck(version)
    before = bytes_read()
    src = open_storage(source_uri, dict(source_options), create=False)
    dst = open_storage(replica_uri, dict(replica_options))
    ours = _snapshot(source_uri, source_options, version)
    theirs = _snapshot(replica_uri, replica_options, version)
    a = ours.by_partition() if ours else {}
    b = theirs.by_partition() if theirs else {}
    for partition in sorted(set(a) | set(b), key=str):
        check.partitions += 1
        left = [0, 0]
        right = [0, 0]
        for side, storage, files in (
            (left, src, a.get(partition, [])),
            (right, dst, b.get(partition, [])),
        ):
            for n, h in _partition_digest(storage, files):
                side[0] += n
                side[1] = (side[1] + h) % 2**64
        check.source_rows += left[0]
        check.replica_rows += right[0]
        if left != right:
            check.mismatched.append(dict(partition))
    counts = bytes_read_since(before)
    check.source_bytes_read = bytes_under(counts, src.uri)
    check.replica_bytes_read = bytes_under(counts, dst.uri)
    return check


def table_fingerprint(
    uri: str, options: Mapping[str, str], version: int | None = None
) -> tuple[int, str]:
    """Row count and an order-independent content hash of a table at a version.

    Streamed one data file at a time (partition columns included), so memory is one file's.
    """
    snap = _snapshot(uri, options, version)
    if snap is None:
        return 0, "0"
    storage = open_storage(uri, dict(options), create=False)
    rows, total = 0, 0
    for f in snap.files:
        data = pq.read_table(io.BytesIO(storage.get(f.path)))
        data = _with_partition(data, snap, f.partition)
        rows += data.num_rows
        total = (total + _row_hash(data)) % 2**64
    return (0, "0") if rows == 0 else (rows, f"{total:016x}")
