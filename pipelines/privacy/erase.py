"""Erasure of a data subject from one Delta table, every kept version included, and its proof.

A first piece of issue #29's erasure: the subject's rows are deleted from the table (a new
version), the rows a deletion vector hid are purged from the live files that still hold them
(a table Spark wrote with vectors), then every data file an older version still references
that holds the subject is deleted from storage, and the commits whose file statistics carry an
identifier as a min/max bound are rewritten without those bounds, whatever the VACUUM floor
would keep (erasure wins over retention: those versions can no longer be read, and the receipt
says which files went).
The verification reads back, independently of the delete, every data file under the table
(decoded, not only raw bytes: Parquet pages are compressed) and every log file, and counts the
subject's identifiers.

Rows are matched by exact value in identifying columns (``customer_id``, ``email``; silver's
keyed hashes are the same thing one step removed) and, in columns that keep whole records (the
quarantine's ``raw``, bronze's ``_rescued_data``), by each identifier found as a token. Rows
matched in a raw column are deleted by their key (``source_object``, ``record_index``), so the
delete's predicate names objects, not the subject. Checkpoints whose statistics hold an identifier
are rewritten like commits. Serving a request over every table, landing object and location is
:mod:`pipelines.erasure`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from pipelines.lake import delta
from pipelines.lake.delta import (
    has_deletion_vectors,
    open_table,
    read_rows,
    rewrite_partition,
    sql_literal,
)
from pipelines.lake.storage import Storage, open_storage

LOG = "_delta_log/"

# a token ends where an id or address cannot go on: the one boundary rule of every match
# (the quarantine's ``raw`` by RE2, landing records, the read-back, log and checkpoint scrubs)
TOKEN_OUTSIDE = r"[^A-Za-z0-9_@.+\-]"


def token_regex(values: Sequence[str | bytes]) -> re.Pattern[bytes] | None:
    """Any of ``values`` as a whole token (not glued to a longer id or address); None if none.

    A prefix of another id (``eu-02993`` in ``eu-029936``) is no match, nor a value inside a
    longer token (``1`` in ``part-00001``).
    """
    encoded = sorted({v.encode() if isinstance(v, str) else bytes(v) for v in values if v})
    if not encoded:
        return None
    outside = TOKEN_OUTSIDE.encode()
    alts = b"|".join(re.escape(v) for v in encoded)
    return re.compile(rb"(?:^|" + outside + rb")(?:" + alts + rb")(?:$|" + outside + rb")")


def holds_token(pattern: re.Pattern[bytes] | None, data: str | bytes) -> bool:
    """True when ``data`` holds one of the pattern's values as a whole token."""
    if pattern is None:
        return False
    return pattern.search(data.encode() if isinstance(data, str) else data) is not None


def leaf_values(node: object) -> list[str | bytes]:
    """Every string and bytes value in decoded rows (dicts, lists, tuples of them)."""
    out: list[str | bytes] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return out


def parquet_values(data: bytes) -> list[str | bytes] | None:
    """A Parquet file's text values, decoded (None: not Parquet after all)."""
    try:
        return leaf_values(pq.read_table(io.BytesIO(data)).to_pylist())
    except Exception:
        return None


def values_hold(pattern: re.Pattern[bytes] | None, values: Sequence[str | bytes]) -> bool:
    """True when a decoded value is an identifier, or holds one as a whole token."""
    return pattern is not None and any(holds_token(pattern, v) for v in values)


@dataclass(frozen=True)
class Subject:
    """Who is erased: values per column that identify them (``customer_id``, ``email``).

    ``tokens`` are searched for, as whole tokens, in ``raw_columns`` (columns that keep records
    as landed); ``identifiers`` are compared exactly with their own column.
    """

    identifiers: Mapping[str, tuple[str, ...]]
    tokens: tuple[str, ...] = ()
    raw_columns: tuple[str, ...] = ()

    def keyed_hash(self, key: str) -> str:
        """HMAC-SHA256 of the identifiers under ``key``: the receipt names the subject by this."""
        text = "|".join(f"{c}={v}" for c in sorted(self.identifiers) for v in self.identifiers[c])
        return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()

    def predicate(self, columns: Sequence[str]) -> str | None:
        """``col IN (…) OR …`` over the identifying columns the table has (None: it has none)."""
        parts = [
            f"{c} IN ({', '.join(sql_literal(v) for v in vals)})"
            for c, vals in sorted(self.identifiers.items())
            if c in columns and vals
        ]
        return " OR ".join(parts) or None

    def values(self) -> set[str]:
        """Every identifier and token."""
        return {v for vals in self.identifiers.values() for v in vals} | set(self.tokens)

    def matcher(self) -> re.Pattern[bytes] | None:
        """Every identifier and token as a whole token (:func:`token_regex`): raw bytes, logs."""
        return token_regex(sorted(self.values()))

    def token_pattern(self) -> str | None:
        """An RE2 pattern matching any token not glued to a longer id or address."""
        if not self.tokens:
            return None
        alts = "|".join(re.escape(t) for t in sorted(self.tokens))
        return f"(?:^|{TOKEN_OUTSIDE})(?:{alts})(?:$|{TOKEN_OUTSIDE})"


@dataclass
class TableErasure:
    """What erasing a subject from one table did, and what the read-back found."""

    uri: str
    version_before: int
    version_after: int
    rows_deleted: int
    files_removed: list[dict[str, object]] = field(default_factory=list)
    bytes_removed: int = 0
    # commits whose file statistics (min/max) held an identifier, rewritten without those bounds
    log_files_rewritten: list[str] = field(default_factory=list)
    checkpoints_rewritten: list[str] = field(default_factory=list)
    # rows deleted per landing object they came from (tables with ``source_object``)
    rows_by_object: dict[str, int] = field(default_factory=dict)
    # kept versions that referenced a removed file: time travel to them now fails (the cost)
    versions_lost: list[int] = field(default_factory=list)
    files_scanned: int = 0
    bytes_scanned: int = 0
    found_in_data_files: int = 0
    found_in_log_files: int = 0
    seconds: float = 0.0

    @property
    def verified_absent(self) -> bool:
        """True when the read-back found the subject in no file under the table."""
        return self.found_in_data_files == 0 and self.found_in_log_files == 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (paths, sizes and counts; never an identifier)."""
        return {**asdict(self), "verified_absent": self.verified_absent}


def _is_text(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or (pa.types.is_large_binary(t))
    )


def _false(n: int) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array([False] * n, pa.bool_())])


def identifier_rows(table: pa.Table, subject: Subject) -> pa.ChunkedArray:
    """A mask of the rows holding one of the subject's identifiers in its own column."""
    mask = _false(table.num_rows)
    for column, values in subject.identifiers.items():
        if column in table.column_names and values:
            col = table.column(column)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                hit = pc.fill_null(pc.is_in(col, pa.array(values, col.type)), False)
                mask = pc.or_(mask, hit)
    return mask


def raw_rows(table: pa.Table, subject: Subject) -> pa.ChunkedArray:
    """A mask of the rows whose raw columns hold one of the subject's tokens."""
    mask = _false(table.num_rows)
    pattern = subject.token_pattern()
    for column in subject.raw_columns:
        if pattern and column in table.column_names and _is_text(table.schema.field(column).type):
            hit = pc.fill_null(pc.match_substring_regex(table.column(column), pattern), False)
            mask = pc.or_(mask, hit)
    return mask


def rows_holding(table: pa.Table, subject: Subject) -> pa.ChunkedArray:
    """A mask of the rows holding the subject: an identifier in its column, a token in raw."""
    return pc.or_(identifier_rows(table, subject), raw_rows(table, subject))


def _holds(data: bytes, subject: Subject) -> bool:
    """True when a Parquet file, decoded, holds one of the subject's identifiers."""
    table = pq.read_table(io.BytesIO(data))
    return bool(table.num_rows) and bool(pc.any(rows_holding(table, subject)).as_py())


def _data_files(storage: Storage) -> list[tuple[str, int]]:
    return [
        (i.path, i.size)
        for i in storage.list()
        if i.path.endswith(".parquet") and not i.path.startswith(LOG)
    ]


def verify(storage: Storage, subject: Subject, report: TableErasure) -> None:
    """Read back every data file (decoded) and every log file (bytes) and count the subject.

    Identifiers match as whole tokens (:func:`token_regex`) in raw bytes and in the decoded
    text, and by value (or token, in raw columns) in a data file's rows: a prefix of another
    id, or a digit inside a path, is not the subject.
    """
    pattern = subject.matcher()
    for path, size in _data_files(storage):
        data = storage.get(path)
        report.files_scanned += 1
        report.bytes_scanned += size
        if _holds(data, subject) or holds_token(pattern, data):
            report.found_in_data_files += 1
    for info in list(storage.list(LOG)):
        data = storage.get(info.path)
        report.files_scanned += 1
        report.bytes_scanned += info.size
        decoded = data
        if info.path.endswith(".parquet"):
            # a checkpoint: its stats and partition values, decoded
            decoded = str(pq.read_table(io.BytesIO(data)).to_pylist()).encode()
        if holds_token(pattern, decoded):
            report.found_in_log_files += 1


# what a log scrub may change: statistics of file actions, and commitInfo's strings.
# Everything else (paths, sizes, partition values, schema, protocol...) is the table itself.
FILE_ACTIONS = ("add", "remove")
STATS_BOUNDS = ("minValues", "maxValues")


def _drop_bounds(node: object, pattern: re.Pattern[bytes] | None) -> object:
    """Statistics with every min/max bound that is (or holds, as a token) an identifier removed."""
    if isinstance(node, dict):
        return {
            k: _drop_bounds(v, pattern)
            for k, v in node.items()
            if not (isinstance(v, str) and holds_token(pattern, v))
        }
    return node


def _redact(node: object, pattern: re.Pattern[bytes] | None) -> object:
    """Every string that holds an identifier (as a token) replaced by ``[erased]``."""
    if isinstance(node, dict):
        return {k: _redact(v, pattern) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact(v, pattern) for v in node]
    if isinstance(node, str) and holds_token(pattern, node):
        return "[erased]"
    return node


def _scrub_stats(text: str, pattern: re.Pattern[bytes] | None) -> str:
    """A file's JSON statistics without the bounds holding an identifier (counts kept)."""
    stats = json.loads(text)
    if not isinstance(stats, dict):
        return text
    for bound in STATS_BOUNDS:
        if bound in stats:
            stats[bound] = _drop_bounds(stats[bound], pattern)
    return json.dumps(stats, separators=(",", ":"))


def scrub_commit(data: bytes, values: set[str]) -> bytes | None:
    """A commit without the identifiers its statistics and ``commitInfo`` hold; None if clean.

    Bounds are only hints for skipping files: a reader without them reads the file. Nothing else
    of the commit changes (its md5 does: a replica compares commits, see docs/privacy.md).
    Identifiers match as whole tokens: a prefix of another id leaves the commit as it is.
    """
    pattern = token_regex(sorted(values))
    if not holds_token(pattern, data):
        return None
    lines = []
    changed = False
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        if not holds_token(pattern, line):
            lines.append(line)  # an action without the subject stays byte for byte
            continue
        before = json.dumps(action, sort_keys=True)
        if "commitInfo" in action:
            # the erasing DELETE's own predicate names the subject (delta-rs records it)
            action["commitInfo"] = _redact(action["commitInfo"], pattern)
        for kind in FILE_ACTIONS:
            body = action.get(kind)
            stats = body.get("stats") if isinstance(body, dict) else None
            if isinstance(body, dict) and isinstance(stats, str) and holds_token(pattern, stats):
                body["stats"] = _scrub_stats(stats, pattern)
        if json.dumps(action, sort_keys=True) == before:
            lines.append(line)  # the subject is outside what a scrub may change
            continue
        changed = True
        lines.append(json.dumps(action, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode() if changed else None


def _null_bounds(node: object, pattern: re.Pattern[bytes] | None) -> object:
    """Parsed statistics (``stats_parsed``) with a bound holding an identifier set to null."""
    if isinstance(node, dict):
        return {k: _null_bounds(v, pattern) for k, v in node.items()}
    if isinstance(node, str) and holds_token(pattern, node):
        return None
    return node


def _scrub_row(row: dict[str, object], pattern: re.Pattern[bytes] | None) -> dict[str, object]:
    """A checkpoint row with only its statistics bounds and commitInfo strings scrubbed."""
    out = dict(row)
    for kind in FILE_ACTIONS:
        body = row.get(kind)
        if not isinstance(body, dict):
            continue
        body = dict(body)
        if isinstance(body.get("stats"), str) and holds_token(pattern, str(body["stats"])):
            body["stats"] = _scrub_stats(str(body["stats"]), pattern)
        parsed = body.get("stats_parsed")
        if isinstance(parsed, dict):
            body["stats_parsed"] = {
                k: _null_bounds(v, pattern) if k in STATS_BOUNDS else v for k, v in parsed.items()
            }
        out[kind] = body
    if isinstance(row.get("commitInfo"), dict):
        out["commitInfo"] = _redact(row["commitInfo"], pattern)
    return out


def _structure(rows: list[dict[str, object]]) -> list[object]:
    """A checkpoint's rows without what a scrub may change: what must stay byte for byte."""
    kept: list[object] = []
    for row in rows:
        bare: dict[str, object] = {k: v for k, v in row.items() if k != "commitInfo"}
        for kind in FILE_ACTIONS:
            body = bare.get(kind)
            if isinstance(body, dict):
                bare[kind] = {k: v for k, v in body.items() if k not in ("stats", "stats_parsed")}
        kept.append(bare)
    return kept


class ScrubError(RuntimeError):
    """A scrub that would change more than statistics; nothing was written."""


def scrub_checkpoint(data: bytes, values: set[str]) -> bytes | None:
    """A checkpoint (Parquet) without the identifiers its statistics hold; None if clean.

    The same rule as :func:`scrub_commit`: bounds are hints, a reader without them reads the
    file. Only the file actions' statistics (``stats``, ``stats_parsed`` bounds) and
    ``commitInfo`` strings change; paths, sizes, partition values, the schema and every other
    action stay as they are (checked on the rewritten bytes, else :class:`ScrubError` and
    nothing is written). An identifier elsewhere (a partition value) is left for the
    read-back to report, never nulled.
    """
    pattern = token_regex(sorted(values))
    table = pq.read_table(io.BytesIO(data))
    rows = table.to_pylist()
    if not holds_token(pattern, str(rows)):
        return None
    scrubbed = [_scrub_row(row, pattern) for row in rows]
    if scrubbed == rows:
        return None  # the identifier is outside what a scrub may change
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(scrubbed, schema=table.schema), out)
    written = pq.read_table(io.BytesIO(out.getvalue()))
    if written.schema != table.schema or _structure(written.to_pylist()) != _structure(rows):
        raise ScrubError("a checkpoint scrub would change more than statistics: not written")
    return out.getvalue()


def _live(table: DeltaTable) -> list[str]:
    adds = table.get_add_actions(flatten=True)
    return [str(p) for p in pa.table(adds).column("path").to_pylist()]


# what names one row of a table that keeps raw records: the quarantine's key, bronze's
ROW_KEYS = (("source_object", "record_index"), ("source_object", "event_id"))


def _delete_predicate(subject: Subject, columns: Sequence[str], live: pa.Table) -> str | None:
    """What the delete removes: identifiers by value, rows matched in raw columns by their key.

    A row matched only in a raw column is named by its key (``source_object`` and
    ``record_index`` or ``event_id``), so the predicate (which delta-rs records) names objects
    and events, not the subject.
    """
    parts = []
    by_id = identifier_rows(live, subject)
    if pc.any(by_id).as_py():
        parts.append(subject.predicate(columns))
    only_raw = live.filter(pc.and_(raw_rows(live, subject), pc.invert(by_id)))
    if only_raw.num_rows:
        keys = next((k for k in ROW_KEYS if all(c in live.column_names for c in k)), None)
        if keys is None:
            raise ValueError(f"rows matched in {subject.raw_columns} have no key to delete by")
        rows = sorted({tuple(r[k] for k in keys) for r in only_raw.select(keys).to_pylist()})
        parts += [
            "("
            + " AND ".join(f"{k} = {sql_literal(v)}" for k, v in zip(keys, row, strict=True))
            + ")"
            for row in rows
        ]
    return " OR ".join(p for p in parts if p) or None


class NotErasableError(ValueError):
    """A table this engine cannot erase from safely; the message names it and the remedy."""


# Reader features the erasure does not handle: with column mapping a file's columns carry
# physical names that the checks of a file's decoded rows would not recognize. (Deletion
# vectors are applied by every read and purged: :func:`_purge_vectors`.)
UNERASABLE_READER_FEATURES = frozenset({"columnMapping"})


def check_erasable(uri: str, table: DeltaTable) -> None:
    """Refuse a table with a reader feature the erasure does not handle, before any change."""
    other = sorted(set(table.protocol().reader_features or []) & UNERASABLE_READER_FEATURES)
    if table.metadata().configuration.get("delta.columnMapping.mode", "none") != "none":
        other = sorted({*other, "columnMapping"})  # reader version 2 names no features
    if other:
        raise NotErasableError(
            f"{uri} has the reader feature(s) {', '.join(other)}, which the erasure does not "
            "handle: rewrite the table without them in Spark, then erase again"
        )


def _delete_rows(table: DeltaTable, subject: Subject) -> tuple[int, dict[str, int]]:
    """Delete the live rows holding the subject: rows deleted, and per landing object."""
    columns = [f.name for f in table.schema().fields]
    if not any(c in columns for c in [*subject.identifiers, *subject.raw_columns]):
        return 0, {}
    wanted = [*subject.identifiers, *subject.raw_columns, *(c for k in ROW_KEYS for c in k)]
    live_rows = read_rows(table, [c for c in dict.fromkeys(wanted) if c in columns])
    matched = live_rows.filter(rows_holding(live_rows, subject))
    predicate = _delete_predicate(subject, columns, live_rows) if matched.num_rows else None
    if predicate is None:
        return 0, {}
    by_object: Counter[str] = Counter()
    if "source_object" in matched.column_names:
        by_object.update(str(k) for k in matched.column("source_object").to_pylist())
    metrics = table.delete(predicate)
    return int(metrics.get("num_deleted_rows", 0) or 0), dict(by_object)


def _purge_vectors(
    uri: str, options: dict[str, str], table: DeltaTable, storage: Storage, subject: Subject
) -> None:
    """Rewrite the partitions whose live files still hold the subject behind a deletion vector.

    A row Spark deleted with a vector is hidden from readers but still bytes in a live file,
    and the delete above does not rewrite a file in which it matched no visible row. The
    partition of each such file is rewritten from its visible rows (the vectors applied, the
    rows unchanged, ``dataChange`` false): the old file is then no longer live, and is deleted
    with the older versions' files. Files whose vectors hide no identifier are left as they are.
    """
    if not has_deletion_vectors(table):
        return
    # a data file's name is unique in its table (a UUID); the vectors name files by full URI
    vectored = {
        str(f).rsplit("/", 1)[-1]
        for f in pa.table(table.deletion_vectors()).column("filepath").to_pylist()
    }
    adds = pa.table(table.get_add_actions(flatten=True))
    parts = [c for c in adds.column_names if c.startswith("partition.")]
    due: dict[tuple[tuple[str, str], ...], None] = {}
    for row in adds.select(["path", *parts]).to_pylist():
        path = str(row["path"])
        if path.rsplit("/", 1)[-1] in vectored and _holds(storage.get(path), subject):
            key = tuple((c.removeprefix("partition."), str(row[c])) for c in parts)
            due[key] = None
    for key in due:
        rewrite_partition(
            uri,
            options,
            [(c, "=", v) for c, v in key],
            above_files=0,
            table=table,
            reason="erasure purge of deletion vectors",
        )


def _scrub_log(storage: Storage, values: set[str], report: TableErasure) -> None:
    """Rewrite the commits and checkpoints that name an identifier."""
    for info in list(storage.list(LOG)):
        if info.path.endswith(".json"):
            scrubbed = scrub_commit(storage.get(info.path), values)
            if scrubbed is not None:
                storage.put(info.path, scrubbed)
                report.log_files_rewritten.append(info.path)
        elif info.path.endswith(".parquet"):
            scrubbed = scrub_checkpoint(storage.get(info.path), values)
            if scrubbed is not None:
                storage.put(info.path, scrubbed)
                report.checkpoints_rewritten.append(info.path)


def _versions_referencing(
    uri: str, options: dict[str, str], gone: set[str], below: int
) -> list[int]:
    """The versions before ``below`` whose files include one of ``gone``."""
    lost = []
    for version in range(below) if gone else ():
        try:
            old = open_table(uri, options, version)
        except Exception:
            continue  # a version whose log entries upkeep already removed
        if old is not None and gone & set(_live(old)):
            lost.append(version)
    return lost


def erase_from_table(
    uri: str,
    options: dict[str, str],
    subject: Subject,
    *,
    read_back: bool = True,
    delete: bool = True,
) -> TableErasure:
    """Delete the subject's rows, remove older files that hold them, then verify by reading.

    ``read_back=False`` leaves the verification to the caller (who reads back a whole location).
    ``delete=False`` only removes the files no live version holds and scrubs the log: a
    replica, whose delete is its source's, copied by the sync.
    """
    t0 = time.perf_counter()
    table = open_table(uri, options)
    if table is None:
        raise FileNotFoundError(f"{uri} is not a Delta table")
    check_erasable(uri, table)
    before = table.version()
    deleted, by_object = _delete_rows(table, subject) if delete else (0, {})
    storage = open_storage(uri, options, create=False)
    if delete:
        delta.settle_native_writes(uri, options, before)
        table.update_incremental()
        _purge_vectors(uri, options, table, storage, subject)
        table.update_incremental()
    after = table.version()
    live = set(_live(table))
    report = TableErasure(uri, before, after, deleted, rows_by_object=by_object)
    for path, size in _data_files(storage):
        if path in live:
            continue  # the delete rewrote every live file that held the subject
        if _holds(storage.get(path), subject):
            storage.delete(path)
            report.files_removed.append({"path": path, "bytes": size})
            report.bytes_removed += size
    _scrub_log(storage, subject.values(), report)
    gone = {str(f["path"]) for f in report.files_removed}
    report.versions_lost = _versions_referencing(uri, options, gone, after)
    if read_back:
        verify(storage, subject, report)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
