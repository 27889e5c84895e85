"""The pydantic model of ``lakehouse.yaml`` as written, and the JSON Schema generated from it."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveInt,
    model_validator,
)

from pipelines.lake.config.environment import DEFAULT_START_DATE
from pipelines.lake.config.models import (
    _TAG_KEY,
    DEFAULT_ROUTING_TAG,
    SHARED_POOL,
    MaintenanceSettings,
    MLSettings,
    PrivacySettings,
    QualitySettings,
)


class _Model(BaseModel):
    """A section of lakehouse.yaml: unknown keys are errors, values are checked by type."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Scalar = str | int | float | bool


def _text(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class LandingModel(BaseModel):
    """``landing:`` of a location: the capture format, its prefix, and format options."""

    model_config = ConfigDict(extra="allow", frozen=True)
    format: Literal["firehose", "eventhubs_capture", "pubsub_avro", "pubsub_text"]
    prefix: str
    # Event Hubs partitions, Firehose streams...: a count, checked here (else a format's own)
    partitions: PositiveInt | None = None

    @model_validator(mode="after")
    def _format_options(self) -> LandingModel:
        # a misspelt option would be ignored and its default used: each format's are named
        extra = self.model_extra or {}
        known = LANDING_OPTIONS[self.format]
        for name in extra:
            if name not in known:
                raise ValueError(
                    f"{name!r} is not an option of format {self.format}; known: "
                    f"{', '.join(('prefix', 'partitions', *known))}"
                )
        missing = [n for n in LANDING_REQUIRED.get(self.format, ()) if n not in extra]
        if missing:
            raise ValueError(f"format {self.format} needs {' and '.join(missing)}")
        return self


# The options each capture format reads beside ``prefix`` and ``partitions``
# (pipelines/ingest/capture.py), and those it cannot do without.
LANDING_OPTIONS: dict[str, tuple[str, ...]] = {
    "firehose": ("stream",),
    "eventhubs_capture": ("namespace", "hub"),
    "pubsub_avro": ("subscription",),
    "pubsub_text": ("subscription",),
}
LANDING_REQUIRED = {"eventhubs_capture": ("namespace", "hub")}


class SparkViewModel(_Model):
    """``spark:`` of a location: the root as Spark's connector addresses it, and its settings."""

    root: str | None = Field(None, pattern=r"://", description="scheme://bucket… for Spark")
    conf: dict[str, Scalar] = {}


class LocationModel(_Model):
    """One entry of ``environments.<env>.locations``."""

    name: str = Field(min_length=1)
    cloud: str
    region: str
    jurisdiction: str
    root: str
    landing: LandingModel
    storage_options: dict[str, Scalar] = {}
    adapter: Literal["gcs-json-emulator"] | None = None
    spark: SparkViewModel = SparkViewModel()


class EndpointModel(_Model):
    """``compute.spark_endpoints.<location>``: where that location's Spark steps run."""

    spark_master: str | None = Field(None, min_length=1)
    spark_connect: str | None = Field(None, pattern=r"^(sc://|\$\{)")
    databricks_host: str | None = Field(None, min_length=1)
    databricks_token: str | None = Field(None, pattern=r"^\$\{[A-Z0-9_]+\}$")

    @model_validator(mode="after")
    def _one_way(self) -> EndpointModel:
        if self.spark_master and self.spark_connect:
            raise ValueError("give spark_master or spark_connect, not both")
        if bool(self.databricks_host) != bool(self.databricks_token):
            raise ValueError("databricks_host and databricks_token go together")
        if not (self.spark_master or self.spark_connect or self.databricks_host):
            raise ValueError("empty; give spark_master, spark_connect or databricks_host")
        return self


class EnvComputeModel(_Model):
    """``environments.<env>.compute``: how code locations split jurisdictions, where Spark runs."""

    pools: Literal["shared", "per_jurisdiction"] = SHARED_POOL  # type: ignore[assignment]
    spark_endpoints: dict[str, EndpointModel] = {}


class EnvSparkModel(_Model):
    """``environments.<env>.spark``."""

    backend: Literal["session", "databricks"] = "session"


class EnvironmentModel(_Model):
    """``environments.<env>``."""

    ml_home: str
    locations: list[LocationModel] = Field(min_length=1)
    spark: EnvSparkModel = EnvSparkModel()
    compute: EnvComputeModel = EnvComputeModel()


class RegionModel(_Model):
    """``regions.<code>``: the currency, jurisdiction and country of a region's stores."""

    currency: str
    jurisdiction: str | None = None
    country: str | None = None


class PolicyModel(_Model):
    """``policy:``: personal-data column names, and where PII-free data may go."""

    pii_columns: list[str] = []
    allowed_routes: dict[str, list[str]] = {}


class ComputeRulesModel(_Model):
    """``compute:`` (top level): who may process whose personal data; the routing tag."""

    may_process: dict[str, list[str] | str] = {}
    routing_tag: str = Field(DEFAULT_ROUTING_TAG, pattern=_TAG_KEY.pattern)


class ReplicationModel(_Model):
    """One ``replication:`` rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    table: str
    sources: str | list[str] = Field("all", alias="from")
    to: str = "ml_home"


class LakehouseFile(_Model):
    """The whole of lakehouse.yaml: one typed model, checked once when it is loaded."""

    start_date: dt.date = DEFAULT_START_DATE
    regions: dict[str, RegionModel] = {}
    policy: PolicyModel = PolicyModel()
    compute: ComputeRulesModel = ComputeRulesModel()
    egress_usd_per_gb: dict[str, dict[str, NonNegativeFloat]] = {}
    storage_usd_per_gb_month: dict[str, NonNegativeFloat] = {}
    replication: list[ReplicationModel] = []
    maintenance: MaintenanceSettings = Field(default_factory=lambda: MaintenanceSettings())
    ml: MLSettings = Field(default_factory=lambda: MLSettings())
    privacy: PrivacySettings = Field(default_factory=lambda: PrivacySettings())
    quality: QualitySettings = Field(default_factory=lambda: QualitySettings())
    environments: dict[str, EnvironmentModel]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of lakehouse.yaml (for editors: ``lakehouse config-schema``)."""
    return LakehouseFile.model_json_schema(by_alias=True)
