"""The Delta-log reader the sync and upkeep share: listing, commits, checkpoints, protocols.

Every path the log names is validated (relative, inside the table, not in ``_delta_log``); a
corrupt commit or checkpoint is a :class:`SyncError` naming the file and the version; a table
feature the reader does not carry stops it (:func:`check_protocols`).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from pipelines.lake.storage import (
    ObjectInfo,
    Storage,
    one_line,
)

LOG = "_delta_log/"
LAST_CHECKPOINT = "_delta_log/_last_checkpoint"
COMMIT_FILE = re.compile(r"^_delta_log/(\d{20})\.json$")
# Classic (N.checkpoint.parquet), multi-part (N.checkpoint.P.T.parquet) and V2 checkpoints
# (N.checkpoint.<uuid>.json|parquet, whose add actions may sit in _delta_log/_sidecars/).
CHECKPOINT_FILE = re.compile(
    r"^_delta_log/(\d{20})\.checkpoint"
    r"(?:\.(\d{10})\.(\d{10})\.parquet|\.([0-9A-Fa-f-]{36})\.(?:json|parquet)|\.parquet)$"
)
SIDECARS = "_delta_log/_sidecars/"
CRC_FILE = re.compile(r"^_delta_log/(\d{20})\.crc$")
# A relative path whose first segment looks like "scheme:" is a URI, not a file of the table.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
BYTES_PER_GB = 1024**3
# Called after each object the sync writes, with its kind and path: tests inject failures here.
Hook = Callable[[str, str], None]


class Remedy(StrEnum):
    """What would let a refused sync go on: each value names a :class:`.options.SyncOptions` field.

    The engine's message names no flag and no Dagster concept; each caller phrases the remedy
    in its own terms (the CLI its flags, the replica asset its run config).
    """

    RESEED = "reseed"  # replace the replica's log by the source's, from its newest checkpoint
    REPLACE_UNRELATED = "replace_unrelated"  # replace a target that holds another table


class SyncError(RuntimeError):
    """The sync cannot go on; the message names the table, the store and the object.

    ``remedy`` says what would let it go on (None: nothing the caller can ask for).
    """

    def __init__(self, message: str, remedy: Remedy | None = None) -> None:
        """The message, and the remedy for the caller to phrase."""
        super().__init__(message)
        self.remedy = remedy


class DivergedError(SyncError):
    """The target holds a commit that differs from the source's commit of the same version."""


class UnrelatedTargetError(DivergedError):
    """The target holds another table than the source (a different Delta table id)."""


class SourceBehindError(SyncError):
    """The source no longer holds what the replica needs (vacuumed or log-cleaned past it).

    Besides the full message: ``gone`` (what the source lacks, in a few words), the replica's
    ``held_version`` (None for a fresh or restarted replica: a reseed would not help), and the
    ``table`` and ``route`` :func:`sync_table` was syncing, so that a caller can say it in one
    short line with its own way to reseed.
    """

    def __init__(self, message: str, *, gone: str, held_version: int | None) -> None:
        """The message, and what a caller needs to phrase it briefly."""
        super().__init__(message, Remedy.RESEED if held_version is not None else None)
        self.gone = gone
        self.held_version = held_version
        self.table = ""
        self.route = ""


class MissingSourceFileError(SyncError):
    """A data file the source's log references does not exist at the source."""

    def __init__(self, message: str, path: str) -> None:
        """Keep the path so that the sync can say which versions needed it."""
        super().__init__(message)
        self.path = path


def commit_path(version: int) -> str:
    """Log path of a version's commit."""
    return f"{LOG}{version:020d}.json"


def version_where(storage: Storage, version: int) -> str:
    """A commit as errors name it: its path and version."""
    return f"{storage.uri}/{commit_path(version)} (version {version})"


@dataclass
class LogListing:
    """Log objects of one table, by version."""

    commits: dict[int, ObjectInfo] = field(default_factory=dict)
    checkpoints: dict[int, list[ObjectInfo]] = field(default_factory=dict)
    crcs: dict[int, ObjectInfo] = field(default_factory=dict)

    @property
    def latest(self) -> int | None:
        """Highest version with a commit or a checkpoint."""
        versions = list(self.commits) + list(self.checkpoints)
        return max(versions) if versions else None


def list_log(storage: Storage, from_version: int | None = None) -> LogListing:
    """Log objects at ``from_version`` and after (everything when None), by one listing."""
    offset = f"{LOG}{from_version:020d}" if from_version is not None else None
    out = LogListing()
    for info in storage.list(LOG, offset=offset):
        if m := COMMIT_FILE.match(info.path):
            out.commits[int(m.group(1))] = info
        elif m := CHECKPOINT_FILE.match(info.path):
            out.checkpoints.setdefault(int(m.group(1)), []).append(info)
        elif m := CRC_FILE.match(info.path):
            out.crcs[int(m.group(1))] = info
    return out


def last_checkpoint(storage: Storage) -> tuple[int | None, bytes | None]:
    """Version and raw bytes of ``_last_checkpoint``, (None, None) when absent."""
    try:
        raw = storage.get(LAST_CHECKPOINT)
    except FileNotFoundError:
        return None, None
    try:
        version = json.loads(raw)["version"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None, raw
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        return None, raw  # a hint only: a wrong one costs a longer listing, nothing else
    return version, raw


def latest_version(storage: Storage) -> int | None:
    """Latest version of the table in ``storage`` (listing from its last checkpoint on)."""
    cp, _ = last_checkpoint(storage)
    listing = list_log(storage, cp)
    if listing.latest is None and cp is not None:
        listing = list_log(storage, None)  # a stale or foreign hint: list the whole log
    return listing.latest


_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_INDEX = {c: i for i, c in enumerate(_Z85)}


def z85_decode(text: str) -> bytes:
    """Decode Z85 (ZeroMQ base-85), the encoding of deletion-vector UUIDs in Delta."""
    if len(text) % 5:
        raise ValueError(f"Z85 text length {len(text)} is not a multiple of 5")
    out = bytearray()
    for i in range(0, len(text), 5):
        value = 0
        for c in text[i : i + 5]:
            if c not in _Z85_INDEX:
                raise ValueError(f"{c!r} is not a Z85 character")
            value = value * 85 + _Z85_INDEX[c]
        if value >= 2**32:
            raise ValueError(f"Z85 group {text[i : i + 5]!r} is out of range")
        out += value.to_bytes(4, "big")
    return bytes(out)


def deletion_vector_path(dv: dict[str, Any]) -> str | None:
    """Relative path of a deletion vector's file, None for inline or absolute-path ones."""
    kind, value = dv.get("storageType"), str(dv.get("pathOrInlineDv", ""))
    if kind != "u":
        return None  # 'i' is inline; 'p' is an absolute path (refused by the sync's plan)
    if len(value) < 20:
        raise ValueError(f"{value!r} is shorter than a Z85-encoded UUID")
    prefix, encoded = value[:-20], value[-20:]
    raw = z85_decode(encoded).hex()
    uuid = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    name = f"deletion_vector_{uuid}.bin"
    return f"{prefix}/{name}" if prefix else name


def log_path(raw: Any, where: str, what: str = "data file") -> str:
    """The object key of a path the log names, if it lies inside the table's root.

    Delta paths are relative URIs (percent-encoded). Refused, whatever the store: a path that
    is not a string, is absolute (``/x``, ``s3://...``, ``file:...``, ``C:...``), has an
    empty, ``.`` or ``..`` segment, a control character, or points into ``_delta_log`` (a
    data file there would bypass the commits' create-only, in-order writes).
    """
    if not isinstance(raw, str) or not raw:
        raise SyncError(f"{where}: {what} path {raw!r} is not a non-empty string")
    path = unquote(raw)
    problem = None
    if _SCHEME.match(raw) or _SCHEME.match(path):
        problem = "is absolute (it has a URI scheme)"
    elif path.startswith(("/", "\\")):
        problem = "is absolute"
    elif any(ord(c) < 32 or ord(c) == 127 for c in path):
        problem = "contains a control character"
    elif any(seg in ("", ".", "..") for seg in re.split(r"[/\\]", path)):
        problem = "has an empty, '.' or '..' segment"
    elif path.split("/")[0] == LOG.rstrip("/"):
        problem = "points into _delta_log"
    if problem:
        raise SyncError(
            f"{where}: {what} path {raw!r} {problem}; the sync reads and writes only inside "
            "the table's root"
        )
    return path


def _size(value: Any, where: str, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SyncError(f"{where}: {what} size {value!r} is not a byte count")
    return value


def _deletion_vector(dv: Any, where: str) -> str | None:
    """Key of a deletion vector's file (None when inline), checked like a data file's."""
    if dv is None:
        return None
    if not isinstance(dv, dict):
        raise SyncError(f"{where}: deletionVector {dv!r} is not an object")
    kind = dv.get("storageType")
    if kind == "i":
        return None
    if kind == "p":
        raise SyncError(
            f"{where}: deletion vector at absolute path {dv.get('pathOrInlineDv')!r}; the sync "
            "reads and writes only inside the table's root"
        )
    if kind != "u":
        raise SyncError(f"{where}: deletion vector storageType {kind!r} is unknown")
    try:
        rel = deletion_vector_path(dv)
    except ValueError as exc:
        raise SyncError(f"{where}: deletion vector {dv.get('pathOrInlineDv')!r}: {exc}") from None
    return log_path(rel, where, "deletion vector")


def _add_files(act: Any, where: str, kind: str, files: dict[str, int | None]) -> None:
    """Record the files an ``add`` or ``cdc`` action asks for (data file, deletion vector)."""
    if not isinstance(act, dict):
        raise SyncError(f"{where}: {kind} action is not an object")
    path = log_path(act.get("path"), where, f"{kind}")
    files[path] = _size(act.get("size"), where, f"{kind} {path!r}")
    if (dv := _deletion_vector(act.get("deletionVector"), where)) is not None:
        files[dv] = None


def _metadata(meta: Any, where: str) -> dict[str, Any]:
    """The parts of a ``metaData`` action the sync uses: id, name and schema (validated)."""
    if not isinstance(meta, dict):
        raise SyncError(f"{where}: metaData is not an object")
    schema = meta.get("schemaString")
    try:
        parsed = json.loads(schema) if isinstance(schema, str) else None
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise SyncError(f"{where}: metaData.schemaString is not a JSON schema")
    name = meta.get("name")
    return {"id": meta.get("id"), "name": name if isinstance(name, str) else None, "schema": schema}


def _json_line(line: bytes, where: str, number: int) -> dict[str, Any]:
    try:
        action = json.loads(line)
    except (ValueError, RecursionError) as exc:
        detail = one_line(exc, 120)
        raise SyncError(f"{where}: line {number} is not JSON ({detail})") from None
    if not isinstance(action, dict):
        raise SyncError(f"{where}: line {number} is not a JSON object")
    return action


# Table features whose files the sync knows and copies (or that add no file at all): a
# replica of a table using any other feature could be copied wrongly, so it is refused.
CARRIED_FEATURES = frozenset(
    {
        "appendOnly",
        "invariants",
        "checkConstraints",
        "changeDataFeed",
        "generatedColumns",
        "columnMapping",
        "identityColumns",
        "deletionVectors",  # their files are copied (_deletion_vector)
        "timestampNtz",
        "typeWidening",
        "typeWidening-preview",
        "v2Checkpoint",  # top-level checkpoint and its sidecars are copied
        "domainMetadata",
        "rowTracking",
        "clustering",
        "icebergCompatV1",
        "icebergCompatV2",
        "inCommitTimestamp",
        "vacuumProtocolCheck",
        "variantType",
        "variantType-preview",
        "variantShredding-preview",
        "allowColumnDefaults",
    }
)
# Why some features cannot be carried by copying _delta_log: said in the refusal.
_UNCARRIED = {
    "catalogOwned": "its commits are owned by a catalog, not (only) by _delta_log",
    "catalogOwned-preview": "its commits are owned by a catalog, not (only) by _delta_log",
    "coordinatedCommits-preview": "its commits are ratified by a commit coordinator, not by "
    "_delta_log alone",
}


def check_protocols(protocols: Iterable[Any], where: str) -> None:
    """Refuse a table whose protocol names a feature the sync cannot carry, naming it."""
    for protocol in protocols:
        if not isinstance(protocol, dict):
            raise SyncError(f"{where}: protocol action is not an object")
        features = [
            f
            for key in ("readerFeatures", "writerFeatures")
            for f in (protocol.get(key) or [])
            if isinstance(f, str)
        ]
        for feature in dict.fromkeys(features):
            if feature not in CARRIED_FEATURES:
                why = _UNCARRIED.get(feature, "the sync does not know which files it needs")
                raise SyncError(
                    f"{where}: table feature {feature!r} cannot be replicated by the Delta-log "
                    f"sync ({why}); refusing before any byte is copied"
                )


@dataclass
class CommitInfo:
    """What one commit asks of the target."""

    version: int
    data: bytes
    files: dict[str, int | None] = field(default_factory=dict)  # path -> size if known
    removed: set[str] = field(default_factory=set)
    metadata: list[dict[str, Any]] = field(default_factory=list)  # every metaData, in order
    protocols: list[dict[str, Any]] = field(default_factory=list)
    # What upkeep needs besides: change-data files (never live), the deletion vectors of
    # removed files, and when each removal happened (ms since the epoch, when recorded).
    cdc: set[str] = field(default_factory=set)
    removed_dvs: set[str] = field(default_factory=set)
    removed_at: dict[str, int] = field(default_factory=dict)
    # The partitionValues of every add and remove: what the commit touched (verification).
    partitions: list[dict[str, Any]] = field(default_factory=list)


def _touched(action: dict[str, Any], partitions: list[dict[str, Any]]) -> None:
    """Record the partitionValues of an add or remove action (once each)."""
    for kind in ("add", "remove"):
        act = action.get(kind)
        values = act.get("partitionValues") if isinstance(act, dict) else None
        if isinstance(values, dict) and values not in partitions:
            partitions.append(values)


def parse_commit(version: int, data: bytes, where: str | None = None) -> CommitInfo:
    """Data files, removals and metaData of one commit's JSON lines, every path checked.

    Raises :class:`SyncError` naming ``where`` (default: the commit's log path and version)
    and the line when the commit is not JSON lines of actions or names a path outside the
    table's root.
    """
    where = where or f"{commit_path(version)} (version {version})"
    info = CommitInfo(version, data)
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        action = _json_line(line, where, number)
        for kind in ("add", "cdc"):
            if kind in action:
                _add_files(action[kind], where, kind, info.files)
        _touched(action, info.partitions)
        if isinstance(action.get("cdc"), dict):
            info.cdc.add(log_path(action["cdc"].get("path"), where, "cdc"))
        if "remove" in action:
            remove = action["remove"]
            if not isinstance(remove, dict):
                raise SyncError(f"{where}: remove action is not an object")
            path = log_path(remove.get("path"), where, "remove")
            info.removed.add(path)
            if (dv := _deletion_vector(remove.get("deletionVector"), where)) is not None:
                info.removed_dvs.add(dv)
            if isinstance(stamp := remove.get("deletionTimestamp"), int):
                info.removed_at[path] = stamp
        if "metaData" in action:
            info.metadata.append(_metadata(action["metaData"], where))
        if "protocol" in action:
            info.protocols.append(action["protocol"])
    return info


def _commit_metadata(data: bytes, where: str) -> list[dict[str, Any]]:
    """The metaData actions of a commit, parsing only lines that may hold one.

    Commits can be MBs of ``add`` lines; a key can only be spelled differently through a
    JSON unicode escape, so lines with neither ``metaData`` nor a backslash-u are skipped.
    """
    out = []
    for number, line in enumerate(data.splitlines(), 1):
        if b"metaData" in line or b"\\u" in line:
            action = _json_line(line, where, number)
            if "metaData" in action:
                out.append(_metadata(action["metaData"], where))
    return out


def get_many(storage: Storage, paths: list[str], concurrency: int) -> list[bytes]:
    """Several small objects (log entries) read at once."""
    if len(paths) <= 1:
        return [storage.get(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(paths))) as pool:
        return list(pool.map(storage.get, paths))


@dataclass
class CheckpointState:
    """What one checkpoint records: live files, metaData, protocol and its sidecar files."""

    files: dict[str, int | None] = field(default_factory=dict)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    protocols: list[dict[str, Any]] = field(default_factory=list)
    sidecars: list[str] = field(default_factory=list)  # object keys under _delta_log/_sidecars/
    removed_at: dict[str, int] = field(default_factory=dict)  # tombstones: path -> ms


def is_v2_checkpoint(path: str) -> bool:
    """True for a V2 checkpoint's top-level file (``N.checkpoint.<uuid>.json|parquet``)."""
    m = CHECKPOINT_FILE.match(path)
    return m is not None and m.group(4) is not None


def complete_checkpoint(parts: list[ObjectInfo]) -> list[ObjectInfo] | None:
    """One readable checkpoint among a version's files: V2, classic, or every part of a set.

    A multi-part checkpoint missing a part (a crashed writer) is not one.
    """
    v2 = [p for p in parts if is_v2_checkpoint(p.path)]
    if v2:
        return [sorted(v2, key=lambda p: p.path)[0]]
    groups: dict[int, list[ObjectInfo]] = {}
    for part in parts:
        m = CHECKPOINT_FILE.match(part.path)
        if m is None:
            continue
        if m.group(2) is None:
            return [part]
        groups.setdefault(int(m.group(3)), []).append(part)
    for total, found in sorted(groups.items()):
        if len({p.path for p in found}) == total:
            return sorted(found, key=lambda p: p.path)
    return None


def _sidecar_key(raw: Any, where: str) -> str:
    """Object key of a sidecar a V2 checkpoint names (by file name, or under _sidecars/)."""
    text = unquote(raw) if isinstance(raw, str) else raw
    if isinstance(text, str) and text.startswith(SIDECARS):
        raw = text[len(SIDECARS) :]
    return SIDECARS + log_path(raw, where, "sidecar")


def _state_from_actions(
    actions: Iterable[dict[str, Any]], where: str, state: CheckpointState, metadata_only: bool
) -> None:
    for action in actions:
        if not metadata_only and action.get("add") is not None:
            _add_files(action["add"], where, "add", state.files)
        if action.get("metaData") is not None:
            state.metadata.append(_metadata(action["metaData"], where))
        if action.get("protocol") is not None:
            state.protocols.append(action["protocol"])
        remove = action.get("remove")
        if not metadata_only and isinstance(remove, dict) and remove.get("path"):
            stamp = remove.get("deletionTimestamp")
            state.removed_at[log_path(remove["path"], where, "remove")] = (
                stamp if isinstance(stamp, int) else 0
            )
        sidecar = action.get("sidecar")
        if sidecar is not None:
            path = sidecar.get("path") if isinstance(sidecar, dict) else None
            state.sidecars.append(_sidecar_key(path, where))


class RangedFile(io.RawIOBase):
    """A read-only file over ranged reads of one object.

    A Parquet reader given one fetches only the footer and the column chunks it asks for,
    never the whole object.
    """

    def __init__(self, storage: Storage, path: str, size: int) -> None:
        """The object ``path`` of ``storage``, ``size`` bytes long (from its listing)."""
        super().__init__()
        self.storage, self.path, self.size, self.pos = storage, path, size, 0

    def readable(self) -> bool:
        """Always."""
        return True

    def seekable(self) -> bool:
        """Always."""
        return True

    def tell(self) -> int:
        """The position."""
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (no read)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes from the position (to the end when negative), by one ranged read."""
        end = self.size if size is None or size < 0 else min(self.size, self.pos + size)
        if end <= self.pos:
            return b""
        data = self.storage.get_range(self.path, self.pos, end - self.pos)
        self.pos += len(data)
        return data

    def footer(self) -> Any:
        """The Parquet footer (``FileMetaData``), by two ranged reads: its length, then it."""
        import pyarrow.parquet as pq

        if self.size < 12:
            raise ValueError(f"{self.size} bytes is too short for a Parquet file")
        tail = self.storage.get_range(self.path, self.size - 8, 8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or length > self.size - 12:
            raise ValueError("no Parquet footer at the end")
        meta = self.storage.get_range(self.path, self.size - 8 - length, length)
        return pq.read_metadata(io.BytesIO(b"PAR1" + meta + tail))

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer`` (what io's buffered readers call)."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _parquet_actions(
    source: bytes | RangedFile, where: str, wanted: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The ``wanted`` columns of a checkpoint's rows, as actions (columns read: those only).

    Given a :class:`RangedFile`, only the footer and those columns' chunks are read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fh = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        # a ranged file's footer is fetched on its own: the reader would take the last 64 kB
        footer = source.footer() if isinstance(source, RangedFile) else None
        parquet = pq.ParquetFile(fh, metadata=footer)
        available = set(parquet.schema_arrow.names)
        table = parquet.read(columns=[c for c in wanted if c in available])
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise SyncError(f"{where} is not a readable checkpoint: {one_line(exc)}") from None
    if table.num_columns:  # a row holds one action: the rows with none of these are skipped
        import pyarrow.compute as pc

        held = [pc.is_valid(table.column(n)) for n in table.column_names]
        any_held = held[0]
        for mask in held[1:]:
            any_held = pc.or_(any_held, mask)
        table = table.filter(any_held)
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    return [
        {name: values[i] for name, values in columns.items() if values[i] is not None}
        for i in range(table.num_rows)
    ]


def checkpoint_state(
    storage: Storage,
    version: int,
    parts: list[ObjectInfo],
    *,
    metadata_only: bool = False,
    tombstones_only: bool = False,
) -> CheckpointState:
    """Live files, metaData and protocol of a checkpoint (classic, multi-part or V2).

    A V2 checkpoint's add actions may live in sidecar files, read here too (not for
    ``metadata_only``, which needs the top-level file alone). With ``metadata_only`` a Parquet
    checkpoint is read by ranges, its footer and the metaData, protocol and sidecar columns
    alone: what that costs does not grow with the live files the checkpoint lists (the add
    column, nearly all of its bytes, is never fetched). ``tombstones_only`` reads the remove
    column besides (the tombstones, what upkeep's VACUUM plans from), and never the adds.
    """
    state = CheckpointState()
    chosen = complete_checkpoint(parts)
    if chosen is None:
        names = ", ".join(p.path for p in parts) or "none"
        raise SyncError(f"{storage.uri}: no complete checkpoint of version {version} ({names})")
    if tombstones_only:
        wanted: tuple[str, ...] = ("protocol", "metaData", "sidecar", "remove")
    else:
        wanted = ("protocol", "metaData", "sidecar") + (() if metadata_only else ("add", "remove"))
    ranged = metadata_only or tombstones_only
    for part in chosen:
        where = f"{storage.uri}/{part.path} (checkpoint of version {version})"
        if part.path.endswith(".json"):
            lines = enumerate(storage.get(part.path).splitlines(), 1)
            actions = [_json_line(line, where, n) for n, line in lines if line.strip()]
        elif ranged:
            actions = _parquet_actions(RangedFile(storage, part.path, part.size), where, wanted)
        else:
            actions = _parquet_actions(storage.get(part.path), where, wanted)
        if tombstones_only:
            actions = [{k: v for k, v in a.items() if k != "add"} for a in actions]
        _state_from_actions(actions, where, state, metadata_only)
    if not metadata_only:
        in_sidecar = ("remove",) if tombstones_only else ("add", "remove")
        for key in state.sidecars:
            where = f"{storage.uri}/{key} (sidecar of the checkpoint of version {version})"
            try:
                data = storage.get(key)
            except FileNotFoundError:
                raise SyncError(f"{where} is named by the checkpoint but does not exist") from None
            actions = _parquet_actions(data, where, in_sidecar)
            _state_from_actions(actions, where, state, False)
    return state


def metadata_at(
    storage: Storage,
    version: int,
    known: dict[int, bytes],
    checkpoint: int | None,
    checkpoints: dict[int, list[ObjectInfo]],
) -> dict[str, Any]:
    """The metaData in effect at ``version``: the newest at or before it.

    Reads commits backwards down to the newest checkpoint at or before ``version``, then that
    checkpoint's metaData column; so at most a checkpoint interval of small reads.
    """
    listed = dict(checkpoints)
    if checkpoint is not None and checkpoint <= version and checkpoint not in listed:
        listed.update(list_log(storage, checkpoint).checkpoints)
    usable = [v for v, parts in listed.items() if v <= version and complete_checkpoint(parts)]
    if not usable:
        # An offset listing starts at the replica's version; the checkpoint covering it may
        # be older (log cleanup keeps the log from there on).
        listed.update(list_log(storage, None).checkpoints)
        usable = [v for v, parts in listed.items() if v <= version and complete_checkpoint(parts)]
    floor = max(usable) if usable else None
    v = version
    while v >= 0 and (floor is None or v > floor):
        try:
            data = known.get(v) or storage.get(commit_path(v))
        except FileNotFoundError:
            break
        if found := _commit_metadata(data, version_where(storage, v)):
            return found[-1]
        v -= 1
    if floor is not None:
        state = checkpoint_state(storage, floor, listed[floor], metadata_only=True)
        if state.metadata:
            return state.metadata[-1]
    raise SyncError(
        f"{storage.uri}: no metaData action found at or before version {version} (commits "
        f"{v + 1}..{version} hold none, and no checkpoint before them could be read)"
    )


def table_id(storage: Storage) -> str | None:
    """The Delta table id (``metaData.id``) at the table's latest version, None if unreadable.

    A replica carries its source's commits byte for byte, so it carries the source's id too:
    this is how a sync tells a replica of its source from another table.
    """
    listing = list_log(storage, None)
    if listing.latest is None:
        return None
    cp = max(listing.checkpoints) if listing.checkpoints else None
    try:
        meta = metadata_at(storage, listing.latest, {}, cp, listing.checkpoints)
    except SyncError:
        return None
    return meta["id"] if isinstance(meta.get("id"), str) and meta["id"] else None
