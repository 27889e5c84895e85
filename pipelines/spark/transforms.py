"""Spark transforms of the lakehouse: bronze -> silver -> gold -> demand features.

Pure functions from DataFrames to DataFrames: no Dagster, no I/O, no RDD or JVM-only APIs, so
the same code runs on local Spark, on a cluster master URL and over Spark Connect (``sc://``).

Conventions the feature contract (pipelines/lake/schemas.py) relies on:

- Windows and lags are by calendar day (``rangeBetween`` over a day number), never by row:
  store-SKU series are sparse and a row window is wrong on most rows (ANCHORS.md).
- Features of day ``d`` use only days before ``d``: lag ``k`` is the quantity of day ``d - k``,
  the 7- and 28-day windows cover ``[d - n, d - 1]``.
- A day without a gold row sold nothing: missing days count as zero demand in lags, means and
  standard deviations (divided by the window's length in days, population deviation). The
  price reference ``price_rel_28`` is the day's average price over the quantity-weighted
  average price of the 28 days before; with no sale in those days it is 1.0 (no evidence of a
  price change).
- The personal data of silver is pseudonymized with HMAC-SHA256 (RFC 2104) computed inside
  Spark. The key's pads travel in a one-row broadcast relation, not as literals, so the key
  appears in no query plan (``explain`` shows a relation's columns, never its rows).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipelines.lake.schemas import (
    FEATURES_SCHEMA,
    GOLD_SCHEMA,
    SILVER_COLUMNS,
    TARGET,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

PII_KEY_ENV = "LAKEHOUSE_PII_KEY"
LOOKBACK_DAYS = 28
LAGS = (1, 7, 14, 28)
WINDOWS = (7, 28)
# Late events land in the next day's objects (pipelines/simulation/simulate.py); ingest accepts
# events stamped up to a day after their landing day, so an event of day d may also land on d - 1.
DEFAULT_LATENESS_DAYS = 1
EARLY_DAYS = 1
SERIES = ("region", "store_id", "sku")

_BLOCK = 64  # SHA-256 block size in bytes


class PiiKeyError(ValueError):
    """The pseudonymization key is missing or unusable."""


def _spark_type(arrow_type: object) -> str:
    return {
        "date32[day]": "date",
        "string": "string",
        "int64": "bigint",
        "double": "double",
    }[str(arrow_type)]


def hmac_pads(key: str | bytes) -> tuple[bytes, bytes]:
    """The inner and outer HMAC-SHA256 pads of a key (RFC 2104); fail clearly when empty."""
    raw = key.encode() if isinstance(key, str) else key
    if not raw:
        raise PiiKeyError(
            f"the pseudonymization key is empty: set environment variable {PII_KEY_ENV}"
        )
    if len(raw) > _BLOCK:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def pii_key_frame(spark: SparkSession, key: str | bytes) -> DataFrame:
    """A one-row relation holding the key's HMAC pads, to be broadcast-joined, never shown."""
    inner, outer = hmac_pads(key)
    return spark.createDataFrame([(bytearray(inner), bytearray(outer))], "ipad binary, opad binary")


def hmac_sha256(value: Column, ipad: Column, opad: Column) -> Column:
    """HMAC-SHA256 of a string column as 64 hex characters; null stays null."""
    from pyspark.sql import functions as F

    inner = F.unhex(F.sha2(F.concat(ipad, value.cast("binary")), 256))
    return F.when(value.isNull(), F.lit(None)).otherwise(F.sha2(F.concat(opad, inner), 256))


def pseudonymize(df: DataFrame, key_frame: DataFrame, columns: Mapping[str, str]) -> DataFrame:
    """Replace each PII column by its keyed hash (``{"customer_id": "customer_hash"}``)."""
    from pyspark.sql import functions as F

    joined = df.crossJoin(F.broadcast(key_frame))
    ipad, opad = F.col("ipad"), F.col("opad")
    for source, target in columns.items():
        joined = joined.withColumn(target, hmac_sha256(F.col(source), ipad, opad))
    return joined.drop("ipad", "opad", *columns)


def normalize_email(email: Column) -> Column:
    """Emails compare case- and space-insensitively, so the hash does too."""
    from pyspark.sql import functions as F

    return F.lower(F.trim(email))


def bronze_landing_range(
    start: dt.date, end: dt.date, lateness_days: int = DEFAULT_LATENESS_DAYS
) -> tuple[dt.date, dt.date]:
    """Landing dates to read for event dates ``[start, end]``."""
    return start - dt.timedelta(days=EARLY_DAYS), end + dt.timedelta(days=lateness_days)


def silver_events(
    bronze: DataFrame, key_frame: DataFrame, start: dt.date, end: dt.date
) -> DataFrame:
    """Typed, de-duplicated, pseudonymized events of event dates ``[start, end]``.

    ``bronze`` holds the landing dates :func:`bronze_landing_range` names. An event redelivered
    on several landing days is kept once, from its first landing; ``is_late`` marks events
    that landed after their event day.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    typed = bronze.select(
        F.col("event_id").cast("string").alias("event_id"),
        F.col("event_ts").cast("timestamp").alias("event_ts"),
        F.to_date(F.col("event_ts").cast("timestamp")).alias("date"),
        F.col("region").cast("string").alias("region"),
        F.col("store_id").cast("bigint").alias("store_id"),
        F.col("sku").cast("string").alias("sku"),
        F.col("category").cast("string").alias("category"),
        F.col("quantity").cast("bigint").alias("quantity"),
        F.col("unit_price").cast("double").alias("unit_price"),
        F.col("currency").cast("string").alias("currency"),
        F.coalesce(F.col("promo").cast("boolean"), F.lit(False)).alias("promo"),
        F.col("channel").cast("string").alias("channel"),
        F.col("customer_id").cast("string").alias("customer_id"),
        normalize_email(F.col("email").cast("string")).alias("email"),
        F.col("landing_date").cast("date").alias("landing_date"),
        F.col("source_object").cast("string").alias("source_object"),
    ).where(F.col("date").between(F.lit(start), F.lit(end)))
    first = Window.partitionBy("event_id").orderBy("landing_date", "source_object")
    unique = (
        typed.withColumn("_n", F.row_number().over(first))
        .where(F.col("_n") == 1)
        .drop("_n", "source_object")
        .withColumn("is_late", F.col("landing_date") > F.col("date"))
    )
    hashed = pseudonymize(
        unique, key_frame, {"customer_id": "customer_hash", "email": "email_hash"}
    )
    return hashed.select(*SILVER_COLUMNS)


def gold_daily_demand(silver: DataFrame) -> DataFrame:
    """One row per (date, region, store, SKU): quantity, revenue, prices, shares; no PII."""
    from pyspark.sql import functions as F

    qty = F.col("quantity")
    revenue = F.sum(qty * F.col("unit_price"))
    # Category follows the SKU and currency the region, so they are grouping keys: a string
    # max() would force a sort-based aggregate. Clustering by series first means the features'
    # windows downstream need no second shuffle when gold feeds them directly.
    by_series = silver.repartition(*SERIES)
    agg = by_series.groupBy("date", "region", "store_id", "sku", "category", "currency").agg(
        F.sum(qty).alias("quantity"),
        revenue.alias("revenue"),
        F.min("unit_price").alias("min_price"),
        F.max("unit_price").alias("max_price"),
        F.sum(F.when(F.col("promo"), qty).otherwise(0)).alias("_promo_qty"),
        F.sum(F.when(F.col("channel") == "online", qty).otherwise(0)).alias("_online_qty"),
        F.count(F.lit(1)).alias("events"),
        F.countDistinct("customer_hash").alias("customers"),
    )
    share = lambda part: F.when(F.col("quantity") > 0, F.col(part) / F.col("quantity")).otherwise(  # noqa: E731
        F.lit(0.0)
    )
    out = (
        agg.withColumn("avg_price", F.col("revenue") / F.col("quantity"))
        .withColumn("promo_share", share("_promo_qty"))
        .withColumn("online_share", share("_online_qty"))
    )
    return out.select(*[F.col(f.name).cast(_spark_type(f.type)).alias(f.name) for f in GOLD_SCHEMA])


def feature_window(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """Gold dates the features of ``[start, end]`` read: the look-back window and the days."""
    return start - dt.timedelta(days=LOOKBACK_DAYS), end


def holiday_rows(
    countries: Mapping[str, str], start: dt.date, end: dt.date
) -> list[tuple[str, dt.date]]:
    """(region, date) of every public holiday in each region's country between the dates."""
    import holidays

    out: list[tuple[str, dt.date]] = []
    years = list(range(start.year, end.year + 1))
    for region, country in sorted(countries.items()):
        for day in sorted(holidays.country_holidays(country, years=years)):
            if start <= day <= end:
                out.append((region, day))
    return out


def holiday_frame(
    spark: SparkSession, countries: Mapping[str, str], start: dt.date, end: dt.date
) -> DataFrame:
    """Holidays per region as a small DataFrame (region, date)."""
    return spark.createDataFrame(holiday_rows(countries, start, end), "region string, date date")


def demand_features(
    gold: DataFrame, holidays: DataFrame, start: dt.date, end: dt.date
) -> DataFrame:
    """Demand features of the gold rows dated ``[start, end]``, all regions together.

    ``gold`` must hold the look-back days too (:func:`feature_window`); rows before ``start``
    are history only. See the module docstring for the windows' conventions.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    base = gold.select(
        "date",
        "region",
        "store_id",
        "sku",
        "category",
        F.col("quantity").cast("double").alias("q"),
        F.col("revenue").cast("double").alias("rev"),
        "avg_price",
        "promo_share",
    ).withColumn("dn", F.datediff(F.col("date"), F.lit(dt.date(1970, 1, 1))))
    w = Window.partitionBy(*SERIES).orderBy("dn")

    def before(days: int, col: str) -> Column:
        return F.coalesce(F.sum(col).over(w.rangeBetween(-days, -1)), F.lit(0.0))

    cols: dict[str, Column] = {}
    for k in LAGS:
        cols[f"qty_lag_{k}"] = F.coalesce(F.sum("q").over(w.rangeBetween(-k, -k)), F.lit(0.0))
    for n in WINDOWS:
        mean = before(n, "q") / n
        cols[f"qty_mean_{n}"] = mean
        cols[f"qty_std_{n}"] = F.sqrt(F.greatest(before(n, "q2") / n - mean * mean, F.lit(0.0)))
    cols["days_sold_28"] = F.count("q").over(w.rangeBetween(-LOOKBACK_DAYS, -1)).cast("double")
    rev28, q28 = before(LOOKBACK_DAYS, "rev"), before(LOOKBACK_DAYS, "q")
    cols["price_rel_28"] = F.when(q28 > 0, F.col("avg_price") / (rev28 / q28)).otherwise(1.0)

    feats = base.withColumn("q2", F.col("q") * F.col("q")).select(
        "*", *[c.alias(name) for name, c in cols.items()]
    )
    feats = feats.where(F.col("date").between(F.lit(start), F.lit(end)))
    hol = holidays.select("region", "date", F.lit(1.0).alias("is_holiday")).distinct()
    dow = F.dayofweek("date")  # 1 = Sunday .. 7 = Saturday
    feats = (
        feats.join(F.broadcast(hol), ["region", "date"], "left")
        .withColumn("is_holiday", F.coalesce(F.col("is_holiday"), F.lit(0.0)))
        .withColumn("day_of_week", ((dow + 5) % 7 + 1).cast("double"))  # ISO: 1 = Monday
        .withColumn("day_of_month", F.dayofmonth("date").cast("double"))
        .withColumn("month", F.month("date").cast("double"))
        .withColumn("is_weekend", F.when(dow.isin(1, 7), 1.0).otherwise(0.0))
        .withColumn(TARGET, F.col("q"))
    )
    return feats.select(
        *[F.col(f.name).cast(_spark_type(f.type)).alias(f.name) for f in FEATURES_SCHEMA]
    )
