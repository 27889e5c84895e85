"""One expectation suite per asset, as plain data: no Great Expectations import here.

Each entry names a GX 1.x expectation class and its arguments. ``{placeholders}`` in string
arguments are filled at validation time from what the asset knows (for example the expected
row count of a partition), so counts known to the engine become expectations too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.events import BRONZE_SCHEMA, QUARANTINE_SCHEMA
from pipelines.schemas import FEATURE_KEYS, FEATURE_NUMERIC, FEATURES_SCHEMA, GOLD_SCHEMA, TARGET
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
