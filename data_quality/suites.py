"""One expectation suite per asset, as plain data: no Great Expectations import here.

Each entry names a GX 1.x expectation class and its arguments. ``{placeholders}`` in string
arguments are filled at validation time from what the asset knows (for example the expected
row count of a partition), so counts known to the engine become expectations too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.config import load_config
from pipelines.events import BRONZE_SCHEMA, QUARANTINE_SCHEMA
from pipelines.monitoring import DRIFT_SCHEMA
from pipelines.schemas import (
    FEATURE_KEYS,
    FEATURE_NUMERIC,
    FEATURES_SCHEMA,
    FORECAST_SCHEMA,
    GOLD_SCHEMA,
    TARGET,
)
from pipelines.transforms import SILVER_COLUMNS


@dataclass(frozen=True)
class Expect:
    """One expectation: GX class name and keyword arguments."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """An asset's suite; ``blocking`` suites stop downstream assets when they fail."""

    asset: str
    expectations: tuple[Expect, ...]
    blocking: bool = True
    description: str = ""

    @property
    def check_name(self) -> str:
        """The asset check's name."""
        return f"{self.asset}_expectations"


REGIONS = ["us", "eu", "apac"]
CURRENCIES = ["USD", "EUR", "SGD"]

SUITES: dict[str, Suite] = {
    s.asset: s
    for s in [
        Suite(
            "bronze_events",
            (
                Expect(
                    "ExpectTableColumnsToMatchSet",
                    {"column_set": BRONZE_SCHEMA.names, "exact_match": True},
                ),
                Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "event_id"}),
                Expect("ExpectColumnValuesToBeUnique", {"column": "event_id"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "event_ts"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "sku"}),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": REGIONS}),
                Expect(
                    "ExpectColumnValuesToBeInSet", {"column": "currency", "value_set": CURRENCIES}
                ),
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "store_id", "min_value": 1, "max_value": 100_000},
                ),
                Expect("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 0}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "unit_price"}),
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "unit_price", "min_value": 0, "strict_min": True},
                ),
            ),
            blocking=True,
            description="Bronze events: schema, keys, ranges, and the reconciled row count.",
        ),
        Suite(
            "bronze_quarantine",
            (
                Expect(
                    "ExpectTableColumnsToMatchSet",
                    {"column_set": QUARANTINE_SCHEMA.names, "exact_match": True},
                ),
                Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "reason"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "source_object"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "raw"}),
            ),
            blocking=False,
            description="Quarantine: every rejected record kept with its reason and source.",
        ),
        Suite(
            "demand_model",
            (
                Expect(
                    "ExpectTableColumnsToMatchSet",
                    {
                        "column_set": [
                            "candidate",
                            "mae",
                            "rmse",
                            "wape",
                            "table_uri",
                            "table_version",
                        ],
                        "exact_match": True,
                    },
                ),
                Expect(
                    "ExpectColumnValuesToBeInSet",
                    {"column": "candidate", "value_set": ["challenger", "baseline", "champion"]},
                ),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "wape"}),
                Expect("ExpectColumnValuesToBeBetween", {"column": "mae", "min_value": 0}),
                Expect("ExpectColumnValuesToBeBetween", {"column": "wape", "min_value": 0}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "table_uri"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "table_version"}),
                Expect(
                    "ExpectColumnValuesToBeBetween", {"column": "table_version", "min_value": 0}
                ),
            ),
            blocking=True,
            description="Model: holdout metrics of challenger, baseline and champion, and the "
            "lineage (table URI and Delta version) are recorded and sane.",
        ),
        Suite(
            "demand_forecast",
            (
                Expect(
                    "ExpectTableColumnsToMatchSet",
                    {"column_set": FORECAST_SCHEMA.names, "exact_match": True},
                ),
                Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "prediction"}),
                Expect("ExpectColumnValuesToBeBetween", {"column": "prediction", "min_value": 0}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "model_version"}),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": REGIONS}),
            ),
            blocking=False,
            description="Forecast: one non-negative prediction per feature row, with the model "
            "version that made it.",
        ),
        Suite(
            "feature_drift",
            (
                Expect(
                    "ExpectTableColumnsToMatchSet",
                    {"column_set": DRIFT_SCHEMA.names, "exact_match": True},
                ),
                Expect("ExpectTableRowCountToBeBetween", {"min_value": 1}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "feature"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "drifted"}),
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "p_value", "min_value": 0, "max_value": 1},
                ),
                Expect("ExpectColumnValuesToBeBetween", {"column": "psi", "min_value": 0}),
                Expect(
                    "ExpectColumnValuesToBeInSet",
                    {
                        "column": "kind",
                        "value_set": ["numeric", "categorical", "prediction", "forecast_error"],
                    },
                ),
            ),
            blocking=False,
            description="Drift monitoring: statistics within their ranges, one row per "
            "segment and feature.",
        ),
        Suite(
            "silver_events",
            (
                Expect(
                    "ExpectTableColumnsToMatchSet",
                    {"column_set": list(SILVER_COLUMNS), "exact_match": True},
                ),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "event_id"}),
                Expect("ExpectColumnValuesToBeUnique", {"column": "event_id"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "date"}),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": REGIONS}),
                Expect("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 0}),
                Expect(
                    "ExpectColumnValuesToMatchRegex",
                    {"column": "customer_hash", "regex": "^[0-9a-f]{64}$"},
                ),
                Expect(
                    "ExpectColumnValuesToMatchRegex",
                    {"column": "email_hash", "regex": "^[0-9a-f]{64}$"},
                ),
            ),
            blocking=True,
            description="Silver events: unique ids, typed, personal data only as keyed hashes.",
        ),
        Suite(
            "gold_daily_demand",
            (
                Expect(
                    "ExpectTableColumnsToMatchSet",
                    {"column_set": GOLD_SCHEMA.names, "exact_match": True},
                ),
                Expect(
                    "ExpectCompoundColumnsToBeUnique",
                    {"column_list": ["date", "region", "store_id", "sku"]},
                ),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": REGIONS}),
                Expect("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 0}),
                Expect("ExpectColumnValuesToBeBetween", {"column": "revenue", "min_value": 0}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "avg_price"}),
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "promo_share", "min_value": 0, "max_value": 1},
                ),
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "online_share", "min_value": 0, "max_value": 1},
                ),
            ),
            blocking=True,
            description="Gold demand: one row per store, SKU and day, sane ranges, no PII columns.",
        ),
        Suite(
            "demand_features",
            (
                Expect(
                    "ExpectTableColumnsToMatchSet",
                    {"column_set": FEATURES_SCHEMA.names, "exact_match": True},
                ),
                Expect("ExpectCompoundColumnsToBeUnique", {"column_list": list(FEATURE_KEYS)}),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": REGIONS}),
                *[
                    Expect("ExpectColumnValuesToNotBeNull", {"column": c})
                    for c in (*FEATURE_NUMERIC, TARGET)
                ],
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "days_sold_28", "min_value": 0, "max_value": 28},
                ),
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "price_rel_28", "min_value": 0, "strict_min": True},
                ),
            ),
            blocking=True,
            description="Features: one row per key and day, every model input filled, sane ranges.",
        ),
    ]
}


def replica_suite(asset: str, table: str) -> Suite:
    """Suite of a replica: the source's row count at the same version, and the table's rules."""
    expectations: tuple[Expect, ...] = (
        Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
    )
    if table == "gold_daily_demand":
        expectations += (
            Expect(
                "ExpectTableColumnsToMatchSet",
                {"column_set": GOLD_SCHEMA.names, "exact_match": False},
            ),
            *(
                Expect("ExpectColumnValuesToNotBeNull", {"column": c})
                for c in ("date", "region", "store_id", "sku")
            ),
            Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": REGIONS}),
            Expect("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 0}),
        )
    return Suite(
        asset,
        expectations,
        blocking=True,  # replicas leave their region and feed training
        description=f"Replica of {table}: the source's row count at the same version, "
        "keys present, values in range.",
    )


# One suite per configured replica (lakehouse.yaml ``replication:``; names are the same in
# every environment).
SUITES.update({r.name: replica_suite(r.name, r.table) for r in load_config().replicas()})
