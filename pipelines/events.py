"""The demand event: its wire schema, its bronze schema, and the validation rules."""

from __future__ import annotations

import pyarrow as pa

# What a producer sends, as JSON. Order is the wire order.
WIRE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_ts", pa.string()),
        ("region", pa.string()),
        ("store_id", pa.int64()),
        ("sku", pa.string()),
        ("category", pa.string()),
        ("quantity", pa.int64()),
        ("unit_price", pa.float64()),
        ("currency", pa.string()),
        ("promo", pa.bool_()),
        ("channel", pa.string()),
        ("customer_id", pa.string()),
        ("email", pa.string()),
    ]
)
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
PII_COLUMNS = ("customer_id", "email")

# Bronze adds the parsed timestamp, where the record came from, and the partition columns.
BRONZE_SCHEMA = pa.schema(
    [
        *[
            f if f.name != "event_ts" else pa.field("event_ts", pa.timestamp("us", tz="UTC"))
            for f in WIRE_SCHEMA
        ],
        ("source_object", pa.string()),
        ("landing_date", pa.date32()),
    ]
)
BRONZE_PARTITION_BY = ["landing_date", "region"]

QUARANTINE_SCHEMA = pa.schema(
    [
        ("landing_date", pa.date32()),
        ("region", pa.string()),
        ("source_object", pa.string()),
        ("record_index", pa.int64()),
        ("reason", pa.string()),
        ("raw", pa.binary()),
    ]
)

# Largest accepted event; a real feed's events are a few hundred bytes.
MAX_EVENT_BYTES = 64 * 1024
# Events stamped later than the end of their landing day plus this are rejected as future.
FUTURE_TOLERANCE_HOURS = 24

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
