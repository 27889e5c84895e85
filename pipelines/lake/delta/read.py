"""Delta reads with deltalake (delta-rs): opening a table, its version, rows and files, and queries.

Tables are addressed by URI plus deltalake storage options, as :mod:`pipelines.lake.config` gives
them (:func:`deltalake_target`). Nothing here writes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import DeltaError, TableNotFoundError

from pipelines.lake.config import ADAPTER_OPTION
from pipelines.lake.delta.cluster import is_clustered
from pipelines.lake.storage import Storage, count_read, gcs_emulator_endpoint, open_storage


def deltalake_target(uri: str, options: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """URI and options deltalake should use; the GCS emulator adapter goes through OpenDAL."""
    opts = dict(options)
    endpoint = gcs_emulator_endpoint(opts)
    opts.pop(ADAPTER_OPTION, None)
    opts.pop("GCS_EMULATOR_ENDPOINT", None)
    if endpoint:
        parsed = urlparse(uri)
        return f"opendal+gcs://{parsed.netloc}{parsed.path}", {
            "opendal.endpoint": endpoint,
            "opendal.allow_anonymous": "true",
            "opendal.disable_vm_metadata": "true",
            "opendal.disable_config_load": "true",
        }
    return uri, opts


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


class TableError(RuntimeError):
    """A table whose log cannot be read: the message names the table and, when found, the file."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _bad_log_file(uri: str, options: Mapping[str, str], newest: int = 50) -> str | None:
    """The newest commit file of the table's log that is not JSON lines (None if none is)."""
    try:
        store = open_storage(uri, dict(options))
        names = sorted(
            (i.path for i in store.list("_delta_log/") if i.path.endswith(".json")), reverse=True
        )
        for name in names[:newest]:
            for line in store.get(name).splitlines():
                if line.strip():
                    json.loads(line)
    except ValueError:
        return name
    except Exception:  # the log cannot even be listed: the caller's own error says enough
        return None
    return None


_KEPT = threading.local()


@contextlib.contextmanager
def tables_kept_open() -> Iterator[None]:
    """Within it, this thread's opens of a table at its latest version reuse one table object.

    Each open brings the kept object up to date (``update_incremental``: the log's commits
    since, about 0.3-1.5 ms) instead of loading the log from its last checkpoint (about
    3 ms, and an ingest batch opens its three tables about 15 times). For a long-lived process
    such as the ingest worker; per thread, as delta-rs's table objects are not shared.
    """
    previous = getattr(_KEPT, "tables", None)
    _KEPT.tables = {} if previous is None else previous
    try:
        yield
    finally:
        _KEPT.tables = previous


def latest_table(target: str, opts: Mapping[str, str]) -> DeltaTable:
    """``DeltaTable(target)`` at its latest version (the kept one within :func:`tables_kept_open`).

    Raises delta-rs's ``TableNotFoundError`` when there is no table.
    """
    kept: dict[tuple[str, tuple[tuple[str, str], ...]], DeltaTable] | None = getattr(
        _KEPT, "tables", None
    )
    if kept is None:
        return DeltaTable(target, storage_options=dict(opts) or None)
    key = (target, tuple(sorted(opts.items())))
    table = kept.get(key)
    if table is None:
        table = kept[key] = DeltaTable(target, storage_options=dict(opts) or None)
    else:
        table.update_incremental()
    return table


def open_table(
    uri: str, options: Mapping[str, str], version: int | None = None
) -> DeltaTable | None:
    """The table at ``uri`` (at ``version`` if given), or None when there is none.

    A log delta-rs cannot read (a damaged commit file) raises :class:`TableError` naming the
    table and the file, not delta-rs's bare "Kernel error: Json error".
    """
    target, opts = deltalake_target(uri, options)
    try:
        if version is None:
            return latest_table(target, opts)
        return DeltaTable(target, storage_options=opts or None, version=version)
    except TableNotFoundError:
        return None
    except DeltaError as exc:
        if "json" in str(exc).lower():
            bad = _bad_log_file(uri, options)
            where = f"the log file {bad} is not valid JSON" if bad else "its log cannot be read"
            raise TableError(f"{uri}: {where} ({_first_line(exc)})") from None
        if version is not None:  # a version the table does not have: say which it has
            latest = open_table(uri, options)
            if latest is None:
                return None
            if not 0 <= version <= latest.version():
                raise TableError(
                    f"{uri}: no version {version} (versions 0..{latest.version()})"
                ) from None
        raise


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


def date_scalar(day: dt.date, type_: pa.DataType | None = None) -> pa.Scalar:
    """``day`` as an Arrow date32 scalar (cast to ``type_``), built from its bytes.

    ``pa.scalar(day)`` first asks whether the value is a pandas object, which imports pandas
    (about 0.2 s a reader such as status never needs).
    """
    days = (day - dt.date(1970, 1, 1)).days
    buffer = pa.py_buffer(days.to_bytes(4, "little", signed=True))
    value = pa.Array.from_buffers(pa.date32(), 1, [None, buffer])[0]
    return value if type_ is None or type_ == pa.date32() else value.cast(type_)


def python_rows(rows: pa.Table) -> list[dict[str, object]]:
    """``rows.to_pylist()``, with time-zone-aware timestamps converted without pandas.

    pyarrow converts a zoned timestamp to Python through pandas (about 0.2 s to import): the
    column is read as UTC wall time and given its zone here (UTC, the product's only zone).
    """
    zoned = [f.name for f in rows.schema if pa.types.is_timestamp(f.type) and f.type.tz is not None]
    for name in zoned:
        i = rows.schema.get_field_index(name)
        unit = rows.schema.field(name).type.unit
        rows = rows.set_column(i, name, rows.column(name).cast(pa.timestamp(unit)))
    out = rows.to_pylist()
    for row in out:
        for name in zoned:
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=dt.UTC)
    return out


def add_actions(table: DeltaTable) -> pa.Table:
    """The table's add actions (one row per data file) as a pyarrow table.

    Through the Arrow stream protocol: ``pa.table()`` of delta-rs's table first asks whether it
    is a pandas frame, which imports pandas (about 0.2 s a reader such as status never needs).
    """
    return pa.RecordBatchReader.from_stream(table.get_add_actions(flatten=True)).read_all()


PARTITION_STAT_COLUMNS = ("landing_date", "date", "region")


def file_actions(uri: str, options: Mapping[str, str]) -> pa.Table | None:
    """The data files of the table's latest version, one row each, or None without a table.

    Columns: ``path``, ``size_bytes``, ``modification_time`` (ms), ``num_records`` and
    ``partition.<column>`` for each partition column; read from the log, no data file opened.
    """
    table = open_table(uri, options)
    if table is None:
        return None
    adds = add_actions(table)
    keep = [
        c
        for c in adds.column_names
        if c in ("path", "size_bytes", "modification_time", "num_records")
        or c.startswith("partition.")
    ]
    out = adds.select(keep)
    # a table written without partition columns (by another writer): a file's partition
    # is its date and region statistics where min equals max (only these columns' statistics
    # are read: others may hold personal data)
    for col in PARTITION_STAT_COLUMNS:
        name = f"partition.{col}"
        lo, hi = f"min.{col}", f"max.{col}"
        if name in out.column_names or lo not in adds.column_names or hi not in adds.column_names:
            continue
        same = pc.if_else(
            pc.equal(adds[lo], adds[hi]), adds[lo], pa.nulls(adds.num_rows, adds[lo].type)
        )
        out = out.append_column(name, same)
    return out


def read_partition(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object] | None = None,
    columns: list[str] | None = None,
    version: int | None = None,
    where: Sequence[tuple[str, str, object]] | None = None,
) -> pa.Table:
    """Rows of a table (of one partition if given), as Arrow; an empty table if none.

    ``where``: more ``(column, op, value)`` filters on the rows (``op`` ``=`` or ``in``); the
    files the log's statistics rule out are not opened.
    """
    table = open_table(uri, options, version=version)
    if table is None:
        return pa.table({})
    filters = [(k, "=", v) for k, v in (partition or {}).items()] + list(where or [])
    return _query(table, columns, _sql(filters) if filters else None)


def _sql(filters: Sequence[tuple[str, str, object]]) -> str:
    """Tuple filters (``=`` or ``in``) as a SQL predicate."""
    terms = []
    for column, op, value in filters:
        if op == "in":
            listed = ", ".join(sql_literal(v) for v in value)  # type: ignore[attr-defined]
            terms.append(f"{column} IN ({listed})")
        else:
            terms.append(f"{column} {op} {sql_literal(value)}")
    return " AND ".join(terms)


def date_range_predicate(start: dt.date, end: dt.date, region: str | None = None) -> str:
    """``date`` within ``[start, end]`` (and the region) as SQL (Spark's replaceWhere, delta-rs)."""
    pred = f"date >= {sql_literal(start)} AND date <= {sql_literal(end)}"
    return pred if region is None else f"{pred} AND region = {sql_literal(region)}"


def read_range(
    uri: str,
    options: Mapping[str, str],
    start: dt.date,
    end: dt.date,
    region: str | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Rows of dates ``[start, end]`` (of one region if given), as Arrow; empty if no table.

    The filter is on the partition columns (``date``, ``region``), so only the files of the
    range are read: what a Spark step just replaced, read back without a JVM.
    """
    table = open_table(uri, options)
    if table is None:
        return pa.table({})
    return _query(table, columns, date_range_predicate(start, end, region))


def read_between(
    uri: str,
    options: Mapping[str, str],
    column: str,
    start: dt.date,
    end: dt.date,
    columns: list[str] | None = None,
    version: int | None = None,
) -> pa.Table:
    """Rows whose partition column ``column`` lies in ``[start, end]``; empty if no table.

    Only the files of those partitions are opened (a partition filter), so the cost is the
    range's, not the table's history; rows in no particular order. The bytes of the files read
    (their sizes in the log, an upper bound when only some columns are read) are added to the
    storage layer's counter: delta-rs reads them with its own object store. ``version``: the
    table as of that version (latest if None).
    """
    table = open_table(uri, options, version=version)
    if table is None:
        return pa.table({})
    adds = add_actions(table)
    name = f"partition.{column}"
    if name in adds.column_names and adds.num_rows:
        day = adds.column(name)
        lo, hi = date_scalar(start, day.type), date_scalar(end, day.type)
        inside = pc.and_(pc.greater_equal(day, lo), pc.less_equal(day, hi))
        count_read(uri, int(pc.sum(adds.filter(inside).column("size_bytes")).as_py() or 0))
    elif adds.num_rows:
        count_read(uri, int(pc.sum(adds.column("size_bytes")).as_py() or 0))
    # through DataFusion in delta-rs, as OpenDAL needs anyway: pyarrow.dataset and the pandas
    # it imports cost a small read (health rows, a day's quarantine reasons) about 0.6 s more
    where = f"{column} >= {sql_literal(start)} AND {column} <= {sql_literal(end)}"
    return _query(table, columns, where)


def partition_dates(
    uri: str, options: Mapping[str, str], column: str = "date", version: int | None = None
) -> list[dt.date] | None:
    """The distinct values of the date partition column ``column``, sorted, from the log alone.

    None when there is no table or it is not partitioned by ``column`` (a reader must then
    read the column itself): no data file is opened.
    """
    table = open_table(uri, options, version=version)
    if table is None:
        return None
    adds = add_actions(table)
    name = f"partition.{column}"
    if name not in adds.column_names:
        return None
    days = pc.unique(adds.column(name).cast(pa.date32())).drop_null()
    return sorted(days.to_pylist())


def commit_file(version: int) -> str:
    """The log key of a version's commit, relative to the table's root."""
    return f"_delta_log/{version:020d}.json"


def commit_adds(
    uri: str, options: Mapping[str, str], after: int, upto: int
) -> list[tuple[str, int]]:
    """The files (path as logged, size) the commits after version ``after`` up to ``upto`` added.

    Read from the commits themselves, in order: a file a later commit of the range replaced
    again is listed all the same (it was written).
    """
    store = open_storage(uri, dict(options), create=False)
    out = []
    for version in range(after + 1, upto + 1):
        for action in _commit_actions(store, version):
            add = action.get("add")
            if isinstance(add, dict):
                out.append((str(add["path"]), int(add.get("size", 0))))
    return out


def commit_infos(
    uri: str,
    options: Mapping[str, str],
    upto: int,
    until: Callable[[dict[str, Any]], bool] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Each commit's ``commitInfo`` from version ``upto`` down, newest first, with its ``version``.

    What delta-rs's ``DeltaTable.history()`` returns, for the commits the log still holds. Read
    through the lake's store: ``history()`` keeps Python's GIL while it reads the commits,
    so with a store served from the same process (the S3 emulator of the tests) it never
    returns. The commits are read by their keys, down from ``upto``, without listing the log:
    the first version the log no longer holds (log cleanup removed it and every older one)
    ends the walk. A commit file that is not JSON lines is skipped, as is one without
    commitInfo. ``until``: the walk stops after the first entry it is true of; ``limit``: at
    most that many commits read (a reader that needs the newest few does not pay for the
    table's whole history).
    """
    store = open_storage(uri, dict(options), create=False)
    out = []
    lowest = -1 if limit is None else max(upto - limit, -1)
    for version in range(upto, lowest, -1):
        try:
            actions = _commit_actions(store, version)
        except FileNotFoundError:
            break  # cleaned up: so is every older commit
        except ValueError:
            continue  # not a commit of JSON lines
        infos = (a.get("commitInfo") for a in actions if isinstance(a, dict))
        info = next((i for i in infos if isinstance(i, dict)), None)
        if info is not None:
            out.append({**info, "version": version})
            if until is not None and until(out[-1]):
                break
    return out


def _commit_actions(store: Storage, version: int) -> list[Any]:
    """A version's commit as its actions, one a JSON line (blank lines skipped)."""
    lines = store.get(commit_file(version)).splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def has_deletion_vectors(table: DeltaTable) -> bool:
    """True for a table with the ``deletionVectors`` reader feature (written by Spark).

    delta-rs's pyarrow reads refuse such a table; its DataFusion reads apply the vectors.
    """
    return "deletionVectors" in (table.protocol().reader_features or [])


def read_rows(table: DeltaTable, columns: list[str] | None = None) -> pa.Table:
    """The rows of ``table``'s version as a reader sees them (deletion vectors applied)."""
    return _query(table, columns, None)


def _query(table: DeltaTable, columns: list[str] | None, where: str | None) -> pa.Table:
    """Rows through DataFusion in delta-rs: how every read of rows here goes.

    Not through ``to_pyarrow_dataset``: that scans with Arrow's async readers over a Python
    filesystem (deltalake's handler), whose file objects and buffers the scan can release on
    an Arrow IO thread after it returned. A command that exits right after a read (one that
    fails with its one-line error) then aborted about one time in four: the thread cannot take
    the GIL while the interpreter finalizes ("terminate called without an active exception",
    exit 134). DataFusion reads in Rust (as fast or faster here: a 256k-row partition in 80 ms
    against 119), reaches OpenDAL, which pyarrow's bridge cannot, and applies deletion vectors.
    """
    cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    clause = f" WHERE {where}" if where else ""
    reader = QueryBuilder().register("t", table).execute(f"SELECT {cols} FROM t{clause}")
    got = pa.RecordBatchReader.from_stream(reader).read_all()
    schema = pa.schema(table.schema().to_arrow())
    if columns:
        schema = pa.schema([schema.field(c) for c in columns])
    return got.cast(schema)  # DataFusion answers with view types; keep the table's


def _partition_adds(table: DeltaTable, partition: Mapping[str, object]) -> pa.Table:
    """The add actions (one per data file) of one partition of a partitioned table."""
    adds = add_actions(table)
    for k, v in partition.items():
        name = f"partition.{k}"
        if name not in adds.column_names:
            continue  # not a partition column of this table: no file is told apart by it
        column = pc.cast(adds.column(name), pa.string())
        adds = adds.filter(pc.equal(column, _partition_value(v)))
    return adds


class PartitionReader:
    """One partition's rows, for a reader that reads it again and again: each file read once.

    A Delta data file never changes once written. Each :meth:`read` takes the partition's
    files from the log, reads those it has not read before (through the location's store),
    forgets those the log no longer lists (a compaction, a rewrite), and returns the rows in
    the log's order of files, as :func:`read_partition` does. What a long-lived ingest reads
    before each batch (the ledger) then costs the new files, not the day's.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema  # the columns read, as they are returned
        self.files: dict[str, pa.Table] = {}

    def read(
        self, uri: str, options: Mapping[str, str], partition: Mapping[str, object]
    ) -> pa.Table:
        """The partition's rows in the table's latest version (an empty table if none)."""
        import pyarrow.parquet as pq

        table = open_table(uri, options)
        if table is None:
            self.files = {}
            return self.schema.empty_table()
        if deltalake_target(uri, options)[0].startswith("opendal+"):  # read through DataFusion
            return read_partition(uri, options, partition, self.schema.names).cast(self.schema)
        paths = [str(p) for p in _partition_adds(table, partition).column("path").to_pylist()]
        new = [p for p in paths if p not in self.files]
        if new:
            store = open_storage(uri, dict(options))
            for path in new:
                parquet = pq.ParquetFile(pa.BufferReader(store.get(path)))
                names = set(parquet.schema_arrow.names)
                got = parquet.read(columns=[n for n in self.schema.names if n in names])
                rows = parquet.metadata.num_rows
                self.files[path] = pa.table(
                    [
                        got[f.name].cast(f.type) if f.name in names else pa.nulls(rows, f.type)
                        for f in self.schema
                    ],
                    schema=self.schema,
                )
        self.files = {p: self.files[p] for p in paths}
        return pa.concat_tables([self.schema.empty_table(), *self.files.values()])


def partition_rows(uri: str, options: Mapping[str, str], partition: Mapping[str, object]) -> int:
    """Rows of one partition of a table's latest version, from the log's file statistics."""
    table = open_table(uri, options)
    if table is None:
        return 0
    adds = _partition_adds(table, partition)
    return int(pc.sum(adds.column("num_records")).as_py() or 0)


def partition_files(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    *,
    unclustered: bool = False,
) -> int:
    """Data files of one partition in the table's latest version.

    ``unclustered``: only those a clustered rewrite did not write (:mod:`.cluster`).
    """
    table = open_table(uri, options)
    if table is None:
        return 0
    adds = _partition_adds(table, partition)
    if not unclustered:
        return adds.num_rows
    return sum(not is_clustered(str(p)) for p in adds.column("path").to_pylist())


def read_values(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    column: str,
    values: list[str],
    *,
    files: Collection[str] | None = None,
) -> list[str]:
    """The ``values`` that ``column`` holds in one partition (each as often as it is held).

    ``files``: the partition's files that may hold them (those a batch added). They alone are
    read when the table's latest version still lists every one of them and has no deletion
    vectors; otherwise (a compaction or a rewrite since) the whole partition is.

    Through DataFusion: delta-rs's pyarrow dataset turns a string column without min/max
    statistics (ours have none) into the guarantee ``column >= null``, which prunes every
    file for any filter on that column (deltalake 1.6).
    """
    table = open_table(uri, options)
    if table is None or not values:
        return []
    native = not deltalake_target(uri, options)[0].startswith("opendal+")
    if files is not None and native and not has_deletion_vectors(table):
        live = set(_partition_adds(table, partition).column("path").to_pylist())
        if set(files) <= live:
            return _file_values(uri, options, sorted(set(files)), column, values)
    listed = ", ".join(sql_literal(v) for v in values)
    where = f"{partition_predicate(partition)} AND {column} IN ({listed})"
    return _query(table, [column], where)[column].to_pylist()


def _file_values(
    uri: str, options: Mapping[str, str], files: list[str], column: str, values: list[str]
) -> list[str]:
    """The ``values`` that ``column`` holds in the data files ``files`` of a table."""
    import pyarrow.parquet as pq

    store = open_storage(uri, dict(options))
    wanted = pa.array(values, pa.string())
    found: list[str] = []
    for path in files:
        got = pq.read_table(pa.BufferReader(store.get(path)), columns=[column])[column]
        found.extend(got.filter(pc.is_in(got.cast(pa.string()), value_set=wanted)).to_pylist())
    return found


def _partition_value(value: object) -> str:
    """A partition value as Delta's partitionValues hold it."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
