"""The demand event: its wire schema, its bronze schema, and the validation rules.

:class:`RecordRules` is the one statement of what a valid event is. The ingest applies it
record by record (what breaks it is quarantined), and the blocking bronze expectation suite is
derived from the same object, so a partition the ingest wrote never fails its check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

# The table side of the event contract lives with the other schemas (the registry's); named
# here too because the ingest reads them as part of the event contract.
from pipelines.lake.schemas import BRONZE_PARTITION_BY as BRONZE_PARTITION_BY
from pipelines.lake.schemas import BRONZE_SCHEMA as BRONZE_SCHEMA
from pipelines.lake.schemas import QUARANTINE_SCHEMA as QUARANTINE_SCHEMA
from pipelines.lake.schemas import RESCUED_COLUMN as RESCUED_COLUMN
from pipelines.lake.schemas import WIRE_SCHEMA as WIRE_SCHEMA

if TYPE_CHECKING:
    import datetime as dt

    from pipelines.lake.config import LakeConfig


def bronze_partition(landing_date: dt.date, region: str) -> dict[str, object]:
    """The bronze partition (bronze, quarantine and the ledger) of a landing date and region.

    Its columns are the registry's (``BRONZE_PARTITION_BY``), in their order.
    """
    return dict(zip(BRONZE_PARTITION_BY, (landing_date, region), strict=True))


REQUIRED = (
    "event_id",
    "event_ts",
    "region",
    "store_id",
    "sku",
    "quantity",
    "unit_price",
    "currency",
)
FLOAT_FIELDS = tuple(f.name for f in WIRE_SCHEMA if pa.types.is_floating(f.type))

# What parsing a record gives: the wire fields and the rescued ones.
PARSED_SCHEMA = WIRE_SCHEMA.append(pa.field(RESCUED_COLUMN, pa.string()))

# Largest accepted event; a real feed's events are a few hundred bytes.
MAX_EVENT_BYTES = 64 * 1024
# Events stamped later than the end of their landing day plus this are rejected as future.
FUTURE_TOLERANCE_HOURS = 24
# Deepest JSON nesting a record may have. Events are flat; a deeper record is a producer bug
# or an attack on recursive parsers (Python's json gives up near 1,000 levels).
MAX_JSON_DEPTH = 64
# Event times a timestamp column can hold everywhere the table is read (Python, Spark):
# years 1 to 9999 in UTC.
MIN_EVENT_TS = pa.scalar(-62_135_596_800_000_000, pa.timestamp("us", tz="UTC"))
MAX_EVENT_TS = pa.scalar(253_402_300_799_999_999, pa.timestamp("us", tz="UTC"))


@dataclass(frozen=True)
class RecordRules:
    """What a valid demand event is: the ingest quarantines any record breaking one rule.

    The blocking bronze suite is derived from the same object (every ``ExpectColumn…`` of it
    has its rule here), so what the suite would reject never reaches bronze. Each rule's
    quarantine reason is named in docs/ingest.md.
    """

    regions: tuple[str, ...]  # region codes events may carry (the partition's own, at ingest)
    currencies: tuple[str, ...]  # currencies of the configured regions
    required: tuple[str, ...] = REQUIRED  # not null; strings also not blank
    unique: tuple[str, ...] = ("event_id",)  # de-duplicated: first occurrence kept
    finite: tuple[str, ...] = FLOAT_FIELDS  # NaN and +-inf rejected
    store_id_min: int = 1
    store_id_max: int = 100_000
    quantity_min: int = 0
    unit_price_above: float = 0.0  # strictly greater than this
    future_tolerance_hours: int = FUTURE_TOLERANCE_HOURS
    max_event_bytes: int = MAX_EVENT_BYTES
    max_json_depth: int = MAX_JSON_DEPTH

    def __post_init__(self) -> None:
        if not self.regions or not self.currencies:
            raise ValueError("RecordRules need at least one region and one currency")
        if any(not code.strip() for code in (*self.regions, *self.currencies)):
            # validate() relies on it: a blank region or currency is always refused
            raise ValueError("RecordRules: a region or currency code is blank")
        if self.store_id_min > self.store_id_max:
            raise ValueError(
                f"RecordRules: store_id_min {self.store_id_min} > store_id_max {self.store_id_max}"
            )


def record_rules(cfg: LakeConfig) -> RecordRules:
    """The rules for a configuration: regions and their currencies from ``regions:``."""
    regions = tuple(cfg.regions)
    currencies = tuple(dict.fromkeys(str(r.get("currency", "")) for r in cfg.regions.values()))
    missing = [code for code, r in cfg.regions.items() if not r.get("currency")]
    if missing or not regions:
        raise ValueError(
            "lakehouse.yaml regions: every region needs a currency "
            f"({', '.join(missing) or 'no regions are configured'})"
        )
    return RecordRules(regions=regions, currencies=currencies)


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int64": (int,),
    "double": (int, float),
    "bool": (bool,),
}


def wrong_type_field(obj: dict[str, object]) -> str | None:
    """First field whose JSON value has the wrong type for the wire schema, if any."""
    for f in WIRE_SCHEMA:
        value = obj.get(f.name)
        if value is None:
            continue
        allowed = _PY_TYPES[str(f.type)]
        if isinstance(value, bool) and bool not in allowed:
            return f.name
        if not isinstance(value, allowed):
            return f.name
    return None


_INT64 = (-(2**63), 2**63 - 1)


def out_of_range_field(obj: dict[str, object]) -> str | None:
    """First integer field whose JSON number does not fit in 64 bits, if any."""
    for f in WIRE_SCHEMA:
        value = obj.get(f.name)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if pa.types.is_integer(f.type) and is_int and not _INT64[0] <= value <= _INT64[1]:  # type: ignore[operator]
            return f.name
    return None


def non_finite_field(obj: dict[str, object]) -> str | None:
    """First field, of the schema or not, holding NaN or an infinity anywhere inside it."""
    for name, value in obj.items():
        stack = [value]
        while stack:
            v = stack.pop()
            if isinstance(v, float) and not math.isfinite(v):
                return name
            if isinstance(v, dict):
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
    return None


def nesting_depth(value: object) -> int:
    """How deeply lists and objects nest in a decoded JSON value (a scalar is 0)."""
    if isinstance(value, dict) and not any(isinstance(v, dict | list) for v in value.values()):
        return 1  # a flat object, as events are: no walk
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((x, depth) for x in (v.values() if isinstance(v, dict) else v))
    return deepest
