"""Delta writes and commits: Parquet files staged, then committed under a transaction id.

Partition writes replace exactly their partition (a predicate overwrite), so re-running a
partition is idempotent; a writer that loses a commit race tries again on the new version.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, Transaction
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from pipelines.lake import tables
from pipelines.lake.delta.read import (
    _partition_value,
    commit_adds,
    commit_file,
    deltalake_target,
    latest_table,
    open_table,
    partition_predicate,
    table_version,
)
from pipelines.lake.storage import Storage, open_storage

COMMIT_ATTEMPTS = 8
# Parquet files of a partition write are encoded this many at a time (pyarrow releases the
# GIL), each of at least MIN_FILE_ROWS rows: 1M events take 0.26 s on two cores, not 0.74 s.
WRITE_THREADS = 2
MIN_FILE_ROWS = 250_000
# A column gets a dictionary when its first DICTIONARY_SAMPLE rows hold few distinct values;
# trying one on ids and e-mails costs time and then falls back anyway.
DICTIONARY_SAMPLE = 10_000
# Tables created here checkpoint this often (delta-rs's default is 100): an ingest run opens
# its tables about 16 times, and each open replays the JSON commits since the last checkpoint.
CHECKPOINT_INTERVAL = 10
# What delta-rs does after each commit here: a checkpoint every CHECKPOINT_INTERVAL versions (a
# load then reads a checkpoint and at most that many commits), and never its expired-log
# cleanup, which deletes commits older than delta.logRetentionDuration whatever a lagging
# replica or a pinned model still needs; upkeep cleans the log under the floor instead.
HOOKS = PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)
# Tables created here: the same for any other writer (Spark's checkpoints clean the log too).
TABLE_CONFIGURATION = {
    "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
    "delta.enableExpiredLogCleanup": "false",
}


T = TypeVar("T")


def _is_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, CommitFailedError) or any(
        w in text for w in ("conflict", "already exists", "version", "concurrent")
    )


class MissingFileError(RuntimeError):
    """A commit would add data files that do not exist (staged files removed since)."""

    def __init__(self, uri: str, paths: list[str]) -> None:
        super().__init__(
            f"{uri}: {len(paths)} staged data file(s) no longer exist, e.g. {paths[0]}; "
            "a commit naming them would make the table unreadable"
        )
        self.uri = uri
        self.paths = paths


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

    The Parquet files are encoded side by side (:data:`WRITE_THREADS`) and uploaded, then one
    commit removes the partition's old files and adds them. The commit carries a transaction
    id named after the partition, so two writers racing on the same partition conflict even
    when it was empty, and the loser replaces the winner's files on its retry; writers of other
    partitions are rebased past each other. Re-running with the same data leaves the same rows.
    The table is created empty first when absent.
    """
    adds = stage_files(
        uri, data, partition, options, partition_by=partition_by, target_file_size=target_file_size
    )
    app_id = f"lakehouse-partition:{partition_predicate(partition)}"
    commit_files(
        uri,
        adds,
        data.schema,
        partition,
        options,
        replace=True,
        app_id=app_id,
        app_version=time.time_ns() // 1000,
        partition_by=partition_by,
    )
    version = table_version(uri, options)
    assert version is not None
    return version


def stage_files(
    uri: str,
    data: pa.Table,
    partition: Mapping[str, object],
    options: Mapping[str, str],
    *,
    partition_by: list[str] | None = None,
    target_file_size: int | None = None,
) -> list[AddAction]:
    """Upload ``data`` as Parquet files of one partition, uncommitted; return their add actions.

    Nothing reads the files until a commit names them (:func:`commit_files`); if none ever
    does, they are untracked files that VACUUM removes. The table is created empty first when
    absent. The files are written by this package's storage (:mod:`pipelines.lake.storage`),
    delta-rs writes only the commit: so the GCS emulator's adapter, whose delta-rs path (OpenDAL)
    would store the ``=`` of partition folders percent-encoded, gets the same partitioned table.
    """
    target, opts = deltalake_target(uri, options)
    cols = partition_by or list(partition)
    if sorted(cols) != sorted(partition):
        raise ValueError(f"{uri}: partition {dict(partition)} does not name the columns {cols}")
    _check_rows_in(uri, data, partition)
    stats_columns = _create_if_absent(target, opts, data.schema, cols, registered_properties(uri))
    values = {k: _partition_value(v) for k, v in partition.items() if k in cols}
    folder = "/".join(f"{k}={quote(values[k], safe='-_.')}" for k in cols)
    files = data.drop_columns(cols)
    store = open_storage(uri, dict(options))
    # No rows, no file: the commit then only removes the partition's old files.
    count = min(WRITE_THREADS, max(1, data.num_rows // MIN_FILE_ROWS)) if data.num_rows else 0
    if count and target_file_size:  # more, smaller files when asked (in-memory size)
        count = max(count, -(-data.nbytes // target_file_size))
    step = -(-data.num_rows // count) if count else 0
    with ThreadPoolExecutor(max_workers=max(1, min(count, WRITE_THREADS))) as pool:
        return list(
            pool.map(
                lambda i: _put_file(
                    store, folder, files.slice(i * step, step), values, None, stats_columns
                ),
                range(count),
            )
        )


def registered_properties(uri: str) -> dict[str, str]:
    """The Delta properties the table registry gives the table ``uri`` ends in (none: {}).

    A table is known by its folder's name, as the registry's personal-data flag is; a folder
    of another name (a test's, a user's) gets none and keeps statistics on every column.
    """
    spec = tables.TABLES.get(uri.rstrip("/").rsplit("/", 1)[-1])
    return spec.properties() if spec is not None else {}


def discard_files(uri: str, options: Mapping[str, str], adds: list[AddAction]) -> None:
    """Remove staged files no commit will name (best effort: VACUUM removes any left)."""
    store = open_storage(uri, dict(options))
    for add in adds:
        try:
            store.delete(add.path)
        except (OSError, RuntimeError):
            continue


def commit_files(
    uri: str,
    adds: list[AddAction],
    schema: pa.Schema,
    partition: Mapping[str, object],
    options: Mapping[str, str],
    *,
    replace: bool,
    app_id: str | None,
    app_version: int = 0,
    partition_by: list[str] | None = None,
    once: bool = False,
    filters: list[tuple[str, str, str]] | None = None,
    unless: Callable[[DeltaTable], bool] | None = None,
) -> bool:
    """Commit staged files to one partition (appended, or replacing it) under a transaction id.

    The commit carries ``Transaction(app_id, app_version)``: delta-rs fails a commit whose
    transaction id a concurrent commit also carries (checked: deltalake 1.6), so two writers of
    the same id never both commit; the loser tries again on the new version. With ``once``,
    that retry (and the first try) commits nothing and returns False when the table already
    holds ``app_version`` or a later one of ``app_id``: each version is committed exactly once.
    ``unless``: asked of the version each try would commit on (so again after a lost race);
    when it is true nothing is committed and False returned. Writers sharing an ``app_id``
    thus commit only on what they checked.
    ``filters`` (partition filters) replace the partitions they select instead of ``partition``.
    """
    target, opts = deltalake_target(uri, options)
    cols = partition_by or list(partition)
    values = {k: _partition_value(v) for k, v in partition.items()}
    done = False
    actions: list[AddAction | RemoveAction] = list(adds)
    replaced = filters
    if replace and filters is None:
        replaced = [(k, "=", values[k]) for k in cols] or None

    def commit() -> None:
        nonlocal done
        table = latest_table(target, opts)
        held = table.transaction_version(app_id) if app_id else None
        if (once and held is not None and held >= app_version) or (unless and unless(table)):
            done = True
            return
        _check_exist(uri, options, adds)
        table.create_write_transaction(
            actions,
            mode="overwrite" if replace else "append",
            schema=_merged_schema(table, schema),
            partition_by=cols or None,
            partition_filters=replaced if replace else None,
            commit_properties=CommitProperties(
                custom_metadata={COMMIT_MARK: f"{app_id}#{app_version}"},
                app_transactions=[Transaction(app_id=app_id, version=app_version)],
            )
            if app_id
            else None,
            post_commithook_properties=HOOKS,
        )

    _retry_on_conflict(commit)
    return not done


def settle_native_writes(uri: str, options: Mapping[str, str], since: int | None) -> int:
    """Put the data files delta-rs itself wrote after version ``since`` where its log names them.

    Only the GCS emulator's adapter needs this: OpenDAL uploads the ``=`` of a partition folder
    percent-encoded there (docs/emulators.md, G2), so a delete or an update that rewrote files
    would leave a log naming files that are not there, and the table unreadable. Each such file
    is moved to its logged key (read from the new commits only); on every other store this
    returns at once. The number of files moved.
    """
    if not deltalake_target(uri, options)[0].startswith("opendal+"):
        return 0
    latest = table_version(uri, options)
    if latest is None:
        return 0
    store = open_storage(uri, dict(options))
    moved = 0
    for logged, _ in commit_adds(uri, options, -1 if since is None else since, latest):
        path = unquote(logged)
        stored = path.replace("=", "%3D")
        if stored == path or store.head(path) is not None or store.head(stored) is None:
            continue
        store.put(path, store.get(stored))
        store.delete(stored)
        moved += 1
    return moved


def missing_files(uri: str, options: Mapping[str, str], adds: list[AddAction]) -> list[str]:
    """The paths of ``adds`` that do not exist in the table's folder (one HEAD a file)."""
    if not adds:
        return []
    store = open_storage(uri, dict(options))
    with ThreadPoolExecutor(max_workers=min(8, len(adds))) as pool:
        heads = list(pool.map(lambda a: store.head(a.path), adds))
    return [a.path for a, h in zip(adds, heads, strict=True) if h is None]


def _check_exist(uri: str, options: Mapping[str, str], adds: list[AddAction]) -> None:
    """Raise :class:`MissingFileError` unless every file ``adds`` names exists.

    Staged files a crashed writer left can be removed by upkeep before another writer commits
    them; committing them anyway would make every later read of the table fail.
    """
    missing = missing_files(uri, options, adds)
    if missing:
        raise MissingFileError(uri, missing)


# Commit metadata naming the transaction a commit made, so its version can be found again.
COMMIT_MARK = "lakehouse.transaction"


def version_of(uri: str, options: Mapping[str, str], app_id: str, app_version: int) -> int:
    """The table version whose commit carried ``app_version`` of ``app_id`` (-1 if not found).

    Looked up in the newest commits only (:data:`HISTORY_LOOKBACK`): it is called right after
    the commit, or when finishing a batch a crashed writer left.
    """
    table = open_table(uri, options)
    if table is None:
        return -1
    # The commit files themselves, newest first (usually the newest is it): delta-rs's
    # history() lists the whole log folder, which costs more on object stores.
    store = open_storage(uri, dict(options))
    mark = json.dumps({COMMIT_MARK: f"{app_id}#{app_version}"}, separators=(",", ":"))[1:-1]
    latest = table.version()
    for version in range(latest, max(-1, latest - HISTORY_LOOKBACK), -1):
        try:
            text = store.get(commit_file(version)).decode("utf-8", "replace")
        except FileNotFoundError:  # cleaned up after a checkpoint: older than we look for
            return -1
        if mark in text:
            return version
    return -1


HISTORY_LOOKBACK = 200


def write_range(
    uri: str,
    data: pa.Table,
    start: dt.date,
    end: dt.date,
    options: Mapping[str, str],
    *,
    partition_by: list[str],
) -> int:
    """Replace every row of dates ``[start, end]`` of a ``date``-partitioned table in one commit.

    Rows of ``data`` outside the range are refused (they would survive next to older copies).
    Re-running with the same data leaves the same rows; the new version is returned. The files
    are staged as :func:`stage_files` stages them (the GCS emulator's adapter included), and one
    commit removes the range's old files and adds them; a writer racing on the table is retried
    past.
    """
    dates = data.column("date") if data.num_rows else None
    if dates is not None and (pc.min(dates).as_py() < start or pc.max(dates).as_py() > end):
        raise ValueError(f"{uri}: rows outside {start}..{end} in a write of that range")
    adds = _stage_partitions(uri, data, options, partition_by)
    commit_files(
        uri,
        adds,
        data.schema,
        {},
        options,
        replace=True,
        app_id=None,
        partition_by=partition_by,
        filters=[("date", ">=", start.isoformat()), ("date", "<=", end.isoformat())],
    )
    version = table_version(uri, options)
    assert version is not None
    return version


def append_rows(
    uri: str, data: pa.Table, options: Mapping[str, str], *, partition_by: list[str]
) -> int:
    """Append ``data`` to its partitions in one commit (the table created when absent)."""
    adds = _stage_partitions(uri, data, options, partition_by)
    commit_files(
        uri, adds, data.schema, {}, options, replace=False, app_id=None, partition_by=partition_by
    )
    version = table_version(uri, options)
    assert version is not None
    return version


def _stage_partitions(
    uri: str, data: pa.Table, options: Mapping[str, str], partition_by: list[str]
) -> list[AddAction]:
    """:func:`stage_files` for each partition ``data`` has rows in (the table created first)."""
    target, opts = deltalake_target(uri, options)
    _create_if_absent(target, opts, data.schema, partition_by, registered_properties(uri))
    if not data.num_rows:
        return []
    keys = data.select(partition_by).group_by(partition_by).aggregate([]).to_pylist()
    adds: list[AddAction] = []
    for key in keys:
        same = [pc.equal(data[c], pa.scalar(v, data[c].type)) for c, v in key.items()]
        rows = data.filter(pc.fill_null(functools.reduce(pc.and_, same), False))
        adds += stage_files(uri, rows, key, options, partition_by=partition_by)
    return adds


def _check_rows_in(uri: str, data: pa.Table, partition: Mapping[str, object]) -> None:
    """Raise unless every row has the partition's values (a wrong row would land elsewhere)."""
    for col, value in partition.items():
        if col not in data.column_names:
            raise ValueError(f"{uri}: the rows have no partition column {col!r}")
        if not data.num_rows:
            continue
        column = data[col]
        wrong = pc.sum(
            pc.invert(pc.fill_null(pc.equal(column, pa.scalar(value, column.type)), False))
        )
        if wrong.as_py():
            raise ValueError(f"{uri}: {wrong.as_py()} rows are not in the partition {col}={value}")


def _put_file(
    store: Storage,
    folder: str,
    rows: pa.Table,
    values: Mapping[str, str],
    name: str | None = None,
    stats_columns: Sequence[str] | None = None,
) -> AddAction:
    """Encode ``rows`` as one Parquet file under ``folder``, upload it, return its add action.

    ``stats_columns``: the columns its statistics cover (the table's own choice,
    :func:`stats_columns_of`), None: every column.
    """
    sink = pa.BufferOutputStream()
    pq.write_table(rows, sink, compression="snappy", use_dictionary=_few_values(rows))
    buf = sink.getvalue()
    name = name or f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    path = f"{folder}/{name}" if folder else name
    store.put(path, buf.to_pybytes())
    return AddAction(
        path=path,
        size=buf.size,
        partition_values=dict(values),
        modification_time=time.time_ns() // 1_000_000,
        data_change=True,
        stats=stats_json(file_stats(rows, stats_columns)),
    )


def stats_columns_of(table: DeltaTable) -> tuple[str, ...] | None:
    """The columns a table's files keep statistics on (``delta.dataSkippingStatsColumns``)."""
    named = table.metadata().configuration.get(tables.STATS_COLUMNS)
    if not named:
        return None
    return tuple(c.strip().strip("`") for c in named.split(",") if c.strip())


def _few_values(rows: pa.Table) -> list[str]:
    """Columns worth a dictionary: under 1 distinct value in 10 over the first rows."""
    sample = rows.slice(0, DICTIONARY_SAMPLE)
    return [
        name
        for name in rows.column_names
        if pc.count_distinct(sample[name]).as_py() * 10 <= max(sample.num_rows, 10)
    ]


def file_stats(rows: pa.Table, columns: Sequence[str] | None = None) -> dict[str, object]:
    """Delta file statistics: row and null counts, and min/max where they are exact bounds.

    ``columns``: only these columns' (a table's ``delta.dataSkippingStatsColumns``), None: all.

    Numbers, booleans and dates get their min and max; timestamps theirs widened to whole
    milliseconds (the precision Delta keeps). Strings get none: a truncated bound is easy to
    get wrong, and a missing one only means a reader cannot skip the file. A column holding a
    non-finite float (NaN, +-inf), or a date or timestamp outside years 1-9999, gets no bounds
    either: JSON has no token for the first, and readers cannot parse the second.
    """
    low: dict[str, object] = {}
    high: dict[str, object] = {}
    fields = [f for f in rows.schema if columns is None or f.name in columns]
    for f in fields:
        if not rows.num_rows or rows[f.name].null_count == rows.num_rows:
            continue
        bounds = _bounds(rows[f.name], f.type)
        if bounds is not None:
            low[f.name], high[f.name] = bounds
    return {
        "numRecords": rows.num_rows,
        "minValues": low,
        "maxValues": high,
        "nullCount": {f.name: rows[f.name].null_count for f in fields},
    }


def stats_json(stats: dict[str, object]) -> str:
    """Statistics as strict JSON: a NaN or infinity raises here instead of breaking the log."""
    return json.dumps(stats, allow_nan=False, separators=(",", ":"))


def _bounds(column: pa.ChunkedArray, t: pa.DataType) -> tuple[object, object] | None:
    """A column's (min, max) as Delta's statistics hold them, or None when it has none."""
    try:
        if pa.types.is_integer(t) or pa.types.is_date(t) or pa.types.is_boolean(t):
            found = pc.min_max(column)
            return _json(found["min"].as_py()), _json(found["max"].as_py())
        if pa.types.is_floating(t):
            # NaN sorts above every number for Spark, and min_max skips it; JSON cannot hold
            # NaN or an infinity at all: no bounds then
            if not pc.all(pc.fill_null(pc.is_finite(column), True)).as_py():
                return None
            found = pc.min_max(column)
            return float(found["min"].as_py()), float(found["max"].as_py())
        if pa.types.is_timestamp(t):
            ticks = pc.min_max(column.cast(pa.int64()))  # in the column's own unit
            per_second = _TICKS_PER_SECOND[t.unit]
            return (
                _millis(ticks["min"].as_py() * 1000 // per_second, t.tz),
                _millis(-(-ticks["max"].as_py() * 1000 // per_second), t.tz),
            )
    except (OverflowError, ValueError, pa.ArrowNotImplementedError):
        return None  # a value Python's calendar cannot hold, or a type with no kernel
    return None


_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _json(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value


def _millis(ms: int, tz: str | None) -> str:
    stamp = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)  # OverflowError past 9999
    # isoformat, not strftime: %Y writes year 1 as "1", which no reader parses
    return stamp.isoformat(timespec="milliseconds") + ("Z" if tz else "")


def _merged_schema(table: DeltaTable, incoming: pa.Schema) -> pa.Schema:
    """The table's schema with the incoming columns it lacks added (nothing is dropped)."""
    current = pa.schema(table.schema().to_arrow())  # type: ignore[arg-type]
    extra = [f for f in incoming if f.name not in current.names]
    return pa.schema([*current, *extra]) if extra else current


def _retry_on_conflict(action: Callable[[], T]) -> T:
    """Run ``action``, again (with a growing, jittered pause) when it lost a commit race."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return action()
        except (CommitFailedError, DeltaError) as exc:
            if attempt == COMMIT_ATTEMPTS - 1 or not _is_conflict(exc):
                raise
            time.sleep(0.05 * (attempt + 1) + random.random() * 0.1)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _create_if_absent(
    target: str,
    opts: Mapping[str, str],
    schema: pa.Schema,
    partition_by: list[str],
    properties: Mapping[str, str] | None = None,
) -> tuple[str, ...] | None:
    """Create the table when absent, with ``properties``; return its statistics' columns.

    A table created before a property was asked for gets it in one metadata commit, once
    (later writes find it set; files already written keep the statistics they have). Two
    writers setting it at once: the loser's commit conflicts, and its retry finds it set.
    """
    wanted = dict(properties or {})

    def create() -> tuple[str, ...] | None:
        try:
            table = latest_table(target, opts)
        except TableNotFoundError:
            # mode="ignore": if another writer created it between our look and our create,
            # the create fails as a conflict or does nothing, and the retry finds their table
            DeltaTable.create(
                target,
                schema,
                mode="ignore",
                partition_by=partition_by or None,
                storage_options=dict(opts) or None,
                configuration={**TABLE_CONFIGURATION, **wanted},
            )
            table = latest_table(target, opts)
        have = table.metadata().configuration
        todo = {k: v for k, v in wanted.items() if have.get(k) != v}
        if todo:
            table.alter.set_table_properties(todo)
            table = latest_table(target, opts)
        return stats_columns_of(table)

    return _retry_on_conflict(create)
