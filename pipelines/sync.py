"""Delta-log-aware replication of a Delta table between any two stores.

The source's ``_delta_log`` is listed from the target's last version on (an offset listing, so
a sync with nothing new costs a handful of requests whatever the table's size). The data files
the new commits reference (``add``, ``cdc`` and deletion vectors) that the target lacks are
streamed across with bounded concurrency and verified (size always; MD5 where a store gives
one); then the commits are written in version order, each create-only, each followed by its
checkpoint files; ``_last_checkpoint`` last. So a reader of the target always sees a complete
version of the source, a crash at any point is finished by the next run without copying again
what is there, and a target commit that differs from the source's is a divergence, not
something to overwrite. See docs/sync.md.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote

from pipelines.config import LakeConfig
from pipelines.policy import Route, check_route, egress_price, resolve_route
from pipelines.storage import (
    Copied,
    ObjectInfo,
    ObstoreStorage,
    Storage,
    gives_md5,
    md5_hex,
    open_storage,
    stream_copy,
)

LOG = "_delta_log/"
LAST_CHECKPOINT = "_delta_log/_last_checkpoint"
_COMMIT = re.compile(r"^_delta_log/(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^_delta_log/(\d{20})\.checkpoint(\.\d{10}\.\d{10})?\.parquet$")
_CRC = re.compile(r"^_delta_log/(\d{20})\.crc$")
BYTES_PER_GB = 1024**3
# Called after each object the sync writes, with its kind and path: tests inject failures here.
Hook = Callable[[str, str], None]


class SyncError(RuntimeError):
    """The sync cannot go on; the message names the table, the store and the object."""


class DivergedError(SyncError):
    """The target holds a commit that differs from the source's commit of the same version."""


def commit_path(version: int) -> str:
    """Log path of a version's commit."""
    return f"{LOG}{version:020d}.json"


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
        return int(json.loads(raw)["version"]), raw
    except (ValueError, KeyError, TypeError):
        return None, raw


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
            value = value * 85 + _Z85_INDEX[c]
        out += value.to_bytes(4, "big")
    return bytes(out)


def deletion_vector_path(dv: dict[str, Any]) -> str | None:
    """Relative path of a deletion vector's file, None for inline or absolute-path ones."""
    kind, value = dv.get("storageType"), str(dv.get("pathOrInlineDv", ""))
    if kind != "u":
        return None  # 'i' is inline; 'p' is an absolute path the target can still reach
    prefix, encoded = value[:-20], value[-20:]
    raw = z85_decode(encoded).hex()
    uuid = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    name = f"deletion_vector_{uuid}.bin"
    return f"{prefix}/{name}" if prefix else name


@dataclass
class CommitInfo:
    """What one commit asks of the target."""

    version: int
    data: bytes
    files: dict[str, int | None] = field(default_factory=dict)  # path -> size if known
    removed: set[str] = field(default_factory=set)
    schema_columns: set[str] | None = None


def _relative(path: str) -> str | None:
    if "://" in path:
        return None  # absolute (shallow clone): stays where it is, reachable from the target
    return unquote(path)


def parse_commit(version: int, data: bytes) -> CommitInfo:
    """Data files, removals and schema of one commit's JSON lines."""
    info = CommitInfo(version, data)
    for line in data.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        for kind in ("add", "cdc"):
            if kind in action:
                act = action[kind]
                if (rel := _relative(act["path"])) is not None:
                    info.files[rel] = act.get("size")
                if act.get("deletionVector") and (
                    dv := deletion_vector_path(act["deletionVector"])
                ):
                    info.files[dv] = None
        if "remove" in action and (rel := _relative(action["remove"]["path"])) is not None:
            info.removed.add(rel)
        if "metaData" in action:
            info.schema_columns = _schema_columns(action["metaData"].get("schemaString", "{}"))
    return info


def _metadata_columns(data: bytes) -> set[str] | None:
    """Columns of a commit's metaData action, parsing only that line (commits can be MBs)."""
    if b'"metaData"' not in data:
        return None
    columns = None
    for line in data.splitlines():
        if b'"metaData"' in line:
            action = json.loads(line)
            if "metaData" in action:
                columns = _schema_columns(action["metaData"].get("schemaString", "{}"))
    return columns


def _schema_columns(schema_string: str) -> set[str]:
    """Every field name in a Delta schema, nested ones included."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "name" in node and "type" in node:
                names.add(str(node["name"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(schema_string))
    return names


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
    schema_columns: set[str]
    reseed: bool = False

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


def _checkpoint_state(
    storage: Storage, parts: list[ObjectInfo], *, metadata_only: bool = False
) -> tuple[dict[str, int | None], set[str] | None]:
    """Live files and schema recorded in a (classic, possibly multi-part) checkpoint."""
    import io

    import pyarrow.parquet as pq

    files: dict[str, int | None] = {}
    columns: set[str] | None = None
    for part in parts:
        fh = io.BytesIO(storage.get(part.path))
        available = set(pq.read_schema(fh).names)
        wanted = ["metaData"] if metadata_only else ["add", "metaData"]
        table = pq.read_table(fh, columns=[c for c in wanted if c in available])
        names = set(table.column_names)
        if "add" in names:
            for add in table.column("add").to_pylist():
                if add and (rel := _relative(add["path"])) is not None:
                    files[rel] = add.get("size")
                    if add.get("deletionVector") and (
                        dv := deletion_vector_path(add["deletionVector"])
                    ):
                        files[dv] = None
        if "metaData" in names:
            for meta in table.column("metaData").to_pylist():
                if meta and meta.get("schemaString"):
                    columns = _schema_columns(meta["schemaString"])
    return files, columns


def _schema_at(
    storage: Storage,
    version: int,
    known: dict[int, bytes],
    checkpoint: int | None,
    checkpoints: dict[int, list[ObjectInfo]],
) -> set[str]:
    """Columns of the schema in effect at ``version``: newest metaData at or before it.

    Reads commits backwards down to the newest checkpoint at or before ``version``, then that
    checkpoint's metaData column; so at most a checkpoint interval of small reads.
    """
    floors = [v for v in (*checkpoints, checkpoint) if v is not None and v <= version]
    floor = max(floors) if floors else None
    v = version
    while v >= 0 and (floor is None or v >= floor):
        try:
            data = known.get(v) or storage.get(commit_path(v))
        except FileNotFoundError:
            break
        cols = _metadata_columns(data)
        if cols is not None:
            return cols
        v -= 1
    if floor is not None:
        parts = checkpoints.get(floor) or [
            i for i in list_log(storage, floor).checkpoints.get(floor, [])
        ]
        _, cols = _checkpoint_state(storage, parts, metadata_only=True)
        if cols is not None:
            return cols
    raise SyncError(f"{storage.uri}: no metaData action found at or before version {version}")


def plan_sync(
    src: Storage, dst: Storage, *, reseed: bool = False, concurrency: int = 16
) -> SyncPlan:
    """Read both logs (never the data) and decide what the target lacks.

    Raises :class:`DivergedError` when the target's latest commit differs from the source's
    commit of that version, or the target is ahead; with ``reseed`` the target is planned
    afresh instead (its log is replaced when the plan is executed).
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
    reseeding = False
    if target_version is not None:
        reason = None
        if target_version > source_version:
            reason = f"the target is at version {target_version}, the source at {source_version}"
        elif target_version in listing.commits:
            ours = dst.get(commit_path(target_version))
            theirs = src.get(commit_path(target_version))
            known[target_version] = theirs
            if md5_hex(ours) != md5_hex(theirs):
                reason = (
                    f"commit {target_version} differs (target md5 {md5_hex(ours)}, "
                    f"source md5 {md5_hex(theirs)})"
                )
        if reason:
            if not reseed:
                raise DivergedError(
                    f"replica {dst.uri} has diverged from source {src.uri}: {reason}; "
                    "refusing to sync (re-run with --reseed to replace the replica's log)"
                )
            reseeding = True
            target_version = None
            listing = list_log(src, None)
    seed_checkpoint: int | None = None
    seed_files: dict[str, int | None] = {}
    if target_version is None:
        if 0 in listing.commits:
            start = 0
        else:
            # The source's early commits were cleaned up: start from its newest checkpoint.
            candidates = [v for v in listing.checkpoints if v <= source_version]
            if not candidates:
                raise SyncError(f"{src.uri}: no commit 0 and no checkpoint to start a replica from")
            seed_checkpoint = max(candidates)
            seed_files, _ = _checkpoint_state(src, listing.checkpoints[seed_checkpoint])
            start = seed_checkpoint + 1
    else:
        start = target_version + 1
    versions = list(range(start, source_version + 1))
    gaps = [v for v in versions if v not in listing.commits]
    if gaps:
        raise SyncError(f"{src.uri}: the log has no commit for version(s) {gaps[:5]}")
    blobs = _get_many(src, [commit_path(v) for v in versions], concurrency)
    commits = [parse_commit(v, b) for v, b in zip(versions, blobs, strict=True)]
    known.update({c.version: c.data for c in commits})
    columns: set[str] = set()
    for c in commits:
        columns |= c.schema_columns or set()
    if commits and commits[0].schema_columns is None:
        # The schema in effect before the first new commit. With nothing new, no byte will be
        # copied, so the PII rule has nothing to judge (the route rule is still checked) and a
        # no-op reads no checkpoint: it costs a log listing and two small reads.
        columns |= _schema_at(src, start - 1, known, lc_version, listing.checkpoints)
    return SyncPlan(
        source_uri=src.uri,
        target_uri=dst.uri,
        source_version=source_version,
        target_version=target_version,
        commits=commits,
        checkpoints={
            v: parts
            for v, parts in listing.checkpoints.items()
            if (target_version if target_version is not None else -1) <= v <= source_version
        },
        crcs={v: i for v, i in listing.crcs.items() if start <= v <= source_version},
        seed_checkpoint=seed_checkpoint,
        seed_files=seed_files,
        last_checkpoint=lc_bytes
        if lc_version is not None and lc_version <= source_version
        else None,
        last_checkpoint_version=lc_version,
        schema_columns=columns,
        reseed=reseeding,
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


async def _copy_files(
    src: Storage,
    dst: Storage,
    files: dict[str, int | None],
    removed_later: set[str],
    concurrency: int,
    dry_run: bool,
    hook: Hook | None,
    tally: _Tally,
) -> None:
    """Copy the files the target lacks, at most ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)
    # Hash only when some store can give an MD5 to compare with (local and Azure cannot).
    hash_md5 = gives_md5(src) or gives_md5(dst)

    async def head(store: Storage, path: str) -> ObjectInfo | None:
        if isinstance(store, ObstoreStorage):
            return await store.head_async(path)
        return await asyncio.to_thread(store.head, path)

    async def one(path: str, size: int | None) -> None:
        async with sem:
            have = await head(dst, path)
            if have is not None and (size is None or have.size == size):
                if size is None:
                    theirs = await head(src, path)
                    if theirs is not None and theirs.size != have.size:
                        have = None
                if have is not None:
                    tally.present += 1
                    return
            if dry_run:
                theirs = await head(src, path)
                if theirs is None:
                    tally.missing += 1
                else:
                    tally.files += 1
                    tally.bytes += theirs.size
                return
            try:
                if isinstance(src, ObstoreStorage) and isinstance(dst, ObstoreStorage):
                    copied = await src.stream_to(path, dst, path, hash_md5=hash_md5)
                else:
                    copied = await asyncio.to_thread(stream_copy, src, path, dst, path)
            except FileNotFoundError:
                if path in removed_later:
                    tally.missing += 1  # vacuumed at the source; no version still needs it
                    return
                raise SyncError(
                    f"{src.uri}/{path} is referenced by the source's log but does not exist"
                ) from None
            if size is not None and copied.size != size:
                raise SyncError(
                    f"{src.uri}/{path} has {copied.size} bytes, its log entry says {size}"
                )
            _verify(path, src, dst, copied, await head(dst, path))
            tally.files += 1
            tally.bytes += copied.size
            if hook:
                hook("file", path)

    await asyncio.gather(*(one(p, s) for p, s in sorted(files.items())))


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
    src: Storage, dst: Storage, parts: Iterable[ObjectInfo], hook: Hook | None, tally: _Tally
) -> None:
    for part in parts:
        have = dst.head(part.path)
        if have is not None and have.size == part.size:
            continue
        copied = stream_copy(src, part.path, dst)
        _verify(part.path, src, dst, copied, dst.head(part.path))
        tally.checkpoints += 1
        tally.bytes += copied.size
        if hook:
            hook("checkpoint", part.path)


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
    if plan.reseed and not dry_run:
        for info in list(dst.list(LOG)):
            dst.delete(info.path)
    asyncio.run(
        _copy_files(
            src,
            dst,
            plan.data_files(),
            plan.removed_later(),
            concurrency,
            dry_run,
            hook,
            tally,
        )
    )
    if dry_run:
        tally.commits = len(plan.commits)
        tally.bytes += sum(len(c.data) for c in plan.commits)
        return tally
    if plan.seed_checkpoint is not None:
        _copy_checkpoint(src, dst, plan.checkpoints[plan.seed_checkpoint], hook, tally)
    if plan.target_version is not None and plan.target_version in plan.checkpoints:
        # A crash may have come between the target's last commit and its checkpoint.
        _copy_checkpoint(src, dst, plan.checkpoints[plan.target_version], hook, tally)
    for commit in plan.commits:
        if _put_log_object(dst, commit_path(commit.version), commit.data, "commit"):
            tally.commits += 1
            tally.bytes += len(commit.data)
        if hook:
            hook("commit", commit_path(commit.version))
        if commit.version in plan.checkpoints:
            _copy_checkpoint(src, dst, plan.checkpoints[commit.version], hook, tally)
        if commit.version in plan.crcs:
            crc = plan.crcs[commit.version]
            if _put_log_object(dst, crc.path, src.get(crc.path), "crc"):
                tally.bytes += crc.size
    if plan.last_checkpoint is not None and plan.last_checkpoint_version is not None:
        parts = plan.checkpoints.get(plan.last_checkpoint_version)
        # A checkpoint kind this sync does not copy (v2, sidecars) must not be pointed at.
        present = parts is not None and all(dst.head(p.path) is not None for p in parts)
        current, _ = last_checkpoint(dst)
        if present and (current is None or current <= plan.last_checkpoint_version):
            dst.put(LAST_CHECKPOINT, plan.last_checkpoint)
            if hook:
                hook("last_checkpoint", LAST_CHECKPOINT)
    return tally


def table_name_of(uri: str) -> str:
    """The last path segment of a table URI."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


def sync_table(
    source_uri: str,
    target_uri: str,
    source_options: dict[str, str] | None = None,
    target_options: dict[str, str] | None = None,
    *,
    table: str | None = None,
    policy: Callable[[set[str]], None] | None = None,
    route: str = "",
    route_checked: bool = False,
    egress_usd_per_gb: float = 0.0,
    dry_run: bool = False,
    reseed: bool = False,
    concurrency: int = 16,
    hook: Hook | None = None,
) -> SyncReport:
    """Bring the table at ``target_uri`` up to the source's latest version.

    ``policy`` is called with the columns of every schema the copied versions use, before
    any byte is written, and raises to refuse the route.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    t0 = time.perf_counter()
    src = open_storage(source_uri, source_options)
    dst = open_storage(target_uri, target_options)
    plan = plan_sync(src, dst, reseed=reseed, concurrency=concurrency)
    if policy is not None:
        policy(plan.schema_columns)
    tally = execute_plan(plan, src, dst, dry_run=dry_run, concurrency=concurrency, hook=hook)
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
    concurrency: int = 16,
    hook: Hook | None = None,
) -> SyncReport:
    """:func:`sync_table` with the route, policy, storage options and prices from config."""
    route: Route = resolve_route(cfg, source_uri, target_uri, allow_unchecked=allow_unchecked)
    name = table or table_name_of(source_uri)
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
        policy=lambda columns: check_route(cfg, name, route, columns),
        route=route.describe(),
        route_checked=route.checked,
        egress_usd_per_gb=egress_price(cfg, route),
        dry_run=dry_run,
        reseed=reseed,
        concurrency=concurrency,
        hook=hook,
    )


def table_fingerprint(
    uri: str, options: dict[str, str], version: int | None = None
) -> tuple[int, str]:
    """Row count and an order-independent content hash of a table at a version."""
    import pandas as pd

    from pipelines.delta import read_partition

    data = read_partition(uri, options, version=version)
    frame = data.select(sorted(data.column_names)).to_pandas()
    if frame.empty:
        return 0, "0"
    hashes = pd.util.hash_pandas_object(frame.astype(str), index=False)
    return len(frame), f"{int(hashes.astype('uint64').sum()) % 2**64:016x}"
