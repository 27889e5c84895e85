"""Schemas of the tables downstream of bronze: the contract between Spark, sync and training.

Spark writes these tables (delta-spark), the sync engine copies them, training and drift read
them with delta-rs. Keeping the columns here means a change is made once and checked by tests.
"""

from __future__ import annotations

import pyarrow as pa

# Silver: typed events by event date, personal data replaced by keyed hashes.
SILVER_COLUMNS = (
    "date",
    "region",
    "event_id",
    "event_ts",
    "store_id",
    "sku",
    "category",
    "quantity",
    "unit_price",
    "currency",
    "promo",
    "channel",
    "customer_hash",
    "email_hash",
    "landing_date",
    "is_late",
)
SILVER_PARTITION_BY = ["date", "region"]

# One row per store, SKU and event day, in the region's own location. No personal data.
GOLD_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("region", pa.string()),
        ("store_id", pa.int64()),
        ("sku", pa.string()),
        ("category", pa.string()),
        ("currency", pa.string()),
        ("quantity", pa.int64()),
        ("revenue", pa.float64()),
        ("avg_price", pa.float64()),
        ("min_price", pa.float64()),
        ("max_price", pa.float64()),
        ("promo_share", pa.float64()),
        ("online_share", pa.float64()),
        ("events", pa.int64()),
        ("customers", pa.int64()),
    ]
)
GOLD_PARTITION_BY = ["date", "region"]

FEATURE_KEYS = ("date", "region", "store_id", "sku")
FEATURE_CATEGORICAL = ("region", "category")
# Numeric model inputs. Windows and lags are by calendar date and look only at days before
# ``date`` (the forecast for a day is made with what was known the day before).
FEATURE_NUMERIC = (
    "qty_lag_1",
    "qty_lag_7",
    "qty_lag_14",
    "qty_lag_28",
    "qty_mean_7",
    "qty_std_7",
    "qty_mean_28",
    "qty_std_28",
    "days_sold_28",
    "avg_price",
    "price_rel_28",
    "promo_share",
    "day_of_week",
    "day_of_month",
    "month",
    "is_weekend",
    "is_holiday",
)
TARGET = "target"

# One row per store, SKU and day with sales, all regions together, in the ML home.
FEATURES_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("region", pa.string()),
        ("store_id", pa.int64()),
        ("sku", pa.string()),
        ("category", pa.string()),
        *[(name, pa.float64()) for name in FEATURE_NUMERIC],
        (TARGET, pa.float64()),
    ]
)
FEATURES_PARTITION_BY = ["date"]

# Scores of the champion model, one row per feature row, in the ML home.
FORECAST_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("region", pa.string()),
        ("store_id", pa.int64()),
        ("sku", pa.string()),
        ("prediction", pa.float64()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
    ]
)

# Drift statistics, one row per day, segment and feature, in the ML home.
DRIFT_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("segment", pa.string()),
        ("feature", pa.string()),
        ("kind", pa.string()),
        ("n_reference", pa.int64()),
        ("n_current", pa.int64()),
        ("psi", pa.float64()),
        ("ks", pa.float64()),
        ("p_value", pa.float64()),
        ("js", pa.float64()),
        ("normed_wasserstein", pa.float64()),
        ("value", pa.float64()),
        ("drifted", pa.bool_()),
        ("model_version", pa.string()),
    ]
)

# The platform's own health per region and day (pipelines/operations/health.py), in the ML home.
# Maps (bytes per table, reasons, compute per asset) are JSON text: their keys grow with the config.
REGION_HEALTH_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("region", pa.string()),
        ("location", pa.string()),
        ("landed", pa.int64()),
        ("ingested", pa.int64()),
        ("quarantined", pa.int64()),
        ("duplicates", pa.int64()),
        ("quarantine_rate", pa.float64()),
        ("top_reasons", pa.string()),
        ("bytes_stored", pa.int64()),
        ("bytes_by_table", pa.string()),
        ("storage_usd_month", pa.float64()),
        ("replica_versions_behind", pa.int64()),
        ("replica_lag_hours", pa.float64()),
        ("egress_route", pa.string()),
        ("egress_bytes", pa.int64()),
        ("egress_usd", pa.float64()),
        ("compute_seconds", pa.float64()),
        ("compute_by_asset", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("freshness_hours", pa.float64()),
        ("computed_at", pa.timestamp("us", tz="UTC")),
        # JSON: bytes and dollars a month at rest per location and table when the row was
        # measured (a region's row: its location's region tables; the roll-up's: every
        # location's), so `lakehouse status` shows them without reading every table's log
        ("storage_at_rest", pa.string()),
    ]
)
# The roll-up also keeps what each day was judged against (pipelines/operations/anomaly.py,
# HISTORY: JSON, per metric the values on the same weekday of the weeks before), so that judging
# the next days reads one earlier day, not weeks of rows. Tables written before lack it (null).
HEALTH_SCHEMA = REGION_HEALTH_SCHEMA.append(pa.field("weekday_history", pa.string()))
HEALTH_PARTITION_BY = ["date"]


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
# Fields of a record outside the wire schema, as one JSON object string (null when none):
# Databricks Auto Loader's name and meaning. Nothing a producer sends is dropped silently.
RESCUED_COLUMN = "_rescued_data"
# Bronze adds the parsed timestamp, the rescued fields, where the record came from, and the
# partition columns.
BRONZE_SCHEMA = pa.schema(
    [
        *[
            f if f.name != "event_ts" else pa.field("event_ts", pa.timestamp("us", tz="UTC"))
            for f in WIRE_SCHEMA
        ],
        (RESCUED_COLUMN, pa.string()),
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

# The ingest ledger (pipelines/ingest/ledger.py): one table per location, partitioned like bronze.
LEDGER_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("batch", pa.int64()),
        ("source_object", pa.string()),
        ("etag", pa.string()),
        ("size", pa.int64()),
        ("records", pa.int64()),
        ("ingested", pa.int64()),
        ("quarantined", pa.int64()),
        ("duplicates", pa.int64()),
        ("reason", pa.string()),
        ("replace", pa.bool_()),
        ("plan", pa.string()),
        ("event_id_hashes", pa.large_binary()),
        ("bronze_version", pa.int64()),
        ("quarantine_version", pa.int64()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("landing_date", pa.date32()),
        ("region", pa.string()),
    ]
)

# Erasure requests (pipelines/erasure/requests.py): one row per request, in the subject's region's
# location. The identifiers are what the request must erase; serving it erases this row too.
ERASURE_REQUEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("requested_at", pa.timestamp("us", tz="UTC")),
        ("customer_id", pa.string()),
        ("email", pa.string()),
        ("date", pa.date32()),  # the day requested
    ]
)

# Erasure receipts: one row per request and location served. The subject only as a keyed hash;
# what was rewritten or removed, what was scanned and what the read-back found, as JSON text.
ERASURE_RECEIPT_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("subject_hash", pa.string()),
        ("location", pa.string()),
        ("jurisdiction", pa.string()),
        ("requested_at", pa.timestamp("us", tz="UTC")),
        ("served_at", pa.timestamp("us", tz="UTC")),
        ("tables", pa.string()),
        ("landing", pa.string()),
        ("models", pa.string()),  # JSON: model versions marked, retraining still due
        ("artifacts", pa.string()),  # JSON: the MLflow artifact store scanned, what was removed
        ("scanned", pa.string()),
        ("files_scanned", pa.int64()),
        ("bytes_scanned", pa.int64()),
        ("files_holding_subject", pa.int64()),
        ("verified_absent", pa.bool_()),
        ("seconds", pa.float64()),
        ("date", pa.date32()),  # the day served
    ]
)
