"""Delta-log-aware replication of a Delta table between any two stores.

The source's ``_delta_log`` is listed from the target's last version on (an offset listing, so
a sync with nothing new costs a handful of requests whatever the table's size). The data files
the new commits reference (``add``, ``cdc`` and deletion vectors) that the target lacks are
streamed across with bounded concurrency and verified (size always; MD5 where a store gives
one); then the commits are written in version order, each create-only, each followed by its
checkpoint files; ``_last_checkpoint`` last. So a reader of the target always sees a complete
version of the source, a crash at any point is finished by the next run without copying again
what is there, and a target commit that differs from the source's is a divergence, not
something to overwrite.

Hostile input: URIs are validated before anything is opened; every path the log names must
stay inside the table's root (relative, no ``..``, no scheme, not in ``_delta_log``); the
sovereignty policy sees the schema in effect at every copied version; a corrupt commit or
checkpoint is an error naming the file and the version; ``--reseed`` only ever replaces a
replica of the same table. See docs/sync.md.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote

from pipelines.lake.config import LakeConfig
from pipelines.lake.storage import (
    Copied,
    ObjectInfo,
    ObstoreStorage,
    Storage,
    TableUri,
    UriError,
    gives_md5,
    md5_hex,
    one_line,
    open_storage,
    parse_uri,
    stream_copy,
)
from pipelines.sovereignty.policy import (
    Route,
    TableEvidence,
    check_route,
    egress_price,
    resolve_route,
)

LOG = "_delta_log/"
LAST_CHECKPOINT = "_delta_log/_last_checkpoint"
_COMMIT = re.compile(r"^_delta_log/(\d{20})\.json$")
# Classic (N.checkpoint.parquet), multi-part (N.checkpoint.P.T.parquet) and V2 checkpoints
# (N.checkpoint.<uuid>.json|parquet, whose add actions may sit in _delta_log/_sidecars/).
_CHECKPOINT = re.compile(
    r"^_delta_log/(\d{20})\.checkpoint"
    r"(?:\.(\d{10})\.(\d{10})\.parquet|\.([0-9A-Fa-f-]{36})\.(?:json|parquet)|\.parquet)$"
)
SIDECARS = "_delta_log/_sidecars/"
_CRC = re.compile(r"^_delta_log/(\d{20})\.crc$")
# A relative path whose first segment looks like "scheme:" is a URI, not a file of the table.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
BYTES_PER_GB = 1024**3
# Called after each object the sync writes, with its kind and path: tests inject failures here.
Hook = Callable[[str, str], None]


class SyncError(RuntimeError):
    """The sync cannot go on; the message names the table, the store and the object."""


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
        super().__init__(message)
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


def _where(storage: Storage, version: int) -> str:
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
        if m := _COMMIT.match(info.path):
            out.commits[int(m.group(1))] = info
        elif m := _CHECKPOINT.match(info.path):
            out.checkpoints.setdefault(int(m.group(1)), []).append(info)
        elif m := _CRC.match(info.path):
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


@dataclass
class SyncPlan:
    """What a sync will do, decided from the two logs alone (no data read)."""

    source_uri: str
    target_uri: str
    source_version: int
    target_version: int | None
    commits: list[CommitInfo]
    checkpoints: dict[int, list[ObjectInfo]]
    crcs: dict[int, ObjectInfo]
    seed_checkpoint: int | None
    seed_files: dict[str, int | None]
    last_checkpoint: bytes | None
    last_checkpoint_version: int | None
    # (version, metaData) of every schema in effect at a version the plan copies: the one it
    # starts from (seed checkpoint or the target's version) and every metaData of its commits.
    metadata: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    reseed: bool = False
    # Incremental (the replica holds versions up to target_version): every file the new
    # versions need must exist at the source; a fresh or restarted replica mirrors the
    # source's history as it is, files a later version removes and the source vacuumed too.
    strict: bool = False
    held_version: int | None = None  # the replica's version before the sync
    drop_below: int | None = None  # a restart leaves no gap: older log entries are removed

    @property
    def versions_behind(self) -> int:
        """Versions the target lacks."""
        return self.source_version - (-1 if self.target_version is None else self.target_version)

    def data_files(self) -> dict[str, int | None]:
        """Every data file the planned versions reference, with its size when known."""
        files = dict(self.seed_files)
        for c in self.commits:
            files.update(c.files)
        return files

    def removed_later(self) -> set[str]:
        """Files some planned commit removes (a vacuumed source may have deleted them)."""
        return set().union(*(c.removed for c in self.commits)) if self.commits else set()

    def evidence(self, names: Iterable[str]) -> TableEvidence:
        """What the policy judges: the table's names and every schema the plan copies."""
        recorded = [m["name"] for _, m in self.metadata if m.get("name")]
        return TableEvidence(
            names=tuple(dict.fromkeys([*names, *recorded])),
            schemas=tuple((v, m["schema"]) for v, m in self.metadata),
        )


@dataclass
class SyncReport:
    """What a sync did (or, dry, would do)."""

    table: str
    source: str
    target: str
    route: str
    route_checked: bool
    dry_run: bool
    reseeded: bool
    source_version: int
    target_version_before: int | None
    target_version_after: int | None
    versions_behind_before: int
    versions_behind_after: int
    files_copied: int
    bytes_copied: int
    files_already_present: int
    commits_copied: int
    checkpoints_copied: int
    files_missing_at_source: int
    seconds: float
    egress_usd_per_gb: float
    egress_usd: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _get_many(storage: Storage, paths: list[str], concurrency: int) -> list[bytes]:
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
    m = _CHECKPOINT.match(path)
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
        m = _CHECKPOINT.match(part.path)
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


def _parquet_actions(data: bytes, where: str, wanted: tuple[str, ...]) -> list[dict[str, Any]]:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    fh = io.BytesIO(data)
    try:
        available = set(pq.read_schema(fh).names)
        table = pq.read_table(fh, columns=[c for c in wanted if c in available])
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise SyncError(f"{where} is not a readable checkpoint: {one_line(exc)}") from None
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    return [
        {name: values[i] for name, values in columns.items() if values[i] is not None}
        for i in range(table.num_rows)
    ]


def _checkpoint_state(
    storage: Storage, version: int, parts: list[ObjectInfo], *, metadata_only: bool = False
) -> CheckpointState:
    """Live files, metaData and protocol of a checkpoint (classic, multi-part or V2).

    A V2 checkpoint's add actions may live in sidecar files, read here too (not for
    ``metadata_only``, which needs the top-level file alone).
    """
    state = CheckpointState()
    chosen = complete_checkpoint(parts)
    if chosen is None:
        names = ", ".join(p.path for p in parts) or "none"
        raise SyncError(f"{storage.uri}: no complete checkpoint of version {version} ({names})")
    wanted = ("protocol", "metaData", "sidecar") + (() if metadata_only else ("add", "remove"))
    for part in chosen:
        where = f"{storage.uri}/{part.path} (checkpoint of version {version})"
        data = storage.get(part.path)
        if part.path.endswith(".json"):
            lines = enumerate(data.splitlines(), 1)
            actions = [_json_line(line, where, n) for n, line in lines if line.strip()]
        else:
            actions = _parquet_actions(data, where, wanted)
        _state_from_actions(actions, where, state, metadata_only)
    if not metadata_only:
        for key in state.sidecars:
            where = f"{storage.uri}/{key} (sidecar of the checkpoint of version {version})"
            try:
                data = storage.get(key)
            except FileNotFoundError:
                raise SyncError(f"{where} is named by the checkpoint but does not exist") from None
            actions = _parquet_actions(data, where, ("add", "remove"))
            _state_from_actions(actions, where, state, False)
    return state


def _metadata_at(
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
        if found := _commit_metadata(data, _where(storage, v)):
            return found[-1]
        v -= 1
    if floor is not None:
        state = _checkpoint_state(storage, floor, listed[floor], metadata_only=True)
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
        meta = _metadata_at(storage, listing.latest, {}, cp, listing.checkpoints)
    except SyncError:
        return None
    return meta["id"] if isinstance(meta.get("id"), str) and meta["id"] else None


def _divergence(
    src: Storage,
    dst: Storage,
    target_version: int,
    source_version: int,
    listing: LogListing,
    known: dict[int, bytes],
) -> str | None:
    """Why the target is not a prefix of the source's history (None when it is)."""
    if target_version > source_version:
        return f"the target is at version {target_version}, the source at {source_version}"
    if target_version in listing.commits:
        try:
            ours = dst.get(commit_path(target_version))
        except FileNotFoundError:
            return None  # seeded from a checkpoint without its commit: nothing to compare
        theirs = src.get(commit_path(target_version))
        known[target_version] = theirs
        if md5_hex(ours) != md5_hex(theirs):
            return (
                f"commit {target_version} differs (target md5 {md5_hex(ours)}, "
                f"source md5 {md5_hex(theirs)})"
            )
    return None


def _check_replaceable(
    src: Storage, dst: Storage, reason: str, *, reseed: bool, replace_unrelated: bool
) -> None:
    """Allow replacing a diverged target's log, or raise saying why not.

    ``reseed`` only replaces a replica of the same table (same ``metaData.id``); another
    table at the target is destroyed only with ``replace_unrelated``.
    """
    source_id, target_id = table_id(src), table_id(dst)
    same = source_id is not None and source_id == target_id
    if replace_unrelated or (same and reseed):
        return
    if same:
        raise DivergedError(
            f"replica {dst.uri} has diverged from source {src.uri}: {reason}; "
            "refusing to sync (re-run with --reseed to replace the replica's log)"
        )
    holds = f"table id {target_id}" if target_id else "no readable table id"
    raise UnrelatedTargetError(
        f"{dst.uri} is not a replica of {src.uri} ({reason}; the target has {holds}, the source "
        f"table id {source_id}); refusing to {'reseed' if reseed else 'sync'}: --reseed only "
        "replaces a replica of the same table (--replace-unrelated-target destroys the "
        "target's log)"
    )


def _missing_at(dst: Storage, parts: list[ObjectInfo]) -> bool:
    for part in parts:
        have = dst.head(part.path)
        if have is None or have.size != part.size:
            return True
    return False


def _seed(
    src: Storage, listing: LogListing, source_version: int
) -> tuple[int, dict[str, int | None], dict[str, Any]]:
    """Version, live files and metaData of the checkpoint a fresh replica starts from.

    Used when the source's early commits were cleaned up: its newest checkpoint is the
    start, and that checkpoint's metaData is the schema of everything the seed copies.
    """
    candidates = [
        v
        for v, parts in listing.checkpoints.items()
        if v <= source_version and complete_checkpoint(parts)
    ]
    if not candidates:
        raise SyncError(f"{src.uri}: no commit 0 and no checkpoint to start a replica from")
    version = max(candidates)
    state = _checkpoint_state(src, version, listing.checkpoints[version])
    check_protocols(state.protocols, f"{src.uri} (checkpoint of version {version})")
    files, metadata = state.files, state.metadata
    if not metadata:
        raise SyncError(
            f"{src.uri}: the checkpoint of version {version} has no metaData; "
            "the schema of the seeded version is unknown"
        )
    return version, files, metadata[-1]


def _read_commits(
    src: Storage, listing: LogListing, versions: range, concurrency: int
) -> list[CommitInfo]:
    """The source's commits of ``versions``, read in parallel and parsed (paths checked)."""
    gaps = [v for v in versions if v not in listing.commits]
    if gaps:
        raise SyncError(f"{src.uri}: the log has no commit for version(s) {gaps[:5]}")
    blobs = _get_many(src, [commit_path(v) for v in versions], concurrency)
    commits = [parse_commit(v, b, _where(src, v)) for v, b in zip(versions, blobs, strict=True)]
    if versions and versions[0] == 0 and not commits[0].metadata:
        raise SyncError(f"{_where(src, 0)}: the first commit has no metaData action")
    return commits


def reseed_hint(source_uri: str, target_uri: str) -> str:
    """The command that restarts a replica from its source (said in every such error)."""
    return f"lakehouse sync --from {source_uri} --to {target_uri} --reseed"


def _restart_needed(
    src: Storage,
    dst: Storage,
    target_version: int,
    source_version: int,
    listing: LogListing,
    reseed: bool,
) -> bool:
    """Whether a replica that has not diverged must be restarted from the source.

    Raises when the source's log no longer holds the commits after the replica's version
    (log cleanup past what the replica needs) and ``reseed`` was not asked for.
    """
    if target_version >= source_version:
        return False
    if target_version + 1 not in listing.commits:
        if reseed:
            return True
        later = [v for v in listing.commits if v > target_version]
        gap = f"{target_version + 1}..{min(later) - 1}" if later else f"{target_version + 1}.."
        raise SourceBehindError(
            f"{src.uri}: the source's log no longer holds version(s) {gap} that replica "
            f"{dst.uri} (at version {target_version}) needs to reach version {source_version}: "
            "it was cleaned up past the replica's version; restart the replica from the "
            f"source's newest checkpoint with `{reseed_hint(src.uri, dst.uri)}`",
            gone=f"log version(s) {gap}",
            held_version=target_version,
        )
    return reseed


def _with_sidecars(src: Storage, version: int, parts: list[ObjectInfo]) -> list[ObjectInfo]:
    """A version's checkpoint files to copy: each V2 checkpoint's sidecars before it."""
    out: list[ObjectInfo] = []
    for part in parts:
        if not is_v2_checkpoint(part.path):
            continue
        for key in _checkpoint_state(src, version, [part], metadata_only=True).sidecars:
            info = src.head(key)
            if info is None:
                raise SyncError(
                    f"{src.uri}/{key} is named by the checkpoint {part.path} but does not exist"
                )
            out.append(info)
    return out + sorted(parts, key=lambda p: p.path)


def plan_sync(
    src: Storage,
    dst: Storage,
    *,
    reseed: bool = False,
    replace_unrelated: bool = False,
    concurrency: int = 16,
) -> SyncPlan:
    """Read both logs (never the data) and decide what the target lacks.

    Raises :class:`DivergedError` when the target's latest commit differs from the source's
    commit of that version, or the target is ahead; with ``reseed`` a replica of the same
    table is planned afresh instead (its log is replaced when the plan is executed), and
    :class:`UnrelatedTargetError` when the target holds another table, unless
    ``replace_unrelated``. Raises :class:`SourceBehindError` when the source's log was cleaned
    up past the replica's version; ``reseed`` then restarts the replica from the source's
    newest checkpoint (written before the replica's older log entries are removed). A table
    feature the sync cannot carry is refused (:func:`check_protocols`).
    """
    target_version = latest_version(dst)
    lc_version, lc_bytes = last_checkpoint(src)
    listing = list_log(src, target_version)
    source_version = listing.latest
    if source_version is None and target_version is not None:
        source_version = latest_version(src)
    if source_version is None:
        raise SyncError(f"{src.uri} is not a Delta table: {LOG} has no commit")
    known: dict[int, bytes] = {}
    reseeding = restarting = False
    held = target_version
    if target_version is not None:
        reason = _divergence(src, dst, target_version, source_version, listing, known)
        if reason:
            _check_replaceable(src, dst, reason, reseed=reseed, replace_unrelated=replace_unrelated)
            reseeding = True
        else:
            restarting = _restart_needed(src, dst, target_version, source_version, listing, reseed)
        if reseeding or restarting:
            target_version = None
            listing = list_log(src, None)
    seed_checkpoint: int | None = None
    seed_files: dict[str, int | None] = {}
    metadata: list[tuple[int, dict[str, Any]]] = []
    if target_version is None and 0 not in listing.commits:
        seed_checkpoint, seed_files, seed_meta = _seed(src, listing, source_version)
        metadata.append((seed_checkpoint, seed_meta))
        # The seed's own commit too, when the source still has it: the replica's latest
        # commit is then always there to compare with the source's (divergence check).
        start = seed_checkpoint if seed_checkpoint in listing.commits else seed_checkpoint + 1
    else:
        start = 0 if target_version is None else target_version + 1
    commits = _read_commits(src, listing, range(start, source_version + 1), concurrency)
    for c in commits:
        check_protocols(c.protocols, _where(src, c.version))
    known.update({c.version: c.data for c in commits})
    for c in commits:
        metadata.extend((c.version, m) for m in c.metadata)
    low = target_version if target_version is not None else -1
    checkpoints = {
        v: _with_sidecars(src, v, parts)
        for v, parts in listing.checkpoints.items()
        if low <= v <= source_version
    }
    resume = target_version is not None and _missing_at(dst, checkpoints.get(target_version, []))
    if start > 0 and seed_checkpoint is None and (resume or (commits and not commits[0].metadata)):
        # The schema before the first new commit. With nothing to copy, nothing is judged:
        # a no-op reads no checkpoint and costs a log listing and two small reads.
        base = _metadata_at(src, start - 1, known, lc_version, listing.checkpoints)
        metadata.insert(0, (start - 1, base))
    return SyncPlan(
        source_uri=src.uri,
        target_uri=dst.uri,
        source_version=source_version,
        target_version=target_version,
        commits=commits,
        checkpoints=checkpoints,
        crcs={v: i for v, i in listing.crcs.items() if start <= v <= source_version},
        seed_checkpoint=seed_checkpoint,
        seed_files=seed_files,
        last_checkpoint=lc_bytes
        if lc_version is not None and lc_version <= source_version
        else None,
        last_checkpoint_version=lc_version,
        metadata=metadata,
        reseed=reseeding,
        strict=target_version is not None,
        held_version=held,
        drop_below=seed_checkpoint
        if restarting
        and seed_checkpoint is not None
        and held is not None
        and seed_checkpoint > held + 1
        else None,
    )


@dataclass
class _Tally:
    files: int = 0
    bytes: int = 0
    present: int = 0
    missing: int = 0
    commits: int = 0
    checkpoints: int = 0


def _verify(
    path: str, src: Storage, dst: Storage, copied: Copied, dst_info: ObjectInfo | None
) -> None:
    where = f"{dst.uri}/{path}"
    if dst_info is None or dst_info.size != copied.size:
        got = None if dst_info is None else dst_info.size
        dst.delete(path)
        raise SyncError(f"copy of {src.uri}/{path} to {where}: size {got} != {copied.size}")
    for name, md5 in (("source", copied.source_md5), ("target", dst_info.md5)):
        if md5 is not None and copied.md5 and md5 != copied.md5:
            dst.delete(path)
            raise SyncError(
                f"copy of {src.uri}/{path} to {where}: {name} MD5 {md5} != streamed {copied.md5}"
            )


def _copy_object(src: Storage, dst: Storage, path: str, hash_md5: bool) -> Copied:
    if isinstance(src, ObstoreStorage) and isinstance(dst, ObstoreStorage):
        return src.copy_to(path, dst, path, hash_md5=hash_md5)
    return stream_copy(src, path, dst, path)


def _copy_one(
    src: Storage,
    dst: Storage,
    path: str,
    size: int | None,
    removed_later: set[str],
    dry_run: bool,
    hook: Hook | None,
    hash_md5: bool,
    count: Callable[..., None],
) -> None:
    """Copy one data file unless the target has it (same size); ``count`` tallies the outcome."""
    have = dst.head(path)
    if have is not None and (size is None or have.size == size):
        if size is None:
            theirs = src.head(path)
            if theirs is not None and theirs.size != have.size:
                have = None
        if have is not None:
            count(present=1)
            return
    if dry_run:
        theirs = src.head(path)
        count(**({"missing": 1} if theirs is None else {"files": 1, "bytes": theirs.size}))
        return
    try:
        copied = _copy_object(src, dst, path, hash_md5)
    except FileNotFoundError:
        if path in removed_later:
            count(missing=1)  # vacuumed at the source; no version still needs it
            return
        raise MissingSourceFileError(
            f"{src.uri}/{path} is referenced by the source's log but does not exist", path
        ) from None
    if size is not None and copied.size != size:
        raise SyncError(f"{src.uri}/{path} has {copied.size} bytes, its log entry says {size}")
    _verify(path, src, dst, copied, dst.head(path))
    count(files=1, bytes=copied.size)
    if hook:
        hook("file", path)


def _copy_files(
    src: Storage,
    dst: Storage,
    files: dict[str, int | None],
    removed_later: set[str],
    concurrency: int,
    dry_run: bool,
    hook: Hook | None,
    tally: _Tally,
    hash_md5: bool,
) -> None:
    """Copy the files the target lacks, at most ``concurrency`` at a time.

    A fixed set of worker threads takes files in path order, each copy with blocking store
    calls (see :meth:`~pipelines.lake.storage.ObstoreStorage.copy_to`). After the first failure no
    worker starts another copy; copies in flight end normally, every worker is joined, and
    only then is the first error raised: nothing runs on once the sync has returned.
    """
    if not files:
        return
    pending = iter(sorted(files.items()))
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def count(**deltas: int) -> None:
        with lock:
            for name, delta in deltas.items():
                setattr(tally, name, getattr(tally, name) + delta)

    def worker() -> None:
        while not stop.is_set():
            with lock:
                item = next(pending, None)
            if item is None:
                return
            try:
                _copy_one(src, dst, *item, removed_later, dry_run, hook, hash_md5, count)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                stop.set()
                return

    workers = min(concurrency, len(files))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(worker) for _ in range(workers)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()  # e.g. KeyboardInterrupt: let the workers finish what they hold
            raise
    if errors:
        raise errors[0]


def _put_log_object(dst: Storage, path: str, data: bytes, kind: str) -> bool:
    """Write a log object create-only; True if written, False if an equal one was there."""
    if dst.put(path, data, create_only=True):
        return True
    existing = dst.get(path)
    if md5_hex(existing) != md5_hex(data):
        raise DivergedError(
            f"{dst.uri}/{path} already exists with other content ({kind}); another writer "
            "changed the replica (re-run with --reseed to replace its log)"
        )
    return False


def _copy_checkpoint(
    src: Storage,
    dst: Storage,
    parts: Iterable[ObjectInfo],
    hook: Hook | None,
    tally: _Tally,
    hash_md5: bool,
) -> None:
    for part in parts:
        have = dst.head(part.path)
        if have is not None and have.size == part.size:
            continue
        copied = _copy_object(src, dst, part.path, hash_md5)
        _verify(part.path, src, dst, copied, dst.head(part.path))
        tally.checkpoints += 1
        tally.bytes += copied.size
        if hook:
            hook("checkpoint", part.path)


def _write_log(
    plan: SyncPlan, src: Storage, dst: Storage, hook: Hook | None, tally: _Tally, hash_md5: bool
) -> None:
    """Commits in version order, each followed by its checkpoint and .crc; then the hint."""
    if plan.reseed:
        # Only now, with every data file in place: a failed copy leaves the old log readable.
        for info in list(dst.list(LOG)):
            dst.delete(info.path)
    if plan.seed_checkpoint is not None:
        _copy_checkpoint(src, dst, plan.checkpoints[plan.seed_checkpoint], hook, tally, hash_md5)
    if plan.target_version is not None and plan.target_version in plan.checkpoints:
        # A crash may have come between the target's last commit and its checkpoint.
        _copy_checkpoint(src, dst, plan.checkpoints[plan.target_version], hook, tally, hash_md5)
    for commit in plan.commits:
        if _put_log_object(dst, commit_path(commit.version), commit.data, "commit"):
            tally.commits += 1
            tally.bytes += len(commit.data)
        if hook:
            hook("commit", commit_path(commit.version))
        if commit.version in plan.checkpoints:
            _copy_checkpoint(src, dst, plan.checkpoints[commit.version], hook, tally, hash_md5)
        if commit.version in plan.crcs:
            crc = plan.crcs[commit.version]
            if _put_log_object(dst, crc.path, src.get(crc.path), "crc"):
                tally.bytes += crc.size
    _write_checkpoint_hint(plan, dst, hook)
    if plan.drop_below is not None:
        # A restarted replica: its older versions end before a gap; readers start from the
        # seed checkpoint written above, so the entries below it go only now.
        drop_log_below(dst, plan.drop_below)


def drop_log_below(storage: Storage, version: int) -> list[str]:
    """Delete the commits, checkpoints and .crc files of versions below ``version``."""
    dropped = []
    for info in list(storage.list(LOG)):
        found = _log_version(info.path)
        if found is not None and found < version:
            storage.delete(info.path)
            dropped.append(info.path)
    return dropped


def _log_version(path: str) -> int | None:
    """The version a commit, checkpoint or .crc of the log belongs to (None for others)."""
    for pattern in (_COMMIT, _CHECKPOINT, _CRC):
        if m := pattern.match(path):
            return int(m.group(1))
    return None


def _write_checkpoint_hint(plan: SyncPlan, dst: Storage, hook: Hook | None) -> None:
    """Point ``_last_checkpoint`` at the newest copied checkpoint, never backwards."""
    if plan.last_checkpoint is None or plan.last_checkpoint_version is None:
        return
    parts = plan.checkpoints.get(plan.last_checkpoint_version)
    # A checkpoint kind this sync does not copy (v2, sidecars) must not be pointed at.
    present = parts is not None and all(dst.head(p.path) is not None for p in parts)
    current, _ = last_checkpoint(dst)
    if present and (current is None or current <= plan.last_checkpoint_version):
        dst.put(LAST_CHECKPOINT, plan.last_checkpoint)
        if hook:
            hook("last_checkpoint", LAST_CHECKPOINT)


def needed_by(plan: SyncPlan, path: str) -> tuple[int, int | None]:
    """The versions of the plan that need a data file: (first, last or None for latest)."""
    first = plan.seed_checkpoint if path in plan.seed_files else None
    for c in plan.commits:
        if first is None and path in c.files:
            first = c.version
        elif first is not None and path in c.removed:
            return first, c.version - 1
    return (plan.source_version if first is None else first), None


def _vacuumed_past(plan: SyncPlan, exc: MissingSourceFileError) -> SourceBehindError:
    first, last = needed_by(plan, exc.path)
    versions = f"version(s) {first}..{last if last is not None else plan.source_version}"
    if not plan.strict:
        message = f"{exc} (needed by {versions})"
    else:
        message = (
            f"{exc} (needed by {versions}): the source was vacuumed past what replica "
            f"{plan.target_uri} (at version {plan.held_version}) needs, nothing was committed "
            f"to it; restart the replica with `{reseed_hint(plan.source_uri, plan.target_uri)}`"
        )
    if not plan.strict:  # no replica to restart: the source's own log is broken
        gone = f"data file {exc.path}, which its log references ({versions})"
        return SourceBehindError(message, gone=gone, held_version=None)
    return SourceBehindError(
        message, gone=f"data files of {versions}", held_version=plan.held_version
    )


def execute_plan(
    plan: SyncPlan,
    src: Storage,
    dst: Storage,
    *,
    dry_run: bool = False,
    concurrency: int = 16,
    hook: Hook | None = None,
) -> _Tally:
    """Copy data files, then commits in version order, then ``_last_checkpoint``."""
    tally = _Tally()
    # Hash only when some store can give an MD5 to compare with (local and Azure cannot).
    hash_md5 = gives_md5(src) or gives_md5(dst)
    files = plan.data_files()
    removed = set() if plan.strict else plan.removed_later()
    try:
        _copy_files(src, dst, files, removed, concurrency, dry_run, hook, tally, hash_md5)
    except MissingSourceFileError as exc:
        raise _vacuumed_past(plan, exc) from None
    if dry_run:
        tally.commits = len(plan.commits)
        tally.bytes += sum(len(c.data) for c in plan.commits)
        return tally
    _write_log(plan, src, dst, hook, tally, hash_md5)
    return tally


def table_name_of(uri: str) -> str:
    """The last path segment of a table URI."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


def check_table_uris(source_uri: str, target_uri: str) -> tuple[TableUri, TableUri]:
    """Validate ``--from`` and ``--to`` before anything is opened (see :func:`parse_uri`).

    Also refused: two locations where one holds the other.
    """
    source = parse_uri(source_uri, "--from")
    target = parse_uri(target_uri, "--to")
    if source.within(target) or target.within(source):
        raise UriError(
            f"--from {source_uri!r} and --to {target_uri!r} overlap: a table cannot be "
            "synced into itself, into a folder inside it or around it"
        )
    return source, target


def table_names(table: str | None, source_uri: str, source: TableUri) -> tuple[str, ...]:
    """Every name the table goes by: given, as typed in the URI, and as resolved."""
    found = [table or "", table_name_of(source_uri), table_name_of(source.uri)]
    return tuple(dict.fromkeys(n for n in found if n))


def sync_table(
    source_uri: str,
    target_uri: str,
    source_options: dict[str, str] | None = None,
    target_options: dict[str, str] | None = None,
    *,
    table: str | None = None,
    policy: Callable[[TableEvidence], None] | None = None,
    route: str = "",
    route_checked: bool = False,
    egress_usd_per_gb: float = 0.0,
    dry_run: bool = False,
    reseed: bool = False,
    replace_unrelated: bool = False,
    concurrency: int = 16,
    hook: Hook | None = None,
) -> SyncReport:
    """Bring the table at ``target_uri`` up to the source's latest version.

    ``policy`` is called with the table's names and every schema the copied versions use
    (:class:`~pipelines.sovereignty.policy.TableEvidence`) before any byte is written, and raises to
    refuse the route. ``reseed`` replaces a diverged replica of the same table;
    ``replace_unrelated`` also replaces the log of another table found at the target.
    """
    if concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, not {concurrency}")
    source, target = check_table_uris(source_uri, target_uri)
    if source.store == "local" and not os.path.isdir(source.path):
        # Said here, not by the store: a sync never creates anything on its source's side.
        raise UriError(f"--from {source_uri!r}: no such folder ({source.path})")
    t0 = time.perf_counter()
    src = open_storage(source.uri, source_options, create=False)
    dst = open_storage(target.uri, target_options)
    try:
        plan = plan_sync(
            src, dst, reseed=reseed, replace_unrelated=replace_unrelated, concurrency=concurrency
        )
        if policy is not None:
            policy(plan.evidence(table_names(table, source_uri, source)))
        tally = execute_plan(plan, src, dst, dry_run=dry_run, concurrency=concurrency, hook=hook)
    except SourceBehindError as exc:
        exc.table = table or table_name_of(source_uri)
        exc.route = route or f"{source_uri} -> {target_uri}"
        raise
    after = plan.target_version if dry_run else plan.source_version
    now = list_log(src, plan.source_version).latest or plan.source_version
    before = plan.versions_behind
    if plan.reseed:
        before = plan.source_version + 1
    return SyncReport(
        table=table or table_name_of(source_uri),
        source=source_uri,
        target=target_uri,
        route=route,
        route_checked=route_checked,
        dry_run=dry_run,
        reseeded=plan.reseed,
        source_version=plan.source_version,
        target_version_before=plan.target_version,
        target_version_after=after,
        versions_behind_before=before,
        versions_behind_after=now - (-1 if after is None else after),
        files_copied=tally.files,
        bytes_copied=tally.bytes,
        files_already_present=tally.present,
        commits_copied=tally.commits,
        checkpoints_copied=tally.checkpoints,
        files_missing_at_source=tally.missing,
        seconds=round(time.perf_counter() - t0, 3),
        egress_usd_per_gb=egress_usd_per_gb,
        egress_usd=tally.bytes / BYTES_PER_GB * egress_usd_per_gb,
    )


def sync(
    cfg: LakeConfig,
    source_uri: str,
    target_uri: str,
    *,
    table: str | None = None,
    source_options: dict[str, str] | None = None,
    target_options: dict[str, str] | None = None,
    allow_unchecked: bool = False,
    dry_run: bool = False,
    reseed: bool = False,
    replace_unrelated: bool = False,
    concurrency: int = 16,
    hook: Hook | None = None,
) -> SyncReport:
    """:func:`sync_table` with the route, policy, storage options and prices from config.

    The URIs, the route and what the table's names alone tell the policy (the registry) are
    checked before any store is opened; the schemas once the plan has read the logs.
    """
    source, _ = check_table_uris(source_uri, target_uri)
    route: Route = resolve_route(cfg, source_uri, target_uri, allow_unchecked=allow_unchecked)
    name = table or table_name_of(source_uri)
    check_route(cfg, name, route, TableEvidence(names=table_names(table, source_uri, source)))
    if source_options is None:
        source_options = route.source.storage_options() if route.source else {}
    if target_options is None:
        target_options = route.target.storage_options() if route.target else {}
    return sync_table(
        source_uri,
        target_uri,
        source_options,
        target_options,
        table=name,
        policy=lambda evidence: check_route(cfg, name, route, evidence),
        route=route.describe(),
        route_checked=route.checked,
        egress_usd_per_gb=egress_price(cfg, route),
        dry_run=dry_run,
        reseed=reseed,
        replace_unrelated=replace_unrelated,
        concurrency=concurrency,
        hook=hook,
    )


def table_fingerprint(
    uri: str, options: dict[str, str], version: int | None = None
) -> tuple[int, str]:
    """Row count and an order-independent content hash of a table at a version."""
    import pandas as pd

    from pipelines.lake.delta import read_partition

    data = read_partition(uri, options, version=version)
    frame = data.select(sorted(data.column_names)).to_pandas()
    if frame.empty:
        return 0, "0"
    hashes = pd.util.hash_pandas_object(frame.astype(str), index=False)
    return len(frame), f"{int(hashes.astype('uint64').sum()) % 2**64:016x}"
