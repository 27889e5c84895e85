"""Lake locations, regions and the sovereignty policy, read from ``lakehouse.yaml``.

Nothing here builds a client or reads a secret at import. ``${NAME}`` placeholders in the file
are resolved from the environment only when :func:`LakeLocation.storage_options` is called.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import re
from collections.abc import Mapping
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
# How an environment's code locations split the jurisdictions (``compute.pools``): one code
# location serving every jurisdiction, or one code location (worker pool) per jurisdiction.
SHARED_POOL = "shared"
PER_JURISDICTION = "per_jurisdiction"
POOLS = (SHARED_POOL, PER_JURISDICTION)
DEFAULT_ROUTING_TAG = "lakehouse/jurisdiction"
# A Dagster tag key: an optional prefix and a name of letters, digits, ``_``, ``-`` and ``.``.
_TAG_KEY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*/)?[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")


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


def resolve_placeholders(value: str, where: str, first: Mapping[str, str] | None = None) -> str:
    """Replace ``${NAME}`` with ``first[NAME]``, else the environment variable NAME.

    Fails naming the variable when neither has it.
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if first and name in first:
            return first[name]
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
    # Spark's view of the location (``spark:`` in lakehouse.yaml): the root as its Hadoop
    # connector addresses it, and the settings that connector needs; placeholders unresolved.
    raw_spark_root: str | None = None
    raw_spark_conf: dict[str, str] = field(default_factory=dict)

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

    def spark_root(self, options: Mapping[str, str]) -> str:
        """The root as Spark's Hadoop connector addresses it (``spark.root``; default: root).

        Placeholders resolve from the location's storage ``options`` first (so a setting can
        reuse ``${AWS_ENDPOINT_URL}``), then from the environment.
        """
        if self.raw_spark_root is None:
            return self.root_uri()
        where = f"location {self.name!r} spark.root"
        return resolve_placeholders(self.raw_spark_root, where, options).rstrip("/")

    def spark_conf(self, options: Mapping[str, str]) -> dict[str, str]:
        """Hadoop settings Spark needs to reach the location (``spark.conf``), resolved now."""
        where = f"location {self.name!r} spark.conf"
        return {
            resolve_placeholders(k, f"{where} key {k}", options): resolve_placeholders(
                str(v), f"{where}.{k}", options
            )
            for k, v in self.raw_spark_conf.items()
        }

    def spark_uri(self, uri: str, options: Mapping[str, str]) -> str:
        """A URI under this location's root, rewritten to Spark's root for it."""
        root = self.root_uri()
        if uri != root and not uri.startswith(root.rstrip("/") + "/"):
            raise ConfigError(f"{uri} is not under location {self.name!r} (root {root})")
        return self.spark_root(options) + uri[len(root) :]


@dataclass(frozen=True)
class Policy:
    """Data-sovereignty policy: which columns are personal data and where data may go."""

    pii_columns: tuple[str, ...]
    allowed_routes: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class SparkEndpoint:
    """Where the Spark steps of one location's data run (``compute.spark_endpoints``).

    One of ``spark_master`` (``local[N]``, ``spark://…``, ``yarn``, ``k8s://…``),
    ``spark_connect`` (``sc://…``) or a Databricks workspace (``databricks_host`` with
    ``databricks_token``, a ``${VARIABLE}``: tokens are never written in lakehouse.yaml).
    Values may hold ``${NAME}`` placeholders, resolved when a step needs them.
    """

    location: str
    spark_master: str | None = None
    spark_connect: str | None = None
    databricks_host: str | None = None
    databricks_token: str | None = None

    def master(self) -> str | None:
        """The Spark master URL (a Connect URL is one too), placeholders resolved now."""
        raw = self.spark_connect or self.spark_master
        where = f"compute.spark_endpoints.{self.location}"
        return resolve_placeholders(raw, where) if raw else None

    def databricks(self) -> tuple[str, str] | None:
        """``(host, token)`` of the location's Databricks workspace, resolved now; else None."""
        if not self.databricks_host or not self.databricks_token:
            return None
        where = f"compute.spark_endpoints.{self.location}"
        return (
            resolve_placeholders(self.databricks_host, f"{where}.databricks_host"),
            resolve_placeholders(self.databricks_token, f"{where}.databricks_token"),
        )

    def describe(self) -> dict[str, str]:
        """The endpoint as configured (placeholders unresolved, the token never shown)."""
        shown = {
            "spark_master": self.spark_master,
            "spark_connect": self.spark_connect,
            "databricks_host": self.databricks_host,
        }
        return {k: v for k, v in shown.items() if v}


@dataclass(frozen=True)
class ComputeConfig:
    """Sovereignty of compute: who may process whose personal data, and where Spark runs.

    ``may_process`` maps a worker's declared jurisdiction to the jurisdictions whose personal
    data it may process (a jurisdiction absent from it: only its own). ``routing_tag`` is the
    run tag that carries a run's jurisdiction. ``pools`` is ``shared`` (one code location
    serves every jurisdiction) or ``per_jurisdiction`` (one code location per jurisdiction).
    """

    may_process: dict[str, tuple[str, ...]] = field(default_factory=dict)
    routing_tag: str = DEFAULT_ROUTING_TAG
    pools: str = SHARED_POOL
    spark_endpoints: dict[str, SparkEndpoint] = field(default_factory=dict)

    def processable_by(self, jurisdiction: str) -> tuple[str, ...]:
        """Jurisdictions whose personal data a worker declaring ``jurisdiction`` may process."""
        return self.may_process.get(jurisdiction, (jurisdiction,))

    def endpoint(self, location: str | None) -> SparkEndpoint | None:
        """The Spark endpoint configured for a location's data, if any."""
        return self.spark_endpoints.get(location) if location else None


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
class MaintenanceSettings:
    """The ``maintenance:`` section: table upkeep (pipelines/maintenance.py, docs/maintenance.md).

    ``retention_hours``: a data file no kept version needs is deleted only this long after its
    removal (Delta's own default, 7 days: readers and writers in flight). ``log_retention_hours``:
    log entries below the floor's checkpoint go only after this long (Delta's 30 days).
    ``model_pin_days``: None keeps every registered model version's lineage version; a number
    lets versions older than that which hold no alias stop pinning. ``z_order``: per table, the
    columns readers filter on (compaction then Z-orders by them). ``target_file_size``: bytes.
    """

    retention_hours: float = 168.0
    log_retention_hours: float = 720.0
    model_pin_days: float | None = None
    target_file_size: int = 128 * 1024 * 1024
    z_order: dict[str, tuple[str, ...]] = field(default_factory=dict)
    schedule: str = "0 3 * * 0"  # weekly, Sunday 03:00 UTC


@dataclass(frozen=True)
class LakeConfig:
    """Everything ``lakehouse.yaml`` says about one environment."""

    environment: str
    locations: dict[str, LakeLocation]
    ml_home: str
    regions: dict[str, dict[str, str]]
    policy: Policy
    egress_usd_per_gb: dict[str, dict[str, float]]
    storage_usd_per_gb_month: dict[str, float] = field(default_factory=dict)
    replication: tuple[ReplicationRule, ...] = ()
    start_date: dt.date = DEFAULT_START_DATE
    ml: MLSettings = field(default_factory=lambda: MLSettings())
    spark_backend: str = "session"
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)

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

    def storage_price(self, location: LakeLocation) -> float:
        """Estimated USD per GB and month at rest in ``location`` (``storage_usd_per_gb_month``)."""
        return float(self.storage_usd_per_gb_month.get(location.cloud, 0.0))

    @property
    def jurisdictions(self) -> list[str]:
        """Every jurisdiction the environment knows: its locations' and ``regions:``'s, sorted."""
        known = {loc.jurisdiction for loc in self.locations.values()}
        known |= {str(r["jurisdiction"]) for r in self.regions.values() if "jurisdiction" in r}
        return sorted(known)

    def jurisdiction_of_region(self, region: str) -> str:
        """The jurisdiction of the location that holds a region's data."""
        return self.location_for_region(region).jurisdiction

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
        **_spark_view(raw, f"{where}: {raw['name']}.spark"),
    )


def _spark_view(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """A location's ``spark: {root, conf}``: how Spark's Hadoop connectors reach it."""
    spark = _mapping(raw.get("spark"), where)
    unknown = sorted(set(spark) - {"root", "conf"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: root, conf")
    root = spark.get("root")
    if root is not None and (not isinstance(root, str) or "://" not in root):
        raise ConfigError(f"{where}.root {root!r} is not a URI (scheme://bucket…)")
    conf = _mapping(spark.get("conf"), f"{where}.conf")
    bad = sorted(str(k) for k, v in conf.items() if isinstance(v, dict | list) or v is None)
    if bad:
        raise ConfigError(f"{where}.conf: {', '.join(bad)} must be a single value")
    return {
        "raw_spark_root": root,
        "raw_spark_conf": {
            str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()
        },
    }


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


def _jurisdiction_list(value: Any, where: str, known: list[str]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where} must be a non-empty list of jurisdictions, not {value!r}")
    unknown = sorted({i for i in items if i not in known})
    if unknown:
        raise ConfigError(
            f"{where} names unknown jurisdiction(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return tuple(dict.fromkeys(items))


def _may_process(raw: Any, where: str, known: list[str]) -> dict[str, tuple[str, ...]]:
    out = {}
    for worker, allowed in _mapping(raw, where).items():
        key = f"{where}.{worker}"
        if str(worker) not in known:
            raise ConfigError(
                f"{where}: unknown jurisdiction {worker!r}; known: {', '.join(known)}"
            )
        listed = _jurisdiction_list(allowed, key, known)
        if worker not in listed:
            raise ConfigError(f"{key} must list {worker} itself (a worker serves its own data)")
        out[str(worker)] = listed
    return out


def _routing_tag(raw: Any, where: str) -> str:
    tag = DEFAULT_ROUTING_TAG if raw is None else raw
    if not isinstance(tag, str) or not _TAG_KEY.match(tag):
        raise ConfigError(
            f"{where}.routing_tag {tag!r} is not a Dagster tag key (letters, digits, _ - . and "
            "one optional prefix/, e.g. lakehouse/jurisdiction)"
        )
    return tag


_ENDPOINT_KEYS = ("spark_master", "spark_connect", "databricks_host", "databricks_token")


def _endpoint(name: str, raw: Any, where: str) -> SparkEndpoint:
    entry = {k: v for k, v in _mapping(raw, where).items() if v is not None}
    unknown = sorted(set(entry) - set(_ENDPOINT_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_ENDPOINT_KEYS)}"
        )
    bad = sorted(k for k, v in entry.items() if not isinstance(v, str) or not v.strip())
    if bad:
        raise ConfigError(f"{where}: {', '.join(bad)} must be non-empty text")
    if "spark_master" in entry and "spark_connect" in entry:
        raise ConfigError(f"{where}: give spark_master or spark_connect, not both")
    connect = entry.get("spark_connect")
    if connect and not connect.startswith(("sc://", "${")):
        raise ConfigError(f"{where}.spark_connect {connect!r} is not a Spark Connect URL (sc://)")
    if ("databricks_host" in entry) != ("databricks_token" in entry):
        raise ConfigError(f"{where}: databricks_host and databricks_token go together")
    token = entry.get("databricks_token")
    if token and not _PLACEHOLDER.fullmatch(token):
        raise ConfigError(
            f"{where}.databricks_token must be a ${{VARIABLE}} (secrets are never written in "
            "lakehouse.yaml)"
        )
    if not entry:
        raise ConfigError(f"{where} is empty; give spark_master, spark_connect or databricks_host")
    return SparkEndpoint(name, **entry)


def _parse_compute(
    data: dict[str, Any],
    raw_env: dict[str, Any],
    path: str,
    env: str,
    known: list[str],
    locations: dict[str, LakeLocation],
) -> ComputeConfig:
    """``compute:`` (top level: the rules) and ``environments.<env>.compute`` (pools, Spark)."""
    where = f"{path}: compute"
    top = _mapping(data.get("compute"), where)
    unknown = sorted(set(top) - {"may_process", "routing_tag"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: may_process, routing_tag"
        )
    env_where = f"{path}: environments.{env}.compute"
    per_env = _mapping(raw_env.get("compute"), env_where)
    unknown = sorted(set(per_env) - {"pools", "spark_endpoints"})
    if unknown:
        raise ConfigError(
            f"{env_where}: unknown key(s) {', '.join(unknown)}; known: pools, spark_endpoints"
        )
    pools = per_env.get("pools", SHARED_POOL)
    if pools not in POOLS:
        raise ConfigError(f"{env_where}.pools {pools!r} is not one of {', '.join(POOLS)}")
    endpoints = {}
    for name, raw in _mapping(
        per_env.get("spark_endpoints"), f"{env_where}.spark_endpoints"
    ).items():
        if name not in locations:
            raise ConfigError(
                f"{env_where}.spark_endpoints: unknown location {name!r}; "
                f"known: {', '.join(locations)}"
            )
        endpoints[name] = _endpoint(name, raw, f"{env_where}.spark_endpoints.{name}")
    return ComputeConfig(
        may_process=_may_process(top.get("may_process"), f"{where}.may_process", known),
        routing_tag=_routing_tag(top.get("routing_tag"), where),
        pools=str(pools),
        spark_endpoints=endpoints,
    )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, not {type(value).__name__}")
    return value


def _prices(raw: Any, path: str) -> dict[str, float]:
    """``storage_usd_per_gb_month``: cloud -> a non-negative price; a one-line error if not."""
    out: dict[str, float] = {}
    for cloud, value in _mapping(raw, f"{path}: storage_usd_per_gb_month").items():
        try:
            price = float(value)
        except (TypeError, ValueError):
            price = float("nan")
        if not price >= 0 or price == float("inf"):
            raise ConfigError(
                f"{path}: storage_usd_per_gb_month.{cloud}={value!r} is not a price (>= 0)"
            )
        out[str(cloud)] = price
    return out


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
        storage_usd_per_gb_month=_prices(data.get("storage_usd_per_gb_month"), path),
        replication=_parse_replication(data.get("replication"), path),
        start_date=_start_date(data, path),
        ml=_parse_ml(data, path),
        spark_backend=_spark_backend(raw_env, f"{path}: environments.{env}"),
        maintenance=_parse_maintenance(data.get("maintenance"), f"{path}: maintenance"),
    )
    cfg.location(cfg.ml_home)
    cfg.replicas()  # every location a rule names must exist
    for region in cfg.region_codes:
        cfg.currency_of(region)
    compute = _parse_compute(data, raw_env, path, env, cfg.jurisdictions, locations)
    return dataclasses.replace(cfg, compute=compute)


def _parse_maintenance(raw: Any, where: str) -> MaintenanceSettings:
    """The ``maintenance:`` section; every number checked, z_order columns as tuples."""
    values = dict(_mapping(raw, where))
    z_order = _mapping(values.pop("z_order", None), f"{where}.z_order")
    settings: MaintenanceSettings = _dataclass_from(MaintenanceSettings, values, where)
    for name in ("retention_hours", "log_retention_hours", "target_file_size"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}.{name} must be a number >= 0, not {value!r}")
    days = settings.model_pin_days
    if days is not None and (isinstance(days, bool) or not isinstance(days, int | float)):
        raise ConfigError(f"{where}.model_pin_days must be a number of days or null")
    columns = {}
    for table, cols in z_order.items():
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise ConfigError(f"{where}.z_order.{table} must be a list of column names")
        columns[str(table)] = tuple(cols)
    return dataclasses.replace(settings, z_order=columns)


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
