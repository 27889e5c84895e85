"""The sync planner: what a sync will copy, decided from the two logs alone (no data read).

It finds where the replica stands, whether it diverged or needs a restart from a checkpoint,
and the schemas every copied version carries (what the sovereignty policy judges).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.lake.storage import (
    ObjectInfo,
    Storage,
    md5_hex,
)
from pipelines.replication.deltalog import (
    LOG,
    CommitInfo,
    DivergedError,
    LogListing,
    Remedy,
    SourceBehindError,
    SyncError,
    UnrelatedTargetError,
    check_protocols,
    checkpoint_state,
    commit_path,
    complete_checkpoint,
    get_many,
    is_v2_checkpoint,
    last_checkpoint,
    latest_version,
    list_log,
    metadata_at,
    parse_commit,
    table_id,
    version_where,
)
from pipelines.replication.options import SyncOptions
from pipelines.sovereignty.policy import TableEvidence


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
class CopiedChanges:
    """What a sync's copied versions changed, for the per-run verification of the replica.

    Taken from the source's own log (the commits the plan read) and from the copy itself
    (the MD5 of the bytes streamed from the source); not part of the JSON report.
    """

    versions: list[int]
    commit_md5: dict[int, str]  # MD5 of each copied commit as the source holds it
    files: dict[str, int | None]  # data files the copied versions reference -> log size
    partitions: list[dict[str, Any]]  # partitionValues the copied commits touched
    md5: dict[str, str]  # MD5 of the source's bytes, per file streamed by this sync
    whole_table: bool = False  # a fresh or restarted replica: every partition is new


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
    # The content scan before a border crossing (privacy.sample_files): files and bytes read.
    content_files_scanned: int = 0
    content_bytes_read: int = 0
    changes: CopiedChanges | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (without :attr:`changes`)."""
        out = asdict(self)
        out.pop("changes", None)
        return out


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


def _check_replaceable(src: Storage, dst: Storage, reason: str, options: SyncOptions) -> None:
    """Allow replacing a diverged target's log, or raise saying why not.

    ``options.reseed`` only replaces a replica of the same table (same ``metaData.id``);
    another table at the target is destroyed only with ``options.replace_unrelated``.
    """
    source_id, target_id = table_id(src), table_id(dst)
    same = source_id is not None and source_id == target_id
    if options.replace_unrelated or (same and options.reseed):
        return
    if same:
        raise DivergedError(
            f"replica {dst.uri} has diverged from source {src.uri}: {reason}; "
            "refusing to sync (a reseed replaces the replica's log)",
            Remedy.RESEED,
        )
    holds = f"table id {target_id}" if target_id else "no readable table id"
    raise UnrelatedTargetError(
        f"{dst.uri} is not a replica of {src.uri} ({reason}; the target has {holds}, the source "
        f"table id {source_id}); refusing to {'reseed' if options.reseed else 'sync'}: a reseed "
        "only replaces a replica of the same table (replacing an unrelated target destroys its "
        "log)",
        Remedy.REPLACE_UNRELATED,
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
    state = checkpoint_state(src, version, listing.checkpoints[version])
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
    blobs = get_many(src, [commit_path(v) for v in versions], concurrency)
    commits = [
        parse_commit(v, b, version_where(src, v)) for v, b in zip(versions, blobs, strict=True)
    ]
    if versions and versions[0] == 0 and not commits[0].metadata:
        raise SyncError(f"{version_where(src, 0)}: the first commit has no metaData action")
    return commits


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
            "source's newest checkpoint (a reseed)",
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
        for key in checkpoint_state(src, version, [part], metadata_only=True).sidecars:
            info = src.head(key)
            if info is None:
                raise SyncError(
                    f"{src.uri}/{key} is named by the checkpoint {part.path} but does not exist"
                )
            out.append(info)
    return out + sorted(parts, key=lambda p: p.path)


def plan_sync(src: Storage, dst: Storage, options: SyncOptions) -> SyncPlan:
    """Read both logs (never the data) and decide what the target lacks.

    Raises :class:`DivergedError` when the target's latest commit differs from the source's
    commit of that version, or the target is ahead; with ``options.reseed`` a replica of the
    same table is planned afresh instead (its log is replaced when the plan is executed), and
    :class:`UnrelatedTargetError` when the target holds another table, unless
    ``options.replace_unrelated``. Raises :class:`SourceBehindError` when the source's log was
    cleaned up past the replica's version; ``reseed`` then restarts the replica from the source's
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
            _check_replaceable(src, dst, reason, options)
            reseeding = True
        else:
            restarting = _restart_needed(
                src, dst, target_version, source_version, listing, options.reseed
            )
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
    commits = _read_commits(src, listing, range(start, source_version + 1), options.concurrency)
    for c in commits:
        check_protocols(c.protocols, version_where(src, c.version))
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
        base = metadata_at(src, start - 1, known, lc_version, listing.checkpoints)
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
