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
checkpoint is an error naming the file and the version; a reseed only ever replaces a
replica of the same table. What the caller asks comes as one :class:`SyncOptions`; an error
the caller can do something about carries a :class:`Remedy` for it to phrase. See docs/sync.md.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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
    open_storage,
    parse_uri,
    stream_copy,
)
from pipelines.privacy.detect import detectors_for
from pipelines.privacy.sample import ContentScan, FileSample, scan_files
from pipelines.replication.deltalog import (
    BYTES_PER_GB,
    CHECKPOINT_FILE,
    COMMIT_FILE,
    CRC_FILE,
    LAST_CHECKPOINT,
    LOG,
    DivergedError,
    Hook,
    MissingSourceFileError,
    Remedy,
    SourceBehindError,
    SyncError,
    commit_path,
    last_checkpoint,
    list_log,
)
from pipelines.replication.options import DEFAULT_OPTIONS, SyncOptions
from pipelines.replication.plan import CopiedChanges, SyncPlan, SyncReport, plan_sync
from pipelines.sovereignty.policy import (
    Route,
    TableEvidence,
    check_route,
    crosses_border,
    egress_price,
    personal_data_reasons,
    resolve_route,
)


@dataclass
class _Tally:
    md5: dict[str, str] = field(default_factory=dict)  # per data file streamed: source MD5
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
    options: SyncOptions,
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
    if options.dry_run:
        theirs = src.head(path)
        count(**({"missing": 1} if theirs is None else {"files": 1, "bytes": theirs.size}))
        return
    try:
        copied = _copy_object(src, dst, path, hash_md5=True)
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
    count(files=1, bytes=copied.size, md5=(path, copied.md5))
    if options.hook:
        options.hook("file", path)


def _copy_files(
    src: Storage,
    dst: Storage,
    files: dict[str, int | None],
    removed_later: set[str],
    options: SyncOptions,
    tally: _Tally,
) -> None:
    """Copy the files the target lacks, at most ``options.concurrency`` at a time (MD5 hashed).

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

    def count(md5: tuple[str, str] | None = None, **deltas: int) -> None:
        with lock:
            if md5 is not None and md5[1]:
                tally.md5[md5[0]] = md5[1]
            for name, delta in deltas.items():
                setattr(tally, name, getattr(tally, name) + delta)

    def worker() -> None:
        while not stop.is_set():
            with lock:
                item = next(pending, None)
            if item is None:
                return
            try:
                _copy_one(src, dst, *item, removed_later, options, count)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                stop.set()
                return

    workers = min(options.concurrency, len(files))
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
            "changed the replica (a reseed replaces its log)",
            Remedy.RESEED,
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
    for pattern in (COMMIT_FILE, CHECKPOINT_FILE, CRC_FILE):
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
            "to it; restart the replica (a reseed)"
        )
    if not plan.strict:  # no replica to restart: the source's own log is broken
        gone = f"data file {exc.path}, which its log references ({versions})"
        return SourceBehindError(message, gone=gone, held_version=None)
    return SourceBehindError(
        message, gone=f"data files of {versions}", held_version=plan.held_version
    )


def execute_plan(plan: SyncPlan, src: Storage, dst: Storage, options: SyncOptions) -> _Tally:
    """Copy data files, then commits in version order, then ``_last_checkpoint``."""
    tally = _Tally()
    # Log objects are hashed only when some store can give an MD5 to compare with (local and
    # Azure cannot); data files always: their MD5 is what the per-run verification compares
    # the replica's bytes with (pipelines/replication/verify.py), at no extra read.
    hash_md5 = gives_md5(src) or gives_md5(dst)
    files = plan.data_files()
    removed = set() if plan.strict else plan.removed_later()
    try:
        _copy_files(src, dst, files, removed, options, tally)
    except MissingSourceFileError as exc:
        raise _vacuumed_past(plan, exc) from None
    if options.dry_run:
        tally.commits = len(plan.commits)
        tally.bytes += sum(len(c.data) for c in plan.commits)
        return tally
    _write_log(plan, src, dst, options.hook, tally, hash_md5)
    return tally


def table_name_of(uri: str) -> str:
    """The last path segment of a table URI."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


def check_table_uris(
    source_uri: str, target_uri: str, names: tuple[str, str] = ("source", "target")
) -> tuple[TableUri, TableUri]:
    """Validate the two URIs before anything is opened (see :func:`parse_uri`).

    ``names`` are what errors call them (the CLI passes its flags). Also refused: two locations
    where one holds the other.
    """
    source = parse_uri(source_uri, names[0])
    target = parse_uri(target_uri, names[1])
    if source.within(target) or target.within(source):
        raise UriError(
            f"{names[0]} {source_uri!r} and {names[1]} {target_uri!r} overlap: a table cannot "
            "be synced into itself, into a folder inside it or around it"
        )
    return source, target


def table_names(table: str | None, source_uri: str, source: TableUri) -> tuple[str, ...]:
    """Every name the table goes by: given, as typed in the URI, and as resolved."""
    found = [table or "", table_name_of(source_uri), table_name_of(source.uri)]
    return tuple(dict.fromkeys(n for n in found if n))


@dataclass(frozen=True)
class RouteGuard:
    """The rules of a route that a sync applies, taken from configuration by :func:`sync`.

    ``policy`` is called with the table's names and every schema the copied versions use
    (:class:`~pipelines.sovereignty.policy.TableEvidence`) before any byte is written, and raises
    to refuse the route. ``scan_for`` says, from that evidence, whether (and how much of) the
    data files the plan copies are sampled first for personal data by content; what it finds
    is added to the evidence. ``route`` and ``checked`` describe the route for the report.
    """

    policy: Callable[[TableEvidence], None]
    route: str = ""
    checked: bool = False
    egress_usd_per_gb: float = 0.0
    scan_for: Callable[[TableEvidence], ContentScan | None] | None = None


def sync_table(
    source_uri: str,
    target_uri: str,
    source_options: dict[str, str] | None = None,
    target_options: dict[str, str] | None = None,
    options: SyncOptions = DEFAULT_OPTIONS,
    guard: RouteGuard | None = None,
) -> SyncReport:
    """Bring the table at ``target_uri`` up to the source's latest version.

    ``guard`` (none: no policy, no price) judges the route before any byte is written;
    ``options.reseed`` replaces a diverged replica of the same table; ``replace_unrelated``
    also replaces the log of another table found at the target.
    """
    source, target = check_table_uris(source_uri, target_uri)
    if source.store == "local" and not os.path.isdir(source.path):
        # Said here, not by the store: a sync never creates anything on its source's side.
        raise UriError(f"source {source_uri!r}: no such folder ({source.path})")
    route = guard.route if guard else ""
    table = options.table or table_name_of(source_uri)
    t0 = time.perf_counter()
    src = open_storage(source.uri, source_options, create=False)
    dst = open_storage(target.uri, target_options)
    try:
        plan = plan_sync(src, dst, options)
        sample: FileSample | None = None
        if guard is not None:
            evidence = plan.evidence(table_names(options.table, source_uri, source))
            scan = guard.scan_for(evidence) if guard.scan_for is not None else None
            if scan is not None:
                sample = scan_files(src, list(plan.data_files()), scan)
                evidence = dataclasses.replace(evidence, content=tuple(sample.report.findings))
            guard.policy(evidence)
        tally = execute_plan(plan, src, dst, options)
    except SourceBehindError as exc:
        exc.table = table
        exc.route = route or f"{source_uri} -> {target_uri}"
        raise
    dry_run = options.dry_run
    after = plan.target_version if dry_run else plan.source_version
    now = list_log(src, plan.source_version).latest or plan.source_version
    before = plan.versions_behind
    changes = CopiedChanges(
        versions=[c.version for c in plan.commits],
        commit_md5={c.version: md5_hex(c.data) for c in plan.commits},
        files=plan.data_files(),
        partitions=[p for c in plan.commits for p in c.partitions],
        md5=dict(tally.md5),
        whole_table=plan.target_version is None or plan.reseed or plan.seed_checkpoint is not None,
    )
    if plan.reseed:
        before = plan.source_version + 1
    price = guard.egress_usd_per_gb if guard else 0.0
    return SyncReport(
        table=table,
        source=source_uri,
        target=target_uri,
        route=route,
        route_checked=guard.checked if guard else False,
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
        egress_usd_per_gb=price,
        egress_usd=tally.bytes / BYTES_PER_GB * price,
        content_files_scanned=len(sample.files) if sample else 0,
        content_bytes_read=sample.bytes_read if sample else 0,
        changes=None if dry_run else changes,
    )


def sync(
    cfg: LakeConfig,
    source_uri: str,
    target_uri: str,
    options: SyncOptions = DEFAULT_OPTIONS,
    *,
    source_options: dict[str, str] | None = None,
    target_options: dict[str, str] | None = None,
) -> SyncReport:
    """:func:`sync_table` with the route, policy, storage options and prices from config.

    The URIs, the route and what the table's names alone tell the policy (the registry) are
    checked before any store is opened; the schemas once the plan has read the logs. Storage
    options default to the configured locations' (the replica asset passes its resource's).
    """
    source, _ = check_table_uris(source_uri, target_uri)
    route: Route = resolve_route(
        cfg, source_uri, target_uri, allow_unchecked=options.allow_unchecked
    )
    name = options.table or table_name_of(source_uri)
    names = table_names(options.table, source_uri, source)
    check_route(cfg, name, route, TableEvidence(names=names))
    scan = ContentScan(
        detectors_for(cfg.privacy.pattern_pairs()),
        cfg.privacy.sample_files,
        cfg.privacy.sample_rows_per_file,
    )

    def scan_for(evidence: TableEvidence) -> ContentScan | None:
        # Content changes the verdict only on a route out of the jurisdiction, and only for a
        # table its names and schemas do not already say is personal data.
        if crosses_border(route) and not personal_data_reasons(cfg, evidence):
            return scan
        return None

    if source_options is None:
        source_options = route.source.storage_options() if route.source else {}
    if target_options is None:
        target_options = route.target.storage_options() if route.target else {}
    guard = RouteGuard(
        policy=lambda evidence: check_route(cfg, name, route, evidence),
        route=route.describe(),
        checked=route.checked,
        egress_usd_per_gb=egress_price(cfg, route),
        scan_for=scan_for,
    )
    return sync_table(
        source_uri,
        target_uri,
        source_options,
        target_options,
        dataclasses.replace(options, table=name),
        guard,
    )
