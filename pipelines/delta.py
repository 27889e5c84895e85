"""Delta table I/O with deltalake (delta-rs): the no-JVM path for ingest, sync and small reads.

Tables are addressed by URI plus deltalake storage options, as :mod:`pipelines.config` gives
them. Partition writes replace exactly their partition (a predicate overwrite), so re-running
a partition is idempotent.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError


def deltalake_target(uri: str, options: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """URI and options deltalake should use; GCS emulators go through OpenDAL's JSON API."""
    opts = dict(options)
    endpoint = opts.pop("GCS_EMULATOR_ENDPOINT", None)
    if uri.startswith("gs://") and endpoint:
        parsed = urlparse(uri)
        return f"opendal+gcs://{parsed.netloc}{parsed.path}", {
            "opendal.endpoint": endpoint,
            "opendal.allow_anonymous": "true",
            "opendal.disable_vm_metadata": "true",
            "opendal.disable_config_load": "true",
        }
    return uri, opts


COMMIT_ATTEMPTS = 8


def _is_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, CommitFailedError) or any(
        w in text for w in ("conflict", "already exists", "version", "concurrent")
    )


def sql_literal(value: object) -> str:
    """A value as a SQL literal for a delta-rs predicate."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat()}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return str(value)


def partition_predicate(partition: Mapping[str, object]) -> str:
    """``col = 'v' AND …`` for a partition spec."""
    return " AND ".join(f"{k} = {sql_literal(v)}" for k, v in partition.items())


def open_table(
    uri: str, options: Mapping[str, str], version: int | None = None
) -> DeltaTable | None:
    """The table at ``uri`` (at ``version`` if given), or None when there is none."""
    target, opts = deltalake_target(uri, options)
    try:
        return DeltaTable(target, storage_options=opts or None, version=version)
    except TableNotFoundError:
        return None


def table_version(uri: str, options: Mapping[str, str]) -> int | None:
    """Latest version of the table, or None when it does not exist."""
    table = open_table(uri, options)
    return None if table is None else table.version()


def table_rows(uri: str, options: Mapping[str, str]) -> int:
    """Number of rows of the table's latest version, from the log's file statistics."""
    table = open_table(uri, options)
    if table is None:
        return 0
    adds = table.get_add_actions(flatten=True)
    return int(pc.sum(pa.chunked_array(adds.column("num_records"))).as_py() or 0)


def write_partition(
    uri: str,
    data: pa.Table,
    partition: Mapping[str, object],
    options: Mapping[str, str],
    *,
    partition_by: list[str] | None = None,
    target_file_size: int | None = None,
) -> int:
    """Replace exactly one partition of a table with ``data``; return the new version.

    The table is created empty first when absent: two first writers racing on a predicate
    overwrite of a missing table could otherwise both land their rows (a concurrency test
    failed 3 times in 10).
    Re-running with the same data leaves the same rows.
    """
    target, opts = deltalake_target(uri, options)
    cols = partition_by or list(partition)
    if target.startswith("opendal+"):
        # GCS emulator only (real GCS goes through gs://): fake-gcs keeps the '=' of Hive
        # partition folders percent-encoded in the key it stores, so a partitioned table
        # cannot be read back. Unpartitioned, the predicate overwrite still replaces exactly
        # the partition's rows. Files stay under 5 MiB, the emulator's upload limit here.
        cols = []
        target_file_size = target_file_size or 4 * 1024 * 1024
    _create_if_absent(target, opts, data.schema, cols)
    # Another writer may commit first: the write is a partition replace, so doing it again on
    # the new version is still exact.
    _retry_on_conflict(
        lambda: write_deltalake(
            target,
            data,
            mode="overwrite",
            predicate=partition_predicate(partition),
            partition_by=cols or None,
            storage_options=opts or None,
            target_file_size=target_file_size,
            schema_mode="merge",
        )
    )
    version = table_version(uri, options)
    assert version is not None
    return version


def _retry_on_conflict(action: Callable[[], object]) -> None:
    """Run ``action``, again (with a growing, jittered pause) when it lost a commit race."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            action()
            return
        except (CommitFailedError, DeltaError) as exc:
            if attempt == COMMIT_ATTEMPTS - 1 or not _is_conflict(exc):
                raise
            time.sleep(0.05 * (attempt + 1) + random.random() * 0.1)


def _create_if_absent(
    target: str, opts: Mapping[str, str], schema: pa.Schema, partition_by: list[str]
) -> None:
    def create() -> None:
        try:
            DeltaTable(target, storage_options=dict(opts) or None)
            return
        except TableNotFoundError:
            pass
        # mode="ignore": if another writer created it between our look and our create, the
        # create fails as a conflict or does nothing, and the retry finds their table
        DeltaTable.create(
            target,
            schema,
            mode="ignore",
            partition_by=partition_by or None,
            storage_options=dict(opts) or None,
        )

    _retry_on_conflict(create)


def read_partition(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object] | None = None,
    columns: list[str] | None = None,
    version: int | None = None,
) -> pa.Table:
    """Rows of a table (of one partition if given), as Arrow; an empty table if none."""
    table = open_table(uri, options, version=version)
    if table is None:
        return pa.table({})
    if deltalake_target(uri, options)[0].startswith("opendal+"):
        # pyarrow's filesystem bridge cannot reach OpenDAL stores; DataFusion in delta-rs can.
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        where = f" WHERE {partition_predicate(partition)}" if partition else ""
        reader = QueryBuilder().register("t", table).execute(f"SELECT {cols} FROM t{where}")
        got = pa.RecordBatchReader.from_stream(reader).read_all()
        schema = pa.schema(table.schema().to_arrow())
        if columns:
            schema = pa.schema([schema.field(c) for c in columns])
        return got.cast(schema)  # DataFusion answers with view types; keep the table's
    filters = [(k, "=", v) for k, v in (partition or {}).items()] or None
    return table.to_pyarrow_table(filters=filters, columns=columns)  # type: ignore[arg-type]
