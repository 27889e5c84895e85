"""The loaded configuration: locations, policy, compute, replication and the settings sections.

Frozen dataclasses built by :mod:`.loading` from the file's model (:mod:`.file`); ``${NAME}``
placeholders are resolved from the environment only when
:func:`LakeLocation.storage_options` is called.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    model_validator,
)

from pipelines.lake.config.environment import (
    DEFAULT_START_DATE,
    ConfigError,
    lake_home,
    resolve_placeholders,
)

# Storage option that carries a location's ``adapter:`` (lakehouse.yaml) to the engines.
ADAPTER_OPTION = "LAKEHOUSE_ADAPTER"
# fake-gcs-server does not accept object_store's XML-API uploads: go through the JSON API.
GCS_JSON_EMULATOR = "gcs-json-emulator"
# Where the Spark steps run: a session the code location owns, or Databricks jobs (Pipes).
# How an environment's code locations split the jurisdictions (``compute.pools``): one code
# location serving every jurisdiction, or one code location (worker pool) per jurisdiction.
SHARED_POOL = "shared"
PER_JURISDICTION = "per_jurisdiction"
DEFAULT_ROUTING_TAG = "lakehouse/jurisdiction"
# A Dagster tag key: an optional prefix and a name of letters, digits, ``_``, ``-`` and ``.``.
_TAG_KEY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*/)?[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")


@dataclass(frozen=True)
class LandingConfig:
    """Where and in which capture format a location's events land."""

    format: str
    prefix: str
    options: dict[str, Any] = field(default_factory=dict)


# A table's (or location's) name as a path segment: never a path, so a name given on a command
# line cannot reach another location's tables ("../../azure-eu/tables/bronze_events").
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def _one_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name or "") or set(name) == {"."}:
        shown = name if len(name) <= 80 else name[:79] + "…"
        raise ConfigError(
            f"{what} name {shown!r} is not a name (letters, digits, _ . -; no path or '/')"
        )
    return name


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
        """URI of a Delta table at this location (``table`` a name, never a path)."""
        return self.uri("tables", _one_name(table, "table"))

    def replica_uri(self, table: str, source: str) -> str:
        """URI of this location's replica of ``table`` copied from location ``source``."""
        return self.uri("replicas", _one_name(source, "location"), _one_name(table, "table"))

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


class MaintenanceSettings(BaseModel):
    """The ``maintenance:`` section: table upkeep (docs/maintenance.md).

    ``retention_hours``: a data file no kept version needs is deleted only this long after its
    removal (Delta's own default, 7 days: readers and writers in flight). ``log_retention_hours``:
    log entries below the floor's checkpoint go only after this long (Delta's 30 days).
    ``model_pin_days``: None keeps every registered model version's lineage version; a number
    lets versions older than that which hold no alias stop pinning. ``z_order``: per table, the
    columns readers filter on (compaction then Z-orders by them). ``target_file_size``: bytes.
    ``schedule``: the weekly upkeep; ``sweep_schedule``: the orphan sweep (every object listed).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    retention_hours: NonNegativeFloat = 168.0
    log_retention_hours: NonNegativeFloat = 720.0
    model_pin_days: NonNegativeFloat | None = None
    target_file_size: NonNegativeInt = 128 * 1024 * 1024
    z_order: dict[str, tuple[str, ...]] = {}
    schedule: str = "0 3 * * 0"  # weekly, Sunday 03:00 UTC
    sweep_schedule: str = "0 4 1 * *"  # the orphan sweep: monthly, the 1st at 04:00 UTC


class DriftSettings(BaseModel):
    """How drift is decided: a calibrated test plus an effect size (see pipelines.ml.drift)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alpha: float = Field(0.01, gt=0, lt=1)
    min_normed_wasserstein: NonNegativeFloat = 0.1
    min_psi_categorical: NonNegativeFloat = 0.1
    exclude: tuple[str, ...] = ("day_of_week", "day_of_month", "month", "is_weekend", "is_holiday")
    segment_by: str | None = "region"
    match_day_of_week: bool = True


class RetrainSettings(BaseModel):
    """When drift asks for retraining, and how often at most."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_drifted_features: int = Field(2, ge=1)
    prediction_drift: bool = True
    cooldown_hours: NonNegativeFloat = 24.0


class MLSettings(BaseModel):
    """The ``ml:`` section of lakehouse.yaml: model, promotion gate, drift and retraining."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model_name: str = "demand_forecaster"
    experiment: str = "demand_forecast"
    training_window_days: int = Field(56, ge=1)
    holdout_days: int = Field(7, ge=1)
    promotion_metric: Literal["mae", "rmse", "wape"] = "wape"
    promotion_margin: float = 0.02
    reference_rows: int = Field(100_000, ge=1)
    drift: DriftSettings = DriftSettings()
    retrain: RetrainSettings = RetrainSettings()


# The built-in content detectors (pipelines/privacy/detect.py); a pattern may not reuse a name.
BUILTIN_DETECTOR_NAMES = ("email", "phone", "ipv4", "ipv6", "payment_card", "iban")


class PatternSettings(BaseModel):
    """One ``privacy.patterns`` entry: a detector of personal data by an RE2 regular expression."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="detector name in findings")
    regex: str = Field(min_length=1, description="RE2 syntax; a value matching it anywhere counts")

    @model_validator(mode="after")
    def _valid(self) -> PatternSettings:
        if self.name in BUILTIN_DETECTOR_NAMES:
            raise ValueError(f"{self.name!r} is a built-in detector; give the pattern another name")
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            pc.match_substring_regex(pa.array([""]), self.regex)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(f"regex of {self.name!r} is not valid RE2: {first}") from None
        return self


class PrivacySettings(BaseModel):
    """The ``privacy:`` section: content detectors, how much a sync samples, erasure deadline.

    ``patterns``: detectors added to the built-in ones (e-mail, phone, IPv4/IPv6, payment card,
    IBAN). Before a sync copies a table across a border, ``sample_files`` of the new data files
    are read, at most ``sample_rows_per_file`` rows of each, and every text column (and the
    fields kept in ``_rescued_data``) is scanned; a finding refuses the route as a personal-data
    column does. ``erasure_deadline_days``: how long an erasure request may wait (GDPR Art. 12:
    one month). ``cluster_*``: a closed day of bronze and silver is written as ``k`` files
    grouped by a keyed customer bucket, so an erasure rewrites only the files of the subjects'
    buckets (:mod:`pipelines.lake.delta.cluster`): ``cluster_buckets`` files whatever the day's
    size (an erasure of ``s`` subjects rewrites about ``s / k`` of a day), fewer when files
    would be under ``cluster_min_file_bytes``, more when over ``cluster_file_bytes``, at most
    ``cluster_max_buckets``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    patterns: list[PatternSettings] = []
    sample_files: int = Field(8, ge=1)
    sample_rows_per_file: int = Field(1_000, ge=1)
    erasure_deadline_days: int = Field(30, ge=1)
    cluster_file_bytes: int = Field(128 * 1024 * 1024, ge=1)
    cluster_max_buckets: int = Field(256, ge=1, le=1024)
    cluster_buckets: int = Field(64, ge=1, le=1024)
    cluster_min_file_bytes: int = Field(1024 * 1024, ge=1)

    @model_validator(mode="after")
    def _unique(self) -> PrivacySettings:
        names = [p.name for p in self.patterns]
        if len(set(names)) != len(names):
            raise ValueError("two patterns share a name")
        return self

    def pattern_pairs(self) -> tuple[tuple[str, str], ...]:
        """``(name, regex)`` of every configured pattern."""
        return tuple((p.name, p.regex) for p in self.patterns)


class QualitySettings(BaseModel):
    """The ``quality:`` section: how much of each ingest batch Great Expectations reads.

    ``batch_sample_rows``: the per-batch bronze suites (bronze_events, bronze_quarantine)
    validate at most this many rows of each batch appended, evenly spaced over the batch (the
    same rows on every run); a smaller batch is validated whole, ``null`` validates every row.
    The row-count expectation always sees the batch's exact count, and the ingest's record
    rules and reconciliation still read every record (docs/ingest.md, "What Great
    Expectations reads").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    batch_sample_rows: int | None = Field(5_000, ge=1)


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
    ml: MLSettings = field(default_factory=MLSettings)
    spark_backend: str = "session"
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    quality: QualitySettings = field(default_factory=QualitySettings)

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
