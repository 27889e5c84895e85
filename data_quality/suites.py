"""One expectation suite per asset, as plain data: no Great Expectations import here.

Each entry names a GX 1.x expectation class and its arguments. ``{placeholders}`` in string
arguments are filled at validation time from what the asset knows (for example the expected
row count of a partition), so counts known to the engine become expectations too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.events import BRONZE_SCHEMA, QUARANTINE_SCHEMA


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
    ]
}
