"""The tables upkeep covers, and the retention floor: the oldest version a replica or a model needs.

Every configured replica pins the source version it holds; every model version in the registry
whose lineage names the table pins the version it was trained on (see the package's docstring).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.lake.config import LakeConfig, LakeLocation, MaintenanceSettings, Replica
from pipelines.lake.config.environment import env, redact
from pipelines.lake.storage import StorageError, open_storage
from pipelines.replication.deltalog import (
    latest_version,
)

HOUR = 3600.0


class MaintenanceError(RuntimeError):
    """Upkeep cannot go on; the message names the table, the location and why."""


@dataclass(frozen=True)
class Pin:
    """A version whose files must stay, and who needs it."""

    version: int
    kind: str  # "replica" (every version from here on) or "model" (this version alone)
    name: str  # the replica's asset name, or model name and version
    uri: str = ""

    def describe(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """One table at one location that upkeep runs on."""

    name: str  # asset-style name: the table, or the replica's name
    table: str
    location: LakeLocation
    replica: Replica | None = None  # set when the table here is a replica

    @property
    def uri(self) -> str:
        """The table's URI (resolved when asked: a root may name an environment variable)."""
        return self.replica.target_uri if self.replica else self.location.table_uri(self.table)

    @property
    def role(self) -> str:
        """``source`` (may be rewritten) or ``replica`` (mirrors its source only)."""
        return "replica" if self.replica else "source"


def targets(cfg: LakeConfig) -> list[Target]:
    """Every table and location upkeep runs on: each table where it lives, each replica."""
    from pipelines.lake.tables import TABLES, Role

    out: list[Target] = []
    for spec in TABLES.values():
        homes = [cfg.home] if spec.role == Role.ML_HOME else list(cfg.locations.values())
        out.extend(Target(spec.name, spec.name, loc) for loc in homes)
    for r in cfg.replicas():
        out.append(Target(r.name, r.table, r.target, r))
    return out


def find_target(cfg: LakeConfig, table: str, location: str) -> Target:
    """The target named ``table`` (a registered table or a replica) at ``location``."""
    cfg.location(location)  # an unknown location is named with the known ones
    found = [t for t in targets(cfg) if t.location.name == location]
    for t in found:
        if table in (t.name, t.table) and (t.replica is None or table == t.name):
            return t
    known = ", ".join(sorted(t.name for t in found))
    raise MaintenanceError(
        f"table {table!r} does not live at location {location!r}; there: {known}"
    )


@dataclass
class Floor:
    """The retention floor: kept versions and who keeps them."""

    current: int
    replica_floor: int  # every version from here on keeps its files
    models: list[Pin] = field(default_factory=list)  # single versions kept besides
    pins: list[Pin] = field(default_factory=list)

    @property
    def oldest(self) -> int:
        """The oldest version whose files stay."""
        return min([self.replica_floor, *(p.version for p in self.models)])

    def set_by(self) -> dict[str, Any]:
        """Which replica or model set the oldest kept version (or the current version)."""
        oldest = [p for p in self.pins if p.version == self.oldest]
        if not oldest:
            return {"kind": "current_version", "name": "", "version": self.current}
        return oldest[0].describe()


def compute_floor(current: int, pins: Iterable[Pin]) -> Floor:
    """The floor of a table at ``current``: replicas keep a range, models single versions."""
    pins = sorted(pins, key=lambda p: (p.version, p.kind, p.name))
    replica = [p.version for p in pins if p.kind == "replica"]
    models = [p for p in pins if p.kind == "model" and p.version <= current]
    return Floor(
        current=current,
        replica_floor=min([current, *replica]),
        models=models,
        pins=[p for p in pins if p.version <= current],
    )


def replica_pins(
    cfg: LakeConfig, target: Target, options_for: Callable[[LakeLocation], dict[str, str]]
) -> list[Pin]:
    """The version each configured replica of ``target`` holds (replicas not yet made: none)."""
    pins = []
    for r in cfg.replicas():
        if r.table != target.table or r.source.name != target.location.name:
            continue
        try:
            store = open_storage(r.target_uri, options_for(r.target), create=False)
        except StorageError as exc:
            if "does not exist" in str(exc):
                continue  # not made yet: its first sync starts from the source's checkpoint
            raise
        version = latest_version(store)
        if version is not None:
            pins.append(Pin(version, "replica", r.name, r.target_uri))
    return pins


def same_table(a: str, b: str) -> bool:
    """Whether two table URIs name the same table (trailing slashes, file:// aside)."""

    def norm(uri: str) -> str:
        return uri.removeprefix("file://").rstrip("/")

    return norm(a) == norm(b)


def lineage_pins(
    versions: Iterable[Any],
    uri: str,
    model_name: str,
    settings: MaintenanceSettings,
    now: float | None = None,
) -> list[Pin]:
    """Pins from registered model versions whose lineage tags name ``uri``.

    ``versions`` are MLflow ``ModelVersion`` objects (``tags``, ``aliases``,
    ``creation_timestamp`` in ms). With ``model_pin_days`` set, a version older than that and
    holding no alias no longer pins.
    """
    now = time.time() if now is None else now
    pins = []
    for mv in versions:
        tags = dict(getattr(mv, "tags", None) or {})
        aliases = list(getattr(mv, "aliases", None) or [])
        created = (getattr(mv, "creation_timestamp", None) or 0) / 1000
        if (
            settings.model_pin_days is not None
            and not aliases
            and now - created > settings.model_pin_days * 86400
        ):
            continue
        for key, value in tags.items():
            if not (key.startswith("lineage.") and key.endswith(".uri")):
                continue
            version = tags.get(key[: -len(".uri")] + ".version")
            if same_table(value, uri) and version is not None and str(version).isdigit():
                pins.append(Pin(int(version), "model", f"{model_name} v{mv.version}", value))
    return pins


def model_pins(tracking: Any, uri: str, settings: MaintenanceSettings) -> list[Pin]:
    """Pins of every version of the tracking location's model still in the registry.

    An unreachable registry is an error: upkeep never deletes what it could not check.
    """
    try:
        with tracking.session(quick=True) as client:
            versions = client.search_model_versions(f"name = '{tracking.model_name}'")
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MaintenanceError(
            f"model registry {redact(str(tracking.registry))}: cannot list the versions of "
            f"{tracking.model_name!r} ({redact(text[:200])}); no file is deleted without that "
            "check"
        ) from None
    return lineage_pins(versions, uri, tracking.model_name, settings)


def registry_pins(
    tracking: Any | None, settings: MaintenanceSettings
) -> Callable[[str], list[Pin]]:
    """``model_pins_of`` for :func:`maintain` from a tracking location (None: no registry)."""
    if tracking is None:
        return lambda uri: []
    return lambda uri: model_pins(tracking, uri, settings)


def default_tracking(cfg: LakeConfig) -> Any | None:
    """The registry the CLI checks for model lineage pins.

    ``MLFLOW_TRACKING_URI`` (or the emulated environment's ``LAKEHOUSE_MLFLOW_TRACKING_URI``),
    else the local store if it exists (none: no models are registered, nothing is pinned).
    """
    from pipelines.lake.config import lake_home
    from pipelines.ml.tracking import Tracking

    uri = env("MLFLOW_TRACKING_URI") or env("LAKEHOUSE_MLFLOW_TRACKING_URI")
    if not uri:
        db = lake_home() / ".mlflow" / "mlflow.db"
        if not db.exists():
            return None
        uri = f"sqlite:///{db}"
    return Tracking(
        tracking_uri=uri,
        model_name=cfg.ml.model_name,
        experiment=cfg.ml.experiment,
        registry_uri=env("MLFLOW_REGISTRY_URI") or None,
        token=env("MLFLOW_TRACKING_TOKEN") or None,
    )
