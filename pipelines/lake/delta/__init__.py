"""Delta tables with deltalake (delta-rs): the no-JVM path for ingest, sync and small reads.

Owns reads (:mod:`.read`: opening a table, its versions, rows, files and queries), writes and
exactly-once commits (:mod:`.commit`: staged files committed under a transaction id) and
rewrites (:mod:`.rewrite`: compaction and Z-order, committed on the version read). Callers use
the names exported here: ``from pipelines.lake import delta``, then ``delta.read_partition``.

The submodules load on first use (PEP 562): a reader (``lakehouse status``) does not pay for the
writers' imports (pyarrow.parquet, delta-rs's transactions).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.lake.delta.cluster import (
        Clustering,
        ClusteringError,
        bronze_clustering,
        is_clustered,
        silver_clustering,
    )
    from pipelines.lake.delta.commit import (
        COMMIT_MARK,
        MissingFileError,
        append_rows,
        commit_files,
        discard_files,
        file_stats,
        missing_files,
        settle_native_writes,
        stage_files,
        stats_json,
        version_of,
        write_partition,
        write_range,
    )
    from pipelines.lake.delta.lineage import commit_inputs, inputs_metadata, upstream_versions
    from pipelines.lake.delta.read import (
        PartitionReader,
        TableError,
        commit_adds,
        date_range_predicate,
        deltalake_target,
        file_actions,
        has_deletion_vectors,
        open_table,
        partition_dates,
        partition_files,
        partition_predicate,
        partition_rows,
        python_rows,
        read_between,
        read_partition,
        read_range,
        read_rows,
        read_values,
        sql_literal,
        table_rows,
        table_version,
        tables_kept_open,
    )
    from pipelines.lake.delta.rewrite import (
        cluster_partitions,
        compact_partition,
        rewrite_partition,
        z_order_indices,
    )

_MODULE_OF = {
    **dict.fromkeys(
        (
            "Clustering",
            "ClusteringError",
            "bronze_clustering",
            "is_clustered",
            "silver_clustering",
        ),
        "cluster",
    ),
    **dict.fromkeys(("commit_inputs", "inputs_metadata", "upstream_versions"), "lineage"),
    **dict.fromkeys(
        (
            "COMMIT_MARK",
            "MissingFileError",
            "commit_files",
            "discard_files",
            "file_stats",
            "missing_files",
            "settle_native_writes",
            "stage_files",
            "stats_json",
            "version_of",
            "write_partition",
            "append_rows",
            "write_range",
        ),
        "commit",
    ),
    **dict.fromkeys(
        (
            "PartitionReader",
            "TableError",
            "date_range_predicate",
            "commit_adds",
            "deltalake_target",
            "file_actions",
            "has_deletion_vectors",
            "open_table",
            "partition_dates",
            "partition_files",
            "partition_predicate",
            "partition_rows",
            "python_rows",
            "read_between",
            "read_partition",
            "read_range",
            "read_rows",
            "read_values",
            "sql_literal",
            "table_rows",
            "table_version",
            "tables_kept_open",
        ),
        "read",
    ),
    **dict.fromkeys(
        ("cluster_partitions", "compact_partition", "rewrite_partition", "z_order_indices"),
        "rewrite",
    ),
}


def __getattr__(name: str) -> Any:
    """An exported name, its submodule imported on first use."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "COMMIT_MARK",
    "Clustering",
    "ClusteringError",
    "MissingFileError",
    "PartitionReader",
    "TableError",
    "append_rows",
    "bronze_clustering",
    "cluster_partitions",
    "commit_adds",
    "commit_files",
    "commit_inputs",
    "compact_partition",
    "date_range_predicate",
    "deltalake_target",
    "discard_files",
    "file_actions",
    "file_stats",
    "has_deletion_vectors",
    "inputs_metadata",
    "is_clustered",
    "missing_files",
    "open_table",
    "partition_dates",
    "partition_files",
    "partition_predicate",
    "partition_rows",
    "python_rows",
    "read_between",
    "read_partition",
    "read_range",
    "read_rows",
    "read_values",
    "rewrite_partition",
    "settle_native_writes",
    "silver_clustering",
    "sql_literal",
    "stage_files",
    "stats_json",
    "table_rows",
    "table_version",
    "tables_kept_open",
    "upstream_versions",
    "version_of",
    "write_partition",
    "write_range",
    "z_order_indices",
]
