"""Erasure of a data subject from one Delta table, every kept version included, and its proof.

A first piece of issue #29's erasure: the subject's rows are deleted from the table (a new
version), then every data file an older version still references that holds the subject is
deleted from storage, and the commits whose file statistics carry an identifier as a min/max
bound are rewritten without those bounds, whatever the VACUUM floor would keep (erasure wins
over retention: those versions can no longer be read, and the receipt says which files went).
The verification reads back, independently of the delete, every data file under the table
(decoded, not only raw bytes: Parquet pages are compressed) and every log file, and counts the
subject's identifiers.

Not yet: checkpoints holding an identifier (found by the verification, not rewritten), landing
objects, the quarantine's ``raw`` bytes, silver by keyed hash, deletion
vectors written by Spark, the request table, sensor and deadline, models, the receipt table.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from pipelines.lake.delta import open_table, sql_literal
from pipelines.lake.storage import Storage, open_storage

LOG = "_delta_log/"


@dataclass(frozen=True)
class Subject:
    """Who is erased: values per column that identify them (``customer_id``, ``email``)."""

    identifiers: Mapping[str, tuple[str, ...]]

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

    def needles(self) -> list[bytes]:
        """Every identifier as bytes, for a scan of undecoded files (logs)."""
        return sorted({v.encode() for vals in self.identifiers.values() for v in vals})


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


def _holds(data: bytes, subject: Subject) -> bool:
    """True when a Parquet file, decoded, holds one of the subject's identifiers."""
    table = pq.read_table(io.BytesIO(data))
    for column, values in subject.identifiers.items():
        if column in table.column_names and values:
            col = table.column(column)
            text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
            if text and pc.any(pc.is_in(col, pa.array(values, col.type))).as_py():
                return True
    return False


def _data_files(storage: Storage) -> list[tuple[str, int]]:
    return [
        (i.path, i.size)
        for i in storage.list()
        if i.path.endswith(".parquet") and not i.path.startswith(LOG)
    ]


def verify(storage: Storage, subject: Subject, report: TableErasure) -> None:
    """Read back every data file (decoded) and every log file (bytes) and count the subject."""
    needles = subject.needles()
    for path, size in _data_files(storage):
        data = storage.get(path)
        report.files_scanned += 1
        report.bytes_scanned += size
        if _holds(data, subject) or any(n in data for n in needles):
            report.found_in_data_files += 1
    for info in list(storage.list(LOG)):
        data = storage.get(info.path)
        report.files_scanned += 1
        report.bytes_scanned += info.size
        decoded = data
        if info.path.endswith(".parquet"):
            # a checkpoint: its stats and partition values, decoded
            decoded = str(pq.read_table(io.BytesIO(data)).to_pylist()).encode()
        if any(n in decoded for n in needles):
            report.found_in_log_files += 1


def _drop_bounds(node: object, values: set[str]) -> object:
    """Statistics with every min/max bound that is (or holds) an identifier removed."""
    if isinstance(node, dict):
        return {
            k: _drop_bounds(v, values)
            for k, v in node.items()
            if not (isinstance(v, str) and any(x in v for x in values))
        }
    return node


def _redact(node: object, values: set[str]) -> object:
    """Every string that holds an identifier replaced by ``[erased]``."""
    if isinstance(node, dict):
        return {k: _redact(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact(v, values) for v in node]
    if isinstance(node, str) and any(x in node for x in values):
        return "[erased]"
    return node


def scrub_commit(data: bytes, values: set[str]) -> bytes | None:
    """A commit without the identifiers its statistics and ``commitInfo`` hold; None if clean.

    Bounds are only hints for skipping files: a reader without them reads the file. Nothing else
    of the commit changes (its md5 does: a replica compares commits, see docs/privacy.md).
    """
    if not any(x.encode() in data for x in values):
        return None
    lines = []
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        if "commitInfo" in action:
            # the erasing DELETE's own predicate names the subject (delta-rs records it)
            action["commitInfo"] = _redact(action["commitInfo"], values)
        for kind in ("add", "remove"):
            body = action.get(kind)
            if isinstance(body, dict) and isinstance(body.get("stats"), str):
                stats = json.loads(body["stats"])
                for bound in ("minValues", "maxValues"):
                    if bound in stats:
                        stats[bound] = _drop_bounds(stats[bound], values)
                body["stats"] = json.dumps(stats, separators=(",", ":"))
        lines.append(json.dumps(action, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _live(table: DeltaTable) -> list[str]:
    adds = table.get_add_actions(flatten=True)
    return [str(p) for p in pa.table(adds).column("path").to_pylist()]


def erase_from_table(uri: str, options: dict[str, str], subject: Subject) -> TableErasure:
    """Delete the subject's rows, remove older files that hold them, then verify by reading."""
    t0 = time.perf_counter()
    table = open_table(uri, options)
    if table is None:
        raise FileNotFoundError(f"{uri} is not a Delta table")
    before = table.version()
    columns = [f.name for f in table.schema().fields]
    predicate = subject.predicate(columns)
    deleted = 0
    if predicate is not None:
        metrics = table.delete(predicate)
        deleted = int(metrics.get("num_deleted_rows", 0) or 0)
    after = table.version()
    live = set(_live(table))
    storage = open_storage(uri, options, create=False)
    report = TableErasure(uri, before, after, deleted)
    for path, size in _data_files(storage):
        if path in live:
            continue  # the delete rewrote every live file that held the subject
        if _holds(storage.get(path), subject):
            storage.delete(path)
            report.files_removed.append({"path": path, "bytes": size})
            report.bytes_removed += size
    values = {v for vals in subject.identifiers.values() for v in vals}
    for info in list(storage.list(LOG)):
        if info.path.endswith(".json") and not info.path.endswith("_last_checkpoint"):
            scrubbed = scrub_commit(storage.get(info.path), values)
            if scrubbed is not None:
                storage.put(info.path, scrubbed)
                report.log_files_rewritten.append(info.path)
    gone = {str(f["path"]) for f in report.files_removed}
    for version in range(after):
        try:
            old = open_table(uri, options, version)
        except Exception:
            continue
        if old is not None and gone & set(_live(old)):
            report.versions_lost.append(version)
    verify(storage, subject, report)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
