"""Delta rewrites: compaction, Z-ordering and clustering of a partition, on the version read.

A rewrite's commit is made on the version its rows were read from (:func:`rewrite_partition`),
so runs rewriting the same partition at once never double a row. A clustered rewrite groups
the rows into files by a keyed customer bucket (:mod:`.cluster`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction, RemoveAction

from pipelines.lake.delta.cluster import Clustering, all_clustered, file_name, split_by_bucket
from pipelines.lake.delta.commit import (
    COMMIT_ATTEMPTS,
    COMMIT_MARK,
    HOOKS,
    _is_conflict,
    _put_file,
    discard_files,
    stats_columns_of,
)
from pipelines.lake.delta.read import (
    _partition_value,
    _query,
    deltalake_target,
    has_deletion_vectors,
    open_table,
    sql_literal,
)
from pipelines.lake.storage import open_storage


def compact_partition(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    above_files: int,
    cluster: Clustering | None = None,
) -> bool:
    """Rewrite one partition's files into few when it has more than ``above_files``.

    See :func:`rewrite_partition`: the commit is made on the version the rows were read from,
    so runs compacting the same partition at once never double a row. With ``cluster`` the
    partition is rewritten, grouped by bucket, whenever a file of it is not clustered yet.
    """
    values = [(k, "=", _partition_value(v)) for k, v in partition.items()]
    return (
        rewrite_partition(uri, options, values, above_files=above_files, cluster=cluster)
        is not None
    )


# Rows per file a rewrite writes: about 200 MB of bronze in memory at most, whatever the
# partition's size (the rows stream from the old files into the new ones).
REWRITE_FILE_ROWS = 1_000_000


def rewrite_partition(
    uri: str,
    options: Mapping[str, str],
    filters: list[tuple[str, str, str]],
    *,
    above_files: int = 1,
    z_order: tuple[str, ...] | list[str] = (),
    target_size: int | None = None,
    file_rows: int = REWRITE_FILE_ROWS,
    table: DeltaTable | None = None,
    cluster: Clustering | None = None,
    reason: str = "compaction",
) -> dict[str, int] | None:
    """Rewrite the files of one partition (``filters``; ``[]``: the whole table) into few.

    Returns the files removed and added, or None when the partition holds ``above_files``
    files or fewer. Rows are read from one version of the table and the commit is made on
    that version (delta-rs checks it against every commit since): a concurrent compaction,
    replace or delete of the same files fails it, and it is tried again from the new version.
    delta-rs's own ``optimize`` does not do that check (deltalake 1.6: three processes
    compacting one partition at once tripled its rows), so it is not used. The added files
    carry ``dataChange`` false: no row changes. With ``z_order`` the partition's rows are
    sorted along a Z-curve of those columns (held in memory at once: a maintenance option).
    ``target_size`` (bytes) sets the rows per new file from the old files' bytes per row.
    ``table``, when given, is brought to the latest version and used (a caller rewriting many
    partitions replays the log once, not once a partition). With ``cluster`` the rows are
    grouped into ``k`` files by a keyed bucket (``k`` from the partition's bytes and the
    clustering's target size); a partition whose files are all clustered is left as it is,
    and one holding any other file is rewritten whatever ``above_files`` says (``k`` of 1: a
    plain compaction, by ``above_files``). Rows hidden by a deletion vector are not read: the
    new files no longer hold them (an erasure's purge). ``reason`` is the commit's mark.
    """
    if cluster is not None and z_order:
        raise ValueError("a rewrite either clusters by bucket or Z-orders, not both")
    target, opts = deltalake_target(uri, options)
    for attempt in range(COMMIT_ATTEMPTS):
        if table is None:
            table = DeltaTable(target, storage_options=dict(opts) or None)
        else:
            table.update_incremental()
        adds = pa.table(table.get_add_actions(flatten=True))
        for col, _, value in filters:
            column = pc.cast(adds.column(f"partition.{col}"), pa.string())
            adds = adds.filter(pc.equal(column, value))
        buckets = (
            1 if cluster is None else cluster.buckets_for(pc.sum(adds["size_bytes"]).as_py() or 0)
        )
        grouping = cluster if buckets > 1 else None  # one bucket: a plain compaction
        if grouping is not None:
            if all_clustered(adds["path"].to_pylist()):
                return None
        elif adds.num_rows <= above_files:
            return None
        if target_size:
            total = pc.sum(adds["size_bytes"]).as_py() or 1
            rows = pc.sum(adds["num_records"]).as_py() or 1
            file_rows = max(1, min(file_rows, target_size * rows // total))
        staged = _rewrite_files(
            uri, options, table, filters, z_order, file_rows, (grouping, buckets)
        )
        try:
            table.create_write_transaction(
                list[AddAction | RemoveAction](staged),
                mode="overwrite",
                schema=pa.schema(table.schema().to_arrow()),  # type: ignore[arg-type]
                partition_by=table.metadata().partition_columns or None,
                partition_filters=filters or None,  # type: ignore[arg-type]
                commit_properties=CommitProperties(
                    custom_metadata={
                        COMMIT_MARK: reason,
                        **({"lakehouse.clustered_buckets": str(buckets)} if grouping else {}),
                    }
                ),
                post_commithook_properties=HOOKS,
            )
        except (CommitFailedError, DeltaError) as exc:
            discard_files(uri, options, staged)
            if attempt == COMMIT_ATTEMPTS - 1 or not _is_conflict(exc):
                raise
            time.sleep(0.05 * (attempt + 1) + random.random() * 0.1)
            continue
        return {"files_removed": adds.num_rows, "files_added": len(staged)}
    return None


def _rewrite_files(
    uri: str,
    options: Mapping[str, str],
    table: DeltaTable,
    filters: list[tuple[str, str, str]],
    z_order: tuple[str, ...] | list[str],
    file_rows: int,
    clustered: tuple[Clustering | None, int] = (None, 1),
) -> list[AddAction]:
    """The partition's rows of ``table``'s version as new staged files (``dataChange`` false).

    ``clustered``: a clustering and its ``k``: each file then holds the rows of one bucket.
    """
    cols = list(table.metadata().partition_columns)
    values = {c: v for c, _, v in filters}
    folder = "/".join(f"{k}={quote(values[k], safe='-_.')}" for k in cols if k in values)
    store = open_storage(uri, dict(options))
    full = pa.schema(table.schema().to_arrow())  # type: ignore[arg-type]
    schema = pa.schema([f for f in full if f.name not in cols])
    where = None
    for col, _, value in filters:
        test = pc.field(col) == pc.scalar(value).cast(full.field(col).type)
        where = test if where is None else where & test
    staged: list[AddAction] = []

    cluster, k = clustered
    stats_columns = stats_columns_of(table)

    def flush(rows: pa.Table, bucket: int | None = None) -> None:
        name = None if bucket is None else file_name(bucket, k)
        rows = rows.select(schema.names).cast(schema)
        add = _put_file(store, folder, rows, values, name, stats_columns)
        staged.append(
            AddAction(
                path=add.path,
                size=add.size,
                partition_values=add.partition_values,
                modification_time=add.modification_time,
                data_change=False,
                stats=add.stats,
            )
        )

    try:
        # pyarrow cannot reach OpenDAL (the GCS emulator's adapter) nor apply deletion
        # vectors: one query through DataFusion, which does both
        via_query = deltalake_target(uri, options)[0].startswith("opendal+")
        via_query = via_query or has_deletion_vectors(table)
        if via_query:
            clause = " AND ".join(f"{c} = {sql_literal(v)}" for c, _, v in filters)
            batches: Iterable[pa.Table] = [_query(table, None, clause or None)]
        else:
            dataset = table.to_pyarrow_dataset(partitions=filters or None)
            batches = (pa.Table.from_batches([b]) for b in dataset.to_batches(filter=where))
        if cluster is not None:
            _group_by_bucket(batches, cluster, k, file_rows, flush)
            return staged
        if z_order or via_query:
            listed = list(batches)
            rows = pa.concat_tables(listed) if listed else dataset.schema.empty_table()
            if z_order:
                rows = rows.take(z_order_indices(rows, list(z_order)))
            for lo in range(0, max(rows.num_rows, 1), file_rows):
                flush(rows.slice(lo, file_rows))
            return staged
        held: list[pa.Table] = []
        count = 0
        for batch in batches:
            held.append(batch)
            count += batch.num_rows
            if count >= file_rows:
                flush(pa.concat_tables(held))
                held, count = [], 0
        if held or not staged:
            flush(pa.concat_tables(held) if held else dataset.schema.empty_table())
    except BaseException:
        discard_files(uri, options, staged)
        raise
    return staged


def _group_by_bucket(
    batches: Iterable[pa.Table],
    cluster: Clustering,
    k: int,
    file_rows: int,
    flush: Callable[[pa.Table, int], None],
) -> None:
    """Each bucket's rows held until a file's worth, then written: memory is k files at most."""
    held: dict[int, list[pa.Table]] = {}

    def due(last: bool) -> None:
        for bucket in sorted(held):
            if last or sum(p.num_rows for p in held[bucket]) >= file_rows:
                flush(pa.concat_tables(held.pop(bucket)), bucket)

    for rows in batches:
        for bucket, part in split_by_bucket(rows, cluster.bucket_of(rows, k)).items():
            held.setdefault(bucket, []).append(part)
        due(last=False)
    due(last=True)


def z_order_indices(rows: pa.Table, columns: list[str]) -> pa.Array:
    """Row order along a Z-curve of ``columns``: their dense ranks' bits interleaved."""
    if not rows.num_rows:
        return pa.array([], pa.int64())
    bits = 63 // len(columns)
    ranks = []
    for name in columns:
        rank = pc.rank(rows[name], sort_keys="ascending", tiebreaker="dense")
        r = rank.to_numpy().astype(np.uint64) - np.uint64(1)
        top = int(r.max()) if len(r) else 0
        if top >= 1 << bits:  # scale into the bits a column gets, keeping order
            r = (r * np.uint64((1 << bits) - 1)) // np.uint64(top)
        ranks.append(r)
    key = np.zeros(rows.num_rows, np.uint64)
    for b in range(bits - 1, -1, -1):
        for r in ranks:
            key = (key << np.uint64(1)) | ((r >> np.uint64(b)) & np.uint64(1))
    return pa.array(np.argsort(key, kind="stable"))


NEVER = 2**62  # ``above_files`` that no partition exceeds


def cluster_partitions(
    uri: str,
    options: Mapping[str, str],
    partitions: Sequence[Mapping[str, object]],
    cluster: Clustering,
) -> dict[str, int]:
    """Group each partition's files by ``cluster``'s bucket (a written day of silver).

    A partition already clustered, or whose ``k`` is 1, is left alone; the log is replayed once
    for all.
    """
    out = {"partitions": 0, "files_removed": 0, "files_added": 0}
    table = open_table(uri, options)
    for partition in partitions if table is not None else ():
        values = [(k, "=", _partition_value(v)) for k, v in partition.items()]
        # k of 1 leaves the partition as written (no plain compaction behind the caller's back)
        got = rewrite_partition(
            uri, options, values, above_files=NEVER, cluster=cluster, table=table
        )
        if got is not None:
            out["partitions"] += 1
            out["files_removed"] += got["files_removed"]
            out["files_added"] += got["files_added"]
    return out
