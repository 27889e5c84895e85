"""Serving erasure requests at a location, and the independent read-back that proves it.

For a batch of requests at one location:

1. every table the registry marks as personal data (bronze, the quarantine, the ingest ledger,
   silver, the request table itself; not the receipts, which hold keyed hashes only) loses the
   subjects' rows by a real Delta delete: raw identifiers in bronze (and its ``_rescued_data``),
   tokens in the quarantine's ``raw`` bytes, silver by its keyed hashes
   (:func:`pipelines.privacy.erase.erase_from_table`); then every older data file still holding a
   subject is deleted whatever the VACUUM floor keeps, and commits and checkpoints whose
   statistics name a subject are rewritten. The versions that cost are listed with the replica
   or model that pinned them (:mod:`pipelines.operations.maintenance`'s pins);
2. landing objects holding a subject's record are found and fenced in the ledger before any
   table is touched (no ingest takes them meanwhile), rewritten without it once the rows are
   gone, the ledger told and the fence lifted (:mod:`.landing`);
3. every file under the location's root (data files decoded and raw, ``_delta_log`` commits and
   checkpoints, landing objects decoded) is read back and searched for each subject's
   identifiers and pseudonyms: a receipt per request says in how many files it was found (0).

Rows that a deletion vector hides (Spark) are physical bytes: a live file still holding a
subject behind a vector has its partition rewritten from the visible rows (purged) before the
older files are removed (:func:`pipelines.privacy.erase.erase_from_table`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.erasure.landing import (
    LandingErasure,
    erase_landing,
    fence_landing,
    find_landing,
    release_landing,
)
from pipelines.erasure.models import ArtifactScan, mark_models, retraining_due, scan_artifacts
from pipelines.erasure.requests import ErasureRequest, write_receipts
from pipelines.ingest import capture, ledger
from pipelines.lake import delta
from pipelines.lake.config import LakeConfig, LakeLocation, Replica
from pipelines.lake.storage import Storage, open_storage
from pipelines.lake.tables import ERASURE_RECEIPTS, TABLES, Role
from pipelines.ml.tracking import Tracking
from pipelines.operations import maintenance
from pipelines.privacy.erase import (
    Subject,
    TableErasure,
    check_erasable,
    erase_from_table,
    holds_token,
    parquet_values,
    token_regex,
    values_hold,
)
from pipelines.replication.sync import sync

RAW_COLUMNS = ("raw", "_rescued_data")


def subject_of(requests: Sequence[ErasureRequest], key: str) -> Subject:
    """One subject for a batch: raw identifiers, silver's pseudonyms, tokens for raw columns."""
    ids: dict[str, set[str]] = {}
    tokens: set[str] = set()
    for r in requests:
        for column, values in {**r.identifiers(), **r.pseudonyms(key)}.items():
            ids.setdefault(column, set()).update(values)
        for values in r.identifiers().values():
            tokens.update(values)
    return Subject(
        {c: tuple(sorted(v)) for c, v in ids.items()}, tuple(sorted(tokens)), RAW_COLUMNS
    )


def personal_tables(location: LakeLocation, cfg: LakeConfig) -> list[str]:
    """The registry's personal tables the location holds (receipts aside: keyed hashes only)."""
    return [
        t.name
        for t in TABLES.values()
        if t.personal_data
        and t.name != ERASURE_RECEIPTS.name
        and (t.role == Role.REGION or location.name == cfg.ml_home)
    ]


def personal_replicas(
    cfg: LakeConfig, location: LakeLocation, tables: Sequence[str]
) -> list[Replica]:
    """Configured replicas of ``location``'s personal ``tables``, in its jurisdiction.

    The policy keeps personal data in its jurisdiction: a replica elsewhere is refused by the
    sync, so none is there to erase.
    """
    return [
        r
        for r in cfg.replicas()
        if r.source.name == location.name
        and r.table in tables
        and r.target.jurisdiction == location.jurisdiction
    ]


def erase_replica(
    cfg: LakeConfig,
    replica: Replica,
    subject: Subject,
    source_options: dict[str, str],
    target_options: dict[str, str],
    model_pins_of: Callable[[str], list[maintenance.Pin]],
) -> dict[str, Any]:
    """The subject gone from a replica, the replica still a prefix of its erased source.

    Its log is first scrubbed as the source's was (the same bytes: the sync then still finds
    its last commit equal to the source's), the sync copies the erasing commit and the files it
    wrote, then every file no live version holds that still holds the subject is removed.
    """
    uri = replica.target_uri
    if delta.open_table(uri, target_options) is None:
        return {"table": replica.table, "replica": replica.name, "uri": uri, "made": False}
    before = erase_from_table(uri, target_options, subject, read_back=False, delete=False)
    synced = sync(
        cfg,
        replica.source_uri,
        uri,
        source_options=source_options,
        target_options=target_options,
    )
    after = erase_from_table(uri, target_options, subject, read_back=False, delete=False)
    removed = before.files_removed + after.files_removed
    lost = sorted(set(before.versions_lost) | set(after.versions_lost))
    pins = [p for p in model_pins_of(uri) if p.version in lost]
    return {
        "table": replica.table,
        "replica": replica.name,
        "location": replica.target.name,
        "uri": uri,
        "version_before": synced.target_version_before,
        "version_after": synced.target_version_after,
        "rows_deleted": 0,  # the source's delete, copied: its rows are counted there
        "files_rewritten": 0,
        "files_copied": synced.files_copied,
        "bytes_written": synced.bytes_copied,
        "files_removed": removed,
        "bytes_removed": before.bytes_removed + after.bytes_removed,
        "log_files_rewritten": before.log_files_rewritten + after.log_files_rewritten,
        "checkpoints_rewritten": before.checkpoints_rewritten + after.checkpoints_rewritten,
        "versions_lost": lost,
        "pinned_by": [
            {"version": p.version, "kind": p.kind, "name": p.name, "cost": "retrain it"}
            for p in pins
        ],
    }


@dataclass
class ReadBack:
    """What the independent scan of a location read, and where each request was found."""

    files_scanned: int = 0
    bytes_scanned: int = 0
    scanned: dict[str, dict[str, int]] = field(default_factory=dict)  # area -> files, bytes
    found: dict[str, list[str]] = field(default_factory=dict)  # request id -> paths

    def add(
        self, area: str, files: int, bytes_: int, found: Mapping[str, list[str]], root: str
    ) -> None:
        """Another store's read-back counted in (its paths under ``root``)."""
        self.files_scanned += files
        self.bytes_scanned += bytes_
        self.scanned[area] = {"files": files, "bytes": bytes_}
        for request_id, paths in found.items():
            self.found.setdefault(request_id, []).extend(f"{root}/{p}" for p in paths)


def _area(path: str, landing_prefix: str) -> str:
    if path.startswith(landing_prefix.strip("/") + "/"):
        return "landing"
    if "/_delta_log/" in path:
        return "checkpoints" if path.endswith(".parquet") else "delta_logs"
    return "data_files" if path.endswith(".parquet") else "other"


def _decoded(path: str, data: bytes, location: LakeLocation) -> bytes:
    """A landing object's records or a gzip file's text, as a reader would see it."""
    try:
        if path.startswith(location.landing.prefix.strip("/") + "/"):
            return b"\n".join(capture.decode(location.landing, data))
        if path.endswith(".gz"):
            return gzip.decompress(data)
    except Exception:  # undecodable: its raw bytes are what a reader has
        return b""
    return b""


def read_back(
    storage: Storage, location: LakeLocation, needles: Mapping[str, Sequence[bytes]]
) -> ReadBack:
    """Every file under the location's root, raw and decoded, searched for each request.

    An identifier is found as a whole token (:func:`pipelines.privacy.erase.token_regex`, the
    landing matcher's rule) in the raw bytes and decoded text, and in a Parquet file's decoded
    values by equality or as a token: a prefix of another id is not the subject.
    """
    out = ReadBack()
    patterns = {request_id: token_regex(ns) for request_id, ns in needles.items()}
    for info in list(storage.list()):
        data = storage.get(info.path)
        text = data + b"\n" + _decoded(info.path, data, location)
        values = parquet_values(data) if info.path.endswith(".parquet") else None
        out.files_scanned += 1
        out.bytes_scanned += info.size
        area = out.scanned.setdefault(
            _area(info.path, location.landing.prefix), {"files": 0, "bytes": 0}
        )
        area["files"] += 1
        area["bytes"] += info.size
        for request_id, pattern in patterns.items():
            if holds_token(pattern, text) or values_hold(pattern, values or []):
                out.found.setdefault(request_id, []).append(info.path)
    return out


def _pins_of(
    cfg: LakeConfig,
    location: LakeLocation,
    table: str,
    report: TableErasure,
    options_for: Callable[[LakeLocation], dict[str, str]],
    model_pins_of: Callable[[str], list[maintenance.Pin]],
) -> list[dict[str, Any]]:
    """Who pinned each version the erasure cost, and what becomes of it."""
    if not report.versions_lost:
        return []
    target = maintenance.find_target(cfg, table, location.name)
    pins = [*maintenance.replica_pins(cfg, target, options_for), *model_pins_of(report.uri)]
    out = []
    for version in report.versions_lost:
        for p in pins:
            if (p.kind == "replica" and p.version <= version) or p.version == version:
                what = (
                    "the replica's copy of the version is erased with it (same jurisdiction) "
                    "or, elsewhere, cannot hold personal data"
                    if p.kind == "replica"
                    else "the model's training version can no longer be read back; retrain it"
                )
                out.append({"version": version, "kind": p.kind, "name": p.name, "cost": what})
    return out


@dataclass
class LocationErasure:
    """A batch of requests served at one location."""

    location: str
    jurisdiction: str
    tables: list[dict[str, Any]] = field(default_factory=list)
    landing: LandingErasure = field(default_factory=LandingErasure)
    read_back: ReadBack = field(default_factory=ReadBack)
    # model versions pinned to a version the erasure cost, and the aliases still needing a retrain
    models_marked: list[dict[str, Any]] = field(default_factory=list)
    retraining_due: list[dict[str, Any]] = field(default_factory=list)
    artifacts: ArtifactScan = field(default_factory=ArtifactScan)  # the first pass, removing
    seconds: float = 0.0

    @property
    def files_rewritten(self) -> int:
        """Data files the deletes rewrote, kept files removed, log files and landing objects."""
        n = sum(t["files_rewritten"] + len(t["files_removed"]) for t in self.tables)
        n += sum(
            len(t["log_files_rewritten"]) + len(t["checkpoints_rewritten"]) for t in self.tables
        )
        n += self.landing.ledger_files_rewritten
        return n + len(self.landing.rewritten) + len(self.landing.deleted)

    @property
    def bytes_rewritten(self) -> int:
        """Bytes written: the deletes' new files, landing objects, the ledger's updated files."""
        landing = self.landing.bytes_rewritten + self.landing.ledger_bytes_rewritten
        return sum(int(t["bytes_written"]) for t in self.tables) + landing

    @property
    def held_subjects(self) -> bool:
        """Whether the location held any of the batch's subjects (rows or landing records)."""
        return any(t.get("rows_deleted") for t in self.tables) or bool(
            self.landing.rewritten or self.landing.deleted
        )

    def receipt(
        self, request: ErasureRequest, key: str, served: dt.datetime, name_subject: bool = True
    ) -> dict[str, Any]:
        """The receipt row of one request (``ERASURE_RECEIPT_SCHEMA``).

        ``name_subject`` False: no ``subject_hash`` (null). A keyed hash is pseudonymized
        data of the subject's jurisdiction; a location that held nothing of the subject,
        scanned only to prove it, keeps the request id and its counts, not the hash.
        """
        found = self.read_back.found.get(request.request_id, [])
        return {
            "request_id": request.request_id,
            "subject_hash": request.subject_hash(key) if name_subject else None,
            "location": self.location,
            "jurisdiction": self.jurisdiction,
            "requested_at": request.requested_at or served,
            "served_at": served,
            "tables": json.dumps(self.tables, default=str),
            "landing": json.dumps(self.landing.as_dict()),
            "models": json.dumps(
                {"marked": self.models_marked, "retraining_due": self.retraining_due}
            ),
            "artifacts": json.dumps(self.artifacts.as_dict()),
            "scanned": json.dumps(self.read_back.scanned),
            "files_scanned": self.read_back.files_scanned,
            "bytes_scanned": self.read_back.bytes_scanned,
            "files_holding_subject": len(found),
            "verified_absent": not found,
            "seconds": self.seconds,
            "date": served.date(),
        }


def _bytes_written(
    uri: str, options: Mapping[str, str], before: int, after: int
) -> tuple[int, int]:
    """Files and bytes every commit after ``before`` up to ``after`` added.

    Summed commit by commit from the log: a file a later commit of the range replaced again
    (a purge after a delete, a day's ledger updated twice) was written all the same.
    """
    added = delta.commit_adds(uri, options, before, after)
    return len(added), sum(size for _, size in added)


def serve_location(
    cfg: LakeConfig,
    location: LakeLocation,
    requests: Sequence[ErasureRequest],
    key: str,
    *,
    options_for: Callable[[LakeLocation], dict[str, str]] | None = None,
    model_pins_of: Callable[[str], list[maintenance.Pin]] | None = None,
    tracking: Tracking | None = None,
    now: dt.datetime | None = None,
    own: bool = True,
) -> LocationErasure:
    """Erase ``requests``' subjects at ``location``, read back, write a receipt per request.

    With ``tracking`` (the registry ``model_pins_of`` reads), the model versions pinned to a
    version the erasure cost are marked, and the experiment's artifact store is scanned (an
    artifact holding a subject removed) and read back with the location's files.

    ``own``: the requests are this location's (its request table's, or a request named to
    it); their receipts here carry the subject's keyed hash. False (one request searched at
    every location, its region unknown): the hash is written only where the subject was
    found, so a location of another jurisdiction keeps none of it.
    """
    t0 = time.perf_counter()
    options_for = options_for or (lambda loc: loc.storage_options())
    pins_of = model_pins_of or (lambda uri: [])
    options = options_for(location)
    subject = subject_of(requests, key)
    out = LocationErasure(location.name, location.jurisdiction)
    removed: dict[str, dict[str, int]] = {}
    present = []
    for name in personal_tables(location, cfg):  # every table checked before any is changed
        table = delta.open_table(location.table_uri(name), options)
        if table is not None:
            check_erasable(location.table_uri(name), table)
            present.append(name)
    storage = open_storage(location.root_uri(), options)
    # the landing objects holding a subject, fenced before any row is deleted: no ingest takes
    # their old bytes while they are rewritten (pipelines/erasure/landing.py)
    found = find_landing(location, storage, subject)
    fence_landing(location, options, found)
    for name in present:
        uri = location.table_uri(name)
        report = erase_from_table(uri, dict(options), subject, read_back=False)
        files, written = _bytes_written(uri, options, report.version_before, report.version_after)
        removed[{"bronze_events": "bronze", "bronze_quarantine": "quarantine"}.get(name, name)] = (
            report.rows_by_object
        )
        out.tables.append(
            {
                "table": name,
                "uri": uri,
                "version_before": report.version_before,
                "version_after": report.version_after,
                "rows_deleted": report.rows_deleted,
                "files_rewritten": files,
                "bytes_written": written,
                "files_removed": report.files_removed,
                "bytes_removed": report.bytes_removed,
                "log_files_rewritten": report.log_files_rewritten,
                "checkpoints_rewritten": report.checkpoints_rewritten,
                "versions_lost": report.versions_lost,
                "pinned_by": _pins_of(cfg, location, name, report, options_for, pins_of),
            }
        )
    for replica in personal_replicas(cfg, location, present):
        out.tables.append(
            erase_replica(cfg, replica, subject, options, options_for(replica.target), pins_of)
        )
    if tracking is not None:
        out.models_marked = mark_models(tracking, out.tables, [r.request_id for r in requests])
        out.retraining_due = retraining_due(tracking)
    ledger_uri = location.table_uri(ledger.LEDGER_TABLE)
    ledger_before = delta.table_version(ledger_uri, options)
    out.landing = erase_landing(location, storage, options, subject, removed, found)
    release_landing(location, options, found)
    if ledger_before is not None:  # the objects' rows moved and the fence lifted
        out.landing.ledger_files_rewritten, out.landing.ledger_bytes_rewritten = _bytes_written(
            ledger_uri, options, ledger_before, delta.table_version(ledger_uri, options) or 0
        )
    needles = {
        r.request_id: [
            v.encode()
            for values in (*r.identifiers().values(), *r.pseudonyms(key).values())
            for v in values
        ]
        for r in requests
    }
    if tracking is not None:
        out.artifacts = scan_artifacts(tracking, needles, remove=True)
    out.read_back = read_back(storage, location, needles)
    for replica in personal_replicas(cfg, location, present):
        # read back where each replica lives, as the location's own files
        store = open_storage(replica.target_uri, options_for(replica.target), create=False)
        seen = read_back(store, replica.target, needles)
        out.read_back.add(
            f"replica {replica.name} at {replica.target.name}",
            seen.files_scanned,
            seen.bytes_scanned,
            seen.found,
            replica.target_uri,
        )
    if tracking is not None:  # read back independently of what the first pass removed
        again = scan_artifacts(tracking, needles, remove=False)
        out.read_back.add(
            "mlflow_artifacts", again.files_scanned, again.bytes_scanned, again.found, again.root
        )
    out.seconds = round(time.perf_counter() - t0, 3)
    served = now or dt.datetime.now(dt.UTC)
    name_subject = own or (len(requests) == 1 and out.held_subjects)
    write_receipts(location, options, [out.receipt(r, key, served, name_subject) for r in requests])
    return out
