"""The table registry: every Delta table the product writes, described once.

Engines, assets, suites and the sovereignty policy read a table's name, columns, partition
columns, the location it lives in and whether it may hold personal data from here, so adding a
table (or a column) is one edit. ``personal_data`` is a property of the table, not only of its
column names: a table marked here is treated as personal data by the sync whatever its columns
are called (the quarantine keeps raw records under ``raw``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

from pipelines.lake.schemas import (
    BRONZE_PARTITION_BY,
    BRONZE_SCHEMA,
    DRIFT_SCHEMA,
    ERASURE_RECEIPT_SCHEMA,
    ERASURE_REQUEST_SCHEMA,
    FEATURES_PARTITION_BY,
    FEATURES_SCHEMA,
    FORECAST_SCHEMA,
    GOLD_PARTITION_BY,
    GOLD_SCHEMA,
    HEALTH_PARTITION_BY,
    HEALTH_SCHEMA,
    LEDGER_SCHEMA,
    QUARANTINE_SCHEMA,
    REGION_HEALTH_SCHEMA,
    SILVER_COLUMNS,
    SILVER_PARTITION_BY,
)

# The Delta property naming the columns whose min, max and null count each add action carries.
# A table keeps them on the columns readers skip files by (Spark's writes, and the engine's
# through delta-rs, follow it: commit.registered_properties): Spark's default (every
# column, strings truncated to 32 characters) made each add about 1.4 kB, so a year of one
# file a day was a log larger than the day a run writes, which every run replays
# (benchmarks/history.py); and it put keyed hashes of subjects in the log, which an erasure then
# had to scrub (docs/privacy.md).
STATS_COLUMNS = "delta.dataSkippingStatsColumns"


class Role(StrEnum):
    """Where a table lives: in every region's own location, or in the ML home only."""

    REGION = "region"
    ML_HOME = "ml_home"


@dataclass(frozen=True)
class TableSpec:
    """One Delta table of the product."""

    name: str
    columns: tuple[str, ...]
    partition_by: tuple[str, ...]
    role: Role
    personal_data: bool
    description: str
    schema: pa.Schema | None = None
    # the columns whose statistics the Delta log keeps (delta.dataSkippingStatsColumns), None:
    # every column (see STATS_COLUMNS)
    stats_columns: tuple[str, ...] | None = None

    @property
    def suite(self) -> str:
        """Name of the table's expectation suite (the asset that writes it)."""
        return self.name

    def properties(self) -> dict[str, str]:
        """Delta table properties a writer sets on the table (its statistics' columns)."""
        if self.stats_columns is None:
            return {}
        return {STATS_COLUMNS: ",".join(self.stats_columns)}


def _spec(
    name: str,
    schema: pa.Schema | tuple[str, ...],
    partition_by: list[str] | tuple[str, ...],
    role: Role,
    personal_data: bool,
    description: str,
    stats_columns: tuple[str, ...] | None = None,
) -> TableSpec:
    arrow = schema if isinstance(schema, pa.Schema) else None
    columns = tuple(schema.names) if isinstance(schema, pa.Schema) else tuple(schema)
    stats = set(stats_columns or ())
    unknown = sorted((stats - set(columns)) | (stats & set(partition_by)))
    if unknown:
        raise ValueError(f"{name}: statistics columns {unknown} are not data columns")
    return TableSpec(
        name, columns, tuple(partition_by), role, personal_data, description, arrow, stats_columns
    )


BRONZE = _spec(
    "bronze_events",
    BRONZE_SCHEMA,
    BRONZE_PARTITION_BY,
    Role.REGION,
    True,
    "Valid demand events as landed, raw personal data included.",
    stats_columns=("event_ts",),
)
QUARANTINE = _spec(
    "bronze_quarantine",
    QUARANTINE_SCHEMA,
    BRONZE_PARTITION_BY,
    Role.REGION,
    True,
    "Every rejected record or object, raw bytes (personal data included) and reason.",
    stats_columns=("record_index",),
)
LEDGER = _spec(
    "bronze_ingest_ledger",
    LEDGER_SCHEMA,
    BRONZE_PARTITION_BY,
    Role.REGION,
    True,  # names the region's landed objects; it stays with the data it describes
    "Which landed objects each bronze partition holds, and what became of their records.",
    stats_columns=("batch",),  # a batch's rows are read by number (ledger._hash_rows)
)
SILVER = _spec(
    "silver_events",
    SILVER_COLUMNS,
    SILVER_PARTITION_BY,
    Role.REGION,
    True,  # pseudonymized, and pseudonymized data is still personal data (GDPR recital 26)
    "Typed events by event date; customer ids and emails as keyed hashes.",
    stats_columns=("event_ts", "landing_date", "store_id"),
)
GOLD = _spec(
    "gold_daily_demand",
    GOLD_SCHEMA,
    GOLD_PARTITION_BY,
    Role.REGION,
    False,
    "One row per store, SKU and day; no personal data.",
    stats_columns=("store_id", "sku"),
)
FEATURES = _spec(
    "demand_features",
    FEATURES_SCHEMA,
    FEATURES_PARTITION_BY,
    Role.ML_HOME,
    False,
    "Model inputs of every region, one row per store, SKU and day.",
    stats_columns=("region", "store_id", "sku"),
)
FORECAST = _spec(
    "demand_forecast",
    FORECAST_SCHEMA,
    ("date",),
    Role.ML_HOME,
    False,
    "The champion model's predictions, with the version that made them.",
)
DRIFT = _spec(
    "feature_drift",
    DRIFT_SCHEMA,
    ("date",),
    Role.ML_HOME,
    False,
    "Drift statistics per day, segment and feature.",
)
HEALTH = _spec(
    "lakehouse_health",
    HEALTH_SCHEMA,
    HEALTH_PARTITION_BY,
    Role.ML_HOME,
    False,  # counts, sizes and reason kinds; never a record's content
    "The platform's health and cost per region and day: counts, bytes, lag, egress, compute.",
)
REGION_HEALTH = _spec(
    "region_health",
    REGION_HEALTH_SCHEMA,
    HEALTH_PARTITION_BY,
    Role.REGION,
    False,  # counts, sizes and reason kinds of the region's own tables; never a record's content
    "One region's health per day, measured in its own jurisdiction; lakehouse_health rolls "
    "every region's up in the ML home.",
)

ERASURE_REQUESTS = _spec(
    "erasure_requests",
    ERASURE_REQUEST_SCHEMA,
    ("date",),
    Role.REGION,
    True,  # the identifiers to erase; serving a request erases its row with the rest
    "Data subjects' erasure requests waiting to be served (GDPR Art. 17, CCPA deletion).",
)
ERASURE_RECEIPTS = _spec(
    "erasure_receipts",
    ERASURE_RECEIPT_SCHEMA,
    ("date",),
    Role.REGION,
    True,  # a keyed hash of the subject is pseudonymized data: it stays in its jurisdiction
    "One row per erasure request served: what was rewritten or removed, scanned and found.",
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        BRONZE,
        QUARANTINE,
        LEDGER,
        SILVER,
        GOLD,
        FEATURES,
        FORECAST,
        DRIFT,
        HEALTH,
        REGION_HEALTH,
        ERASURE_REQUESTS,
        ERASURE_RECEIPTS,
    )
}


def table(name: str) -> TableSpec:
    """The registered table called ``name``, or an error listing the known ones."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; registered: {', '.join(TABLES)}") from None


def holds_personal_data(name: str) -> bool:
    """True when the registry marks the table (by its name) as personal data."""
    spec = TABLES.get(name.strip().lower())
    return spec is not None and spec.personal_data
