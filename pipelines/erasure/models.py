"""Models trained on erased data, and the read-back of the MLflow artifact store.

A registered model version pins, by its lineage tags, the exact Delta version of each table it
was trained on (:mod:`pipelines.ml.tracking`). When an erasure removes the files of a version
that held a subject (``versions_lost``), every model version pinned to it is marked with
:data:`pipelines.ml.tracking.ERASED_TAG` (the request ids) and the receipt names it. Retraining
is then due while a marked version holds ``champion`` or ``challenger``; the next training run
does not keep a marked champion (:func:`pipelines.ml.tracking.score_champion`).

The artifact store of the environment's experiment (a local folder in the demo, a server's
proxied store, a bucket) is scanned file by file, raw and decoded (Parquet rows), for the
subjects' identifiers; an artifact holding one is removed from the store. The product logs only
features (no identifier) as artifacts: the scan proves it, it does not expect to remove anything.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.ml.tracking import CHALLENGER, CHAMPION, ERASED_TAG, Tracking
from pipelines.privacy.erase import holds_token, parquet_values, token_regex, values_hold

ERASED_TABLES_TAG = f"{ERASED_TAG}.tables"


def mark_models(
    tracking: Tracking, tables: Sequence[Mapping[str, Any]], request_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Tag every model version pinned to a version the erasure cost; what was marked.

    ``tables`` are :class:`pipelines.erasure.serve.LocationErasure` table entries: their
    ``pinned_by`` names ``"<model> v<N>"`` for a model pin. Re-running adds nothing twice.
    """
    pinned: dict[str, set[str]] = {}
    for t in tables:
        for p in t.get("pinned_by", []):
            if p["kind"] != "model":
                continue
            name, _, version = str(p["name"]).rpartition(" v")
            if name == tracking.model_name and version.isdigit():
                pinned.setdefault(version, set()).add(f"{t['table']}@v{p['version']}")
    marked = []
    with tracking.session() as client:
        for version, held in sorted(pinned.items(), key=lambda kv: int(kv[0])):
            mv = client.get_model_version(tracking.model_name, version)
            tags = dict(mv.tags or {})
            ids = set(filter(None, tags.get(ERASED_TAG, "").split(","))) | set(request_ids)
            where = set(filter(None, tags.get(ERASED_TABLES_TAG, "").split(","))) | held
            client.set_model_version_tag(
                tracking.model_name, version, ERASED_TAG, ",".join(sorted(ids))
            )
            client.set_model_version_tag(
                tracking.model_name, version, ERASED_TABLES_TAG, ",".join(sorted(where))
            )
            marked.append(
                {
                    "model": tracking.model_name,
                    "version": version,
                    "aliases": sorted(mv.aliases or []),
                    "trained_on": sorted(held),
                }
            )
    return marked


def retraining_due(tracking: Tracking) -> list[dict[str, Any]]:
    """Marked versions still holding ``champion`` or ``challenger``: retrain to replace them."""
    due: dict[str, dict[str, Any]] = {}
    for alias in (CHAMPION, CHALLENGER):
        mv = tracking.version_by_alias(alias)
        if mv is not None and (mv.tags or {}).get(ERASED_TAG):
            entry = due.setdefault(
                str(mv.version),
                {
                    "model": tracking.model_name,
                    "version": str(mv.version),
                    "aliases": [],
                    "requests": mv.tags[ERASED_TAG],
                },
            )
            entry["aliases"].append(alias)
    return list(due.values())


@dataclass
class ArtifactScan:
    """What the scan of the artifact store read, what held a subject, and what was removed."""

    root: str = ""
    files_scanned: int = 0
    bytes_scanned: int = 0
    found: dict[str, list[str]] = field(default_factory=dict)  # request id -> artifact paths
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths, counts; no identifier)."""
        return {
            "root": self.root,
            "files": self.files_scanned,
            "bytes": self.bytes_scanned,
            "removed": self.removed,
            "holding_subject": sorted({p for ps in self.found.values() for p in ps}),
        }


def _files(repo: Any, path: str | None = None) -> list[Any]:
    out = []
    for info in repo.list_artifacts(path):
        out.extend(_files(repo, info.path) if info.is_dir else [info])
    return out


def scan_artifacts(
    tracking: Tracking, needles: Mapping[str, Sequence[bytes]], *, remove: bool
) -> ArtifactScan:
    """Every artifact of the experiment's store, raw and decoded, searched for each request.

    With ``remove``, an artifact holding a subject is deleted from the store (a model's input
    example or a logged sample: the model still loads; the files are listed in the receipt).
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    with tracking.session() as client:
        experiment = client.get_experiment_by_name(tracking.experiment)
        if experiment is None or not experiment.artifact_location:
            return ArtifactScan()
        root = experiment.artifact_location
        repo = get_artifact_repository(root, tracking_uri=tracking.tracking_uri)
        out = ArtifactScan(root=root)
        # identifiers as whole tokens, and decoded values by equality or token (the read-back's
        # rule): an artifact holding only a prefix of another id is not removed
        patterns = {r: token_regex(ns) for r, ns in needles.items()}
        with tempfile.TemporaryDirectory() as tmp:
            for info in _files(repo):
                data = Path(repo.download_artifacts(info.path, tmp)).read_bytes()
                out.files_scanned += 1
                out.bytes_scanned += len(data)
                values = parquet_values(data) if info.path.endswith(".parquet") else None
                hits = [
                    r
                    for r, pattern in patterns.items()
                    if holds_token(pattern, data) or values_hold(pattern, values or [])
                ]
                for request_id in hits:
                    out.found.setdefault(request_id, []).append(info.path)
                if hits and remove:
                    repo.delete_artifacts(info.path)
                    out.removed.append(info.path)
    return out
