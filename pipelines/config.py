"""Lake locations, regions and the sovereignty policy, read from ``lakehouse.yaml``.

Nothing here builds a client or reads a secret at import. ``${NAME}`` placeholders in the file
are resolved from the environment only when :func:`LakeLocation.storage_options` is called.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("local", "emulated", "prod")
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")
# Storage option that carries a location's ``adapter:`` (lakehouse.yaml) to the engines.
ADAPTER_OPTION = "LAKEHOUSE_ADAPTER"
# fake-gcs-server does not accept object_store's XML-API uploads: go through the JSON API.
GCS_JSON_EMULATOR = "gcs-json-emulator"
ADAPTERS = (GCS_JSON_EMULATOR,)
# Where the Spark steps run: a session the code location owns, or Databricks jobs (Pipes).
SPARK_BACKENDS = ("session", "databricks")


class ConfigError(ValueError):
    """The configuration is wrong or incomplete; the message says what and where."""


DEFAULT_START_DATE = dt.date(2026, 9, 1)


def config_path() -> Path:
    """Path of the configuration file (``LAKEHOUSE_CONFIG`` overrides the project's own)."""
    return Path(os.environ.get("LAKEHOUSE_CONFIG") or PROJECT_ROOT / "lakehouse.yaml")


def lake_home() -> Path:
    """Folder that relative location roots and local state are resolved against."""
    home = Path(os.environ.get("LAKEHOUSE_HOME") or PROJECT_ROOT).resolve()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"LAKEHOUSE_HOME={home} is a file, not a folder")
    return home


def _start_date(data: dict[str, Any], path: str) -> dt.date:
    """First daily partition: ``LAKEHOUSE_START_DATE``, else ``start_date:``, else the default."""
    raw = os.environ.get("LAKEHOUSE_START_DATE") or data.get("start_date") or DEFAULT_START_DATE
    where = (
        "LAKEHOUSE_START_DATE" if os.environ.get("LAKEHOUSE_START_DATE") else f"{path}: start_date"
    )
    if isinstance(raw, dt.date):
        return raw
    try:
        return dt.date.fromisoformat(str(raw))
    except ValueError:
        raise ConfigError(f"{where}={raw!r} is not a date (YYYY-MM-DD)") from None


def read_config_file(path: str) -> dict[str, Any]:
    """The configuration file as a mapping; a one-line error naming the file if it is not one."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"configuration {path} is a folder, not a YAML file (LAKEHOUSE_CONFIG)")
    try:
        data = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"configuration file {path} is not valid YAML{at}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise ConfigError(f"configuration file {path} is {kind}; see lakehouse.yaml for the shape")
    return data


def current_environment() -> str:
    """The environment named by ``LAKEHOUSE_ENV`` (default ``local``), validated."""
    env = os.environ.get("LAKEHOUSE_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"LAKEHOUSE_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
    return env


def resolve_placeholders(value: str, where: str) -> str:
    """Replace ``${NAME}`` with the environment variable NAME; fail naming it if unset."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where} needs environment variable {name}, which is not set")
        return os.environ[name]

    return _PLACEHOLDER.sub(sub, value)


@dataclass(frozen=True)
class LandingConfig:
    """Where and in which capture format a location's events land."""

    format: str
    prefix: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LakeLocation:
    """One lake location: a root in one cloud, in one jurisdiction."""

    name: str
    cloud: str
    region: str
    jurisdiction: str
    root: str
    landing: LandingConfig
    raw_storage_options: dict[str, str] = field(default_factory=dict)
    adapter: str | None = None

    def root_uri(self) -> str:
        """The root as a URI, placeholders resolved; relative folders against LAKEHOUSE_HOME."""
        root = resolve_placeholders(self.root, f"location {self.name!r} root")
        if root.startswith("file://"):
            root = root[len("file://") :]
        if "://" not in root:
            path = Path(root)
            if not path.is_absolute():
                path = lake_home() / path
            return str(path)
        return root.rstrip("/")

    def uri(self, *parts: str) -> str:
        """URI of a path under this location's root."""
        return "/".join([self.root_uri(), *(p.strip("/") for p in parts if p)])

    def table_uri(self, table: str) -> str:
        """URI of a Delta table at this location."""
        return self.uri("tables", table)

    def replica_uri(self, table: str, source: str) -> str:
        """URI of this location's replica of ``table`` copied from location ``source``."""
        return self.uri("replicas", source, table)

    def storage_options(self, secrets: dict[str, str] | None = None) -> dict[str, str]:
        """Storage options for deltalake/obstore, placeholders resolved now, secrets merged."""
        opts = {
            k: resolve_placeholders(str(v), f"location {self.name!r} option {k}")
            for k, v in self.raw_storage_options.items()
        }
        opts.update({k: v for k, v in (secrets or {}).items() if v})
        if self.adapter:
            opts[ADAPTER_OPTION] = self.adapter
        return opts


@dataclass(frozen=True)
class Policy:
    """Data-sovereignty policy: which columns are personal data and where data may go."""

    pii_columns: tuple[str, ...]
    allowed_routes: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class ReplicationRule:
    """``replication:`` entry: copy ``table`` from ``sources`` into ``target``.

    ``sources`` is ``("all",)`` for every location except the target; ``target`` is
    ``"ml_home"`` or a location name.
    """

    table: str
    sources: tuple[str, ...] = ("all",)
    target: str = "ml_home"


@dataclass(frozen=True)
class Replica:
    """One configured replica: ``table`` of ``source`` kept in sync inside ``target``."""

    table: str
    source: LakeLocation
    target: LakeLocation

    @property
    def name(self) -> str:
        """Asset name, e.g. ``gold_daily_demand_replica_azure_eu``."""
        return f"{self.table}_replica_{re.sub(r'[^A-Za-z0-9_]', '_', self.source.name)}"

    @property
    def source_uri(self) -> str:
        """The source table's URI."""
        return self.source.table_uri(self.table)

    @property
    def target_uri(self) -> str:
        """The replica's URI: ``<target root>/replicas/<source>/<table>``."""
        return self.target.replica_uri(self.table, self.source.name)


@dataclass(frozen=True)
class LakeConfig:
    """Everything ``lakehouse.yaml`` says about one environment."""

    environment: str
    locations: dict[str, LakeLocation]
    ml_home: str
    regions: dict[str, dict[str, str]]
    policy: Policy
    egress_usd_per_gb: dict[str, dict[str, float]]
    replication: tuple[ReplicationRule, ...] = ()
    start_date: dt.date = DEFAULT_START_DATE
    ml: MLSettings = field(default_factory=lambda: MLSettings())
    spark_backend: str = "session"

    def location(self, name: str) -> LakeLocation:
        """The location called ``name``, or an error listing the known ones."""
        try:
            return self.locations[name]
        except KeyError:
            known = ", ".join(sorted(self.locations))
            raise ConfigError(
                f"unknown lake location {name!r} in environment {self.environment!r}; "
                f"known: {known}"
            ) from None

    def location_for_region(self, region: str) -> LakeLocation:
        """The location that holds a region's events."""
        for loc in self.locations.values():
            if loc.region == region:
                return loc
        raise ConfigError(f"no lake location holds region {region!r} in {self.environment!r}")

    @property
    def home(self) -> LakeLocation:
        """The ML home location, where features, models and forecasts live."""
        return self.location(self.ml_home)

    def replicas(self) -> list[Replica]:
        """Every configured replica, in file order (the ML home's own tables excluded)."""
        out: list[Replica] = []
        for rule in self.replication:
            target = self.home if rule.target == "ml_home" else self.location(rule.target)
            names = (
                [n for n in self.locations if n != target.name]
                if rule.sources == ("all",)
                else list(rule.sources)
            )
            for name in names:
                if name != target.name:
                    out.append(Replica(rule.table, self.location(name), target))
        return out

    def egress_price(self, source: LakeLocation, target: LakeLocation) -> float:
        """Estimated USD per GB from ``source`` to ``target`` (``egress_usd_per_gb``)."""
        if source.name == target.name:
            return 0.0
        prices = self.egress_usd_per_gb.get(source.cloud, {})
        return float(prices.get(target.cloud, prices.get("default", 0.0)))

    @property
    def region_codes(self) -> list[str]:
        """Region codes of the configured locations, in file order."""
        return [loc.region for loc in self.locations.values()]

    @property
    def currencies(self) -> list[str]:
        """Currencies of the configured locations' regions (``regions:``), in file order."""
        return list(dict.fromkeys(self.currency_of(r) for r in self.region_codes))

    def currency_of(self, region: str) -> str:
        """The currency of a region's stores (``regions.<region>.currency``)."""
        try:
            return str(self.regions[region]["currency"])
        except KeyError:
            raise ConfigError(f"regions.{region}.currency is not configured") from None


def _parse_location(raw: dict[str, Any], env: str) -> LakeLocation:
    where = f"{config_path()}: environments.{env}.locations"
    missing = [
        k for k in ("name", "cloud", "region", "jurisdiction", "root", "landing") if k not in raw
    ]
    if missing:
        raise ConfigError(f"{where}: entry {raw.get('name', '?')!r} lacks {', '.join(missing)}")
    landing = dict(_mapping(raw["landing"], f"{where}: {raw['name']}.landing"))
    if "format" not in landing or "prefix" not in landing:
        raise ConfigError(f"{where}: {raw['name']}.landing needs a format and a prefix")
    fmt = landing.pop("format")
    prefix = landing.pop("prefix")
    return LakeLocation(
        name=raw["name"],
        cloud=raw["cloud"],
        region=raw["region"],
        jurisdiction=raw["jurisdiction"],
        root=str(raw["root"]),
        landing=LandingConfig(format=fmt, prefix=prefix, options=landing),
        raw_storage_options={k: str(v) for k, v in (raw.get("storage_options") or {}).items()},
        adapter=_adapter(raw, where),
    )


def _adapter(raw: dict[str, Any], where: str) -> str | None:
    adapter = raw.get("adapter")
    if adapter is not None and adapter not in ADAPTERS:
        raise ConfigError(
            f"{where}: {raw['name']}.adapter {adapter!r} is not one of {', '.join(ADAPTERS)}"
        )
    return adapter


def _parse_replication(raw: Any, path: str) -> tuple[ReplicationRule, ...]:
    rules = []
    for i, entry in enumerate(raw or []):
        if not isinstance(entry, dict) or "table" not in entry:
            raise ConfigError(f"{path}: replication[{i}] needs at least a 'table'")
        sources = entry.get("from", "all")
        sources = (sources,) if isinstance(sources, str) else tuple(sources)
        rules.append(ReplicationRule(str(entry["table"]), sources, str(entry.get("to", "ml_home"))))
    return tuple(rules)


def _spark_backend(raw_env: dict[str, Any], where: str) -> str:
    """``spark: {backend: …}`` of an environment: ``session`` (default) or ``databricks``."""
    spark = _mapping(raw_env.get("spark"), f"{where}.spark")
    unknown = sorted(set(spark) - {"backend"})
    if unknown:
        raise ConfigError(f"{where}.spark: unknown key(s) {', '.join(unknown)}; known: backend")
    backend = spark.get("backend", "session")
    if backend not in SPARK_BACKENDS:
        raise ConfigError(
            f"{where}.spark.backend {backend!r} is not one of {', '.join(SPARK_BACKENDS)}"
        )
    return str(backend)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, not {type(value).__name__}")
    return value


@functools.cache
def _load(path: str, env: str) -> LakeConfig:
    data = read_config_file(path)
    envs = _mapping(data.get("environments"), f"{path}: environments")
    if env not in envs:
        raise ConfigError(f"{path} has no environment {env!r}; it has {', '.join(envs) or 'none'}")
    raw_env = _mapping(envs[env], f"{path}: environments.{env}")
    raw_locations = raw_env.get("locations")
    if not isinstance(raw_locations, list) or not raw_locations:
        raise ConfigError(f"{path}: environments.{env}.locations must be a non-empty list")
    for i, raw in enumerate(raw_locations):
        _mapping(raw, f"{path}: environments.{env}.locations[{i}]")
    locations = {raw["name"]: _parse_location(raw, env) for raw in raw_locations}
    if "ml_home" not in raw_env:
        raise ConfigError(f"{path}: environments.{env} lacks ml_home")
    policy = _mapping(data.get("policy"), f"{path}: policy")
    cfg = LakeConfig(
        environment=env,
        locations=locations,
        ml_home=str(raw_env["ml_home"]),
        regions=_mapping(data.get("regions"), f"{path}: regions"),
        policy=Policy(
            pii_columns=tuple(policy.get("pii_columns") or ()),
            allowed_routes={
                k: tuple(v)
                for k, v in _mapping(policy.get("allowed_routes"), f"{path}: policy").items()
            },
        ),
        egress_usd_per_gb={
            k: {kk: float(vv) for kk, vv in _mapping(v, f"{path}: egress_usd_per_gb").items()}
            for k, v in _mapping(data.get("egress_usd_per_gb"), f"{path}: egress").items()
        },
        replication=_parse_replication(data.get("replication"), path),
        start_date=_start_date(data, path),
        ml=_parse_ml(data, path),
        spark_backend=_spark_backend(raw_env, f"{path}: environments.{env}"),
    )
    cfg.location(cfg.ml_home)
    cfg.replicas()  # every location a rule names must exist
    for region in cfg.region_codes:
        cfg.currency_of(region)
    return cfg


def load_config(environment: str | None = None) -> LakeConfig:
    """Read ``lakehouse.yaml`` for an environment (default: ``LAKEHOUSE_ENV``)."""
    env = environment or current_environment()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"environment {env!r} is not one of {', '.join(ENVIRONMENTS)}")
    return _load(str(config_path()), env)


@dataclass(frozen=True)
class DriftSettings:
    """How drift is decided: a calibrated test plus an effect size (see pipelines.drift)."""

    alpha: float = 0.01
    min_normed_wasserstein: float = 0.1
    min_psi_categorical: float = 0.1
    exclude: tuple[str, ...] = ("day_of_week", "day_of_month", "month", "is_weekend", "is_holiday")
    segment_by: str | None = "region"
    match_day_of_week: bool = True


@dataclass(frozen=True)
class RetrainSettings:
    """When drift asks for retraining, and how often at most."""

    min_drifted_features: int = 2
    prediction_drift: bool = True
    cooldown_hours: float = 24.0


@dataclass(frozen=True)
class MLSettings:
    """The ``ml:`` section of lakehouse.yaml: model, promotion gate, drift and retraining."""

    model_name: str = "demand_forecaster"
    experiment: str = "demand_forecast"
    training_window_days: int = 56
    holdout_days: int = 7
    promotion_metric: str = "wape"
    promotion_margin: float = 0.02
    reference_rows: int = 100_000
    drift: DriftSettings = field(default_factory=DriftSettings)
    retrain: RetrainSettings = field(default_factory=RetrainSettings)


def _dataclass_from(cls: Any, raw: dict[str, Any], where: str) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def _parse_ml(data: dict[str, Any], path: str) -> MLSettings:
    raw = dict(_mapping(data.get("ml"), f"{path}: ml"))
    where = f"{path}: ml"
    drift = _dataclass_from(
        DriftSettings, dict(_mapping(raw.pop("drift", None), f"{where}.drift")), f"{where}.drift"
    )
    retrain = _dataclass_from(
        RetrainSettings,
        dict(_mapping(raw.pop("retrain", None), f"{where}.retrain")),
        f"{where}.retrain",
    )
    settings: MLSettings = _dataclass_from(MLSettings, raw, where)
    settings = MLSettings(**{**settings.__dict__, "drift": drift, "retrain": retrain})
    if settings.promotion_metric not in ("mae", "rmse", "wape"):
        raise ConfigError(f"{where}.promotion_metric must be mae, rmse or wape")
    if settings.training_window_days < 1 or settings.holdout_days < 1:
        raise ConfigError(f"{where}: training_window_days and holdout_days must be >= 1")
    return settings


def load_ml_settings() -> MLSettings:
    """The ``ml:`` section of the configuration file (defaults where a key is absent)."""
    return _parse_ml(read_config_file(str(config_path())), str(config_path()))
