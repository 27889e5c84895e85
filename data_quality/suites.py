"""One expectation suite per asset, as plain data: no Great Expectations import here.

Each entry names a GX 1.x expectation class and its arguments. ``{placeholders}`` in string
arguments are filled at validation time from what the asset knows (for example the expected
row count of a partition), so counts known to the engine become expectations too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pipelines.ingest.events import RecordRules, record_rules
from pipelines.lake import tables
from pipelines.lake.config import LakeConfig
from pipelines.lake.schemas import FEATURE_KEYS, FEATURE_NUMERIC, TARGET


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
    # at most this many rows of an Arrow batch are read by the value expectations (evenly
    # spaced; the row count stays exact); None: every row (data_quality/gx.py, sampled)
    sample_rows: int | None = None

    @property
    def check_name(self) -> str:
        """The asset check's name."""
        return f"{self.asset}_expectations"


Suites = dict[str, Suite]


def _columns(table: tables.TableSpec, exact: bool = True) -> Expect:
    return Expect(
        "ExpectTableColumnsToMatchSet", {"column_set": list(table.columns), "exact_match": exact}
    )


def bronze_suite(rules: RecordRules) -> Suite:
    """The blocking bronze suite, derived from the ingest's own record rules.

    Every rule the ingest applies record by record has its expectation here, so a record the
    suite would reject is quarantined at ingest and never fails its partition; the suite then
    proves it on the rows written.
    """
    return Suite(
        tables.BRONZE.name,
        (
            _columns(tables.BRONZE),
            Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
            *(Expect("ExpectColumnValuesToNotBeNull", {"column": c}) for c in rules.required),
            *(Expect("ExpectColumnValuesToBeUnique", {"column": c}) for c in rules.unique),
            Expect(
                "ExpectColumnValuesToBeInSet",
                {"column": "region", "value_set": list(rules.regions)},
            ),
            Expect(
                "ExpectColumnValuesToBeInSet",
                {"column": "currency", "value_set": list(rules.currencies)},
            ),
            Expect(
                "ExpectColumnValuesToBeBetween",
                {
                    "column": "store_id",
                    "min_value": rules.store_id_min,
                    "max_value": rules.store_id_max,
                },
            ),
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": "quantity", "min_value": rules.quantity_min},
            ),
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": "unit_price", "min_value": rules.unit_price_above, "strict_min": True},
            ),
        ),
        blocking=True,
        description="Bronze events: schema, keys, ranges (the ingest's record rules), and the "
        "reconciled row count.",
    )


def build_suites(cfg: LakeConfig) -> Suites:
    """Every asset's suite for one environment: regions and currencies from its configuration."""
    regions = cfg.region_codes
    suites = {s.asset: s for s in _table_suites(regions)}
    suites[tables.BRONZE.name] = bronze_suite(record_rules(cfg))
    # the per-batch suites of the ingest: a bounded sample of each batch (quality.batch_sample_rows)
    for name in (tables.BRONZE.name, tables.QUARANTINE.name):
        suites[name] = replace(suites[name], sample_rows=cfg.quality.batch_sample_rows)
    suites.update({r.name: replica_suite(r.name, r.table, regions) for r in cfg.replicas()})
    return suites


# Long by design: one declarative suite per table, read top to bottom like a catalogue; it
# has no branches, and splitting it would scatter one table's rules over several functions.
def _table_suites(regions: list[str]) -> list[Suite]:
    """The suites of the product's own tables."""
    return [
        Suite(
            tables.QUARANTINE.name,
            (
                _columns(tables.QUARANTINE),
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
            tables.FORECAST.name,
            (
                _columns(tables.FORECAST),
                Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "prediction"}),
                Expect("ExpectColumnValuesToBeBetween", {"column": "prediction", "min_value": 0}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "model_version"}),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": regions}),
            ),
            blocking=False,
            description="Forecast: one non-negative prediction per feature row, with the model "
            "version that made it.",
        ),
        Suite(
            tables.DRIFT.name,
            (
                _columns(tables.DRIFT),
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
            tables.ERASURE_RECEIPTS.name,
            (
                _columns(tables.ERASURE_RECEIPTS),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "request_id"}),
                Expect("ExpectColumnValuesToBeUnique", {"column": "request_id"}),
                Expect("ExpectColumnValueLengthsToEqual", {"column": "subject_hash", "value": 64}),
                Expect(
                    "ExpectColumnValuesToBeInSet",
                    {"column": "verified_absent", "value_set": [True]},
                ),
                Expect(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "files_holding_subject", "min_value": 0, "max_value": 0},
                ),
                Expect(
                    "ExpectColumnValuesToBeBetween", {"column": "files_scanned", "min_value": 1}
                ),
            ),
            blocking=False,
            description="Erasure receipts: one per request served, the subject by a 64-hex keyed "
            "hash, found in no file by the read-back.",
        ),
        *(health_suite(t, regions) for t in (tables.HEALTH, tables.REGION_HEALTH)),
        Suite(
            tables.SILVER.name,
            (
                _columns(tables.SILVER),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "event_id"}),
                Expect("ExpectColumnValuesToBeUnique", {"column": "event_id"}),
                Expect("ExpectColumnValuesToNotBeNull", {"column": "date"}),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": regions}),
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
            tables.GOLD.name,
            (
                _columns(tables.GOLD),
                Expect(
                    "ExpectCompoundColumnsToBeUnique",
                    {"column_list": ["date", "region", "store_id", "sku"]},
                ),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": regions}),
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
            tables.FEATURES.name,
            (
                _columns(tables.FEATURES),
                Expect("ExpectCompoundColumnsToBeUnique", {"column_list": list(FEATURE_KEYS)}),
                Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": regions}),
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


def health_suite(table: tables.TableSpec, regions: list[str]) -> Suite:
    """A health table's suite: the roll-up's and each region's rows have the same shape."""
    return Suite(
        table.name,
        (
            _columns(table),
            Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
            Expect("ExpectCompoundColumnsToBeUnique", {"column_list": ["date", "region"]}),
            Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": regions}),
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": "quarantine_rate", "min_value": 0, "max_value": 1},
            ),
            *[
                Expect("ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0})
                for c in ("ingested", "quarantined", "bytes_stored", "egress_bytes")
            ],
            Expect("ExpectColumnValuesToNotBeNull", {"column": "computed_at"}),
        ),
        blocking=False,
        description="Health: one row per region and day, counts and sizes never negative, "
        "rates within 0..1.",
    )


def replica_suite(asset: str, table: str, regions: list[str]) -> Suite:
    """Suite of a replica: the source's row count at the same version, and the table's rules."""
    expectations: tuple[Expect, ...] = (
        Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
    )
    if table == tables.GOLD.name:
        expectations += (
            _columns(tables.GOLD, exact=False),
            *(
                Expect("ExpectColumnValuesToNotBeNull", {"column": c})
                for c in ("date", "region", "store_id", "sku")
            ),
            Expect("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": regions}),
            Expect("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 0}),
        )
    return Suite(
        asset,
        expectations,
        blocking=True,  # replicas leave their region and feed training
        description=f"Replica of {table}: the source's row count at the same version, "
        "keys present, values in range.",
    )
