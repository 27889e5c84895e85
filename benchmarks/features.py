"""Demand features from events: Spark (the project's transforms) vs Polars vs DuckDB.

Each engine reads the same events Parquet, aggregates to daily store-SKU gold rows, computes
the demand features of every day (calendar-day lags and windows, missing days as zero demand,
holidays per region) and writes Parquet. The outputs are checked equal. Spark time excludes
session start (reported apart); Spark runs once cold, then warm (``spark_s`` is warm).

Size knob: ``BENCH_SIZES`` (comma-separated event counts, default ``1000000,5000000``); the
last size gives the headline figures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lake.schemas import FEATURES_SCHEMA
from pipelines.spark import transforms as T

START = dt.date(2026, 3, 1)
DAYS, STORES, SKUS = 180, 200, 500
REGIONS = {"us": "US", "eu": "DE", "apac": "SG"}
CATEGORIES = np.array(["grocery", "beverages", "household", "personal_care", "electronics"])
KEYS = ["region", "store_id", "sku", "date"]


def generate(n: int, seed: int = 7) -> pa.Table:
    """Silver-shaped events: ~180 days, 200 stores in 3 regions, 500 SKUs, sparse series."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, SKUS + 1) ** 0.9
    sku = rng.choice(SKUS, n, p=pop / pop.sum())
    sw = rng.lognormal(0, 0.6, STORES)
    store = rng.choice(STORES, n, p=sw / sw.sum())
    day = rng.integers(0, DAYS, n)
    region_names = np.array(list(REGIONS))
    region = store % 3
    base_price = np.round(rng.lognormal(1.8, 0.6, SKUS), 2)
    promo = rng.random(n) < 0.1
    price = np.round(base_price[sku] * np.where(promo, 0.8, 1.0), 2)
    dates = np.datetime64(START.isoformat()) + day.astype("timedelta64[D]")
    sku_names = pa.array([f"SKU-{i:05d}" for i in range(SKUS)])
    customers = pa.array([f"c{i:06d}" for i in range(50_000)])
    return pa.table(
        {
            "date": pa.array(dates, pa.date32()),
            "region": pa.DictionaryArray.from_arrays(pa.array(region), pa.array(region_names)),
            "store_id": pa.array(store + 1, pa.int64()),
            "sku": pa.DictionaryArray.from_arrays(pa.array(sku), sku_names),
            "category": pa.array(CATEGORIES[sku % len(CATEGORIES)]),
            "currency": pa.array(np.array(["USD", "EUR", "SGD"])[region]),
            "quantity": pa.array(1 + rng.poisson(1.2, n), pa.int64()),
            "unit_price": pa.array(price),
            "promo": pa.array(promo),
            "channel": pa.array(np.where(rng.random(n) < 0.3, "online", "store")),
            "customer_hash": pa.DictionaryArray.from_arrays(
                pa.array(rng.integers(0, 50_000, n)), customers
            ),
        }
    )


def holiday_table(start: dt.date, end: dt.date) -> pa.Table:
    rows = T.holiday_rows(REGIONS, start, end)
    return pa.table(
        {"region": [r for r, _ in rows], "date": pa.array([d for _, d in rows], pa.date32())}
    )


def run_spark(spark, events: str, hol: str, out: str, start: dt.date, end: dt.date) -> None:
    ev = spark.read.parquet(events)
    gold = T.gold_daily_demand(ev)
    feats = T.demand_features(gold, spark.read.parquet(hol), start, end)
    feats.write.mode("overwrite").parquet(out)


def run_polars(events: str, hol: str, out: str, start: dt.date, end: dt.date) -> None:
    import polars as pl

    q = pl.col("quantity")
    gold = (
        pl.scan_parquet(events)
        .with_columns(pl.col("region", "sku").cast(pl.String))
        .group_by(["date", "region", "store_id", "sku"])
        .agg(
            pl.col("category").max(),
            q.sum().cast(pl.Float64).alias("q"),
            (q * pl.col("unit_price")).sum().alias("rev"),
            pl.when(pl.col("promo")).then(q).otherwise(0).sum().alias("promo_q"),
        )
        .with_columns(
            (pl.col("rev") / pl.col("q")).alias("avg_price"),
            (pl.col("promo_q") / pl.col("q")).alias("promo_share"),
            (pl.col("q") * pl.col("q")).alias("q2"),
            pl.lit(1.0).alias("one"),
        )
        .sort(["region", "store_id", "sku", "date"])
    )
    series = ["region", "store_id", "sku"]

    def s(col: str, days: int) -> pl.Expr:
        if days == 0:
            return pl.lit(0.0)
        return (
            pl.col(col)
            .rolling_sum_by("date", window_size=f"{days}d", closed="left")
            .over(series)
            .fill_null(0.0)
        )

    feats = gold.with_columns(
        *[(s("q", k) - s("q", k - 1)).alias(f"qty_lag_{k}") for k in T.LAGS],
        *[(s("q", n) / n).alias(f"qty_mean_{n}") for n in T.WINDOWS],
        *[s("q2", n).alias(f"_q2_{n}") for n in T.WINDOWS],
        s("one", 28).alias("days_sold_28"),
        s("rev", 28).alias("_rev28"),
        s("q", 28).alias("_q28"),
    ).with_columns(
        *[
            (pl.col(f"_q2_{n}") / n - pl.col(f"qty_mean_{n}") ** 2)
            .clip(0.0)
            .sqrt()
            .alias(f"qty_std_{n}")
            for n in T.WINDOWS
        ],
        pl.when(pl.col("_q28") > 0)
        .then(pl.col("avg_price") / (pl.col("_rev28") / pl.col("_q28")))
        .otherwise(1.0)
        .alias("price_rel_28"),
    )
    holidays = pl.scan_parquet(hol).with_columns(pl.lit(1.0).alias("is_holiday")).unique()
    dow = pl.col("date").dt.weekday()  # 1 = Monday
    result = (
        feats.filter(pl.col("date").is_between(start, end))
        .join(holidays, on=["region", "date"], how="left")
        .with_columns(
            pl.col("is_holiday").fill_null(0.0),
            dow.cast(pl.Float64).alias("day_of_week"),
            pl.col("date").dt.day().cast(pl.Float64).alias("day_of_month"),
            pl.col("date").dt.month().cast(pl.Float64).alias("month"),
            (dow >= 6).cast(pl.Float64).alias("is_weekend"),
            pl.col("q").alias(T.TARGET),
        )
        .select(FEATURES_SCHEMA.names)
    )
    result.sink_parquet(out)


def run_duckdb(events: str, hol: str, out: str, start: dt.date, end: dt.date) -> None:
    import duckdb

    def win(lo: int, hi: int) -> str:
        return (
            "OVER (PARTITION BY region, store_id, sku ORDER BY dn "
            f"RANGE BETWEEN {lo} PRECEDING AND {hi} PRECEDING)"
        )

    def before(col: str, n: int) -> str:
        return f"coalesce(sum({col}) {win(n, 1)}, 0)"

    lags = ", ".join(f"coalesce(sum(q) {win(k, k)}, 0) AS qty_lag_{k}" for k in T.LAGS)
    means = ", ".join(f"{before('q', n)} / {n} AS qty_mean_{n}" for n in T.WINDOWS)
    sq = ", ".join(f"{before('q2', n)} AS _q2_{n}" for n in T.WINDOWS)
    stds = ", ".join(
        f"sqrt(greatest(_q2_{n} / {n} - qty_mean_{n} * qty_mean_{n}, 0)) AS qty_std_{n}"
        for n in T.WINDOWS
    )
    sql = f"""
    COPY (
      WITH gold AS (
        SELECT date, CAST(region AS VARCHAR) AS region, store_id, CAST(sku AS VARCHAR) AS sku,
               max(category) AS category, CAST(sum(quantity) AS DOUBLE) AS q,
               sum(quantity * unit_price) AS rev,
               CAST(sum(CASE WHEN promo THEN quantity ELSE 0 END) AS DOUBLE) AS promo_q
        FROM read_parquet('{events}') GROUP BY ALL
      ), g AS (
        SELECT *, rev / q AS avg_price, promo_q / q AS promo_share, q * q AS q2,
               date - DATE '1970-01-01' AS dn
        FROM gold
      ), f AS (
        SELECT *, {lags}, {means}, {sq},
               CAST(count(q) {win(28, 1)} AS DOUBLE) AS days_sold_28,
               {before("rev", 28)} AS _rev28, {before("q", 28)} AS _q28
        FROM g
      ), h AS (SELECT DISTINCT region, date, 1.0::DOUBLE AS is_holiday FROM read_parquet('{hol}'))
      SELECT f.date, f.region, store_id, sku, category,
             {", ".join(f"qty_lag_{k}" for k in T.LAGS)},
             qty_mean_7, qty_mean_28, {stds},
             days_sold_28, avg_price,
             CASE WHEN _q28 > 0 THEN avg_price / (_rev28 / _q28) ELSE 1.0::DOUBLE END
               AS price_rel_28,
             promo_share,
             CAST(isodow(f.date) AS DOUBLE) AS day_of_week,
             CAST(day(f.date) AS DOUBLE) AS day_of_month,
             CAST(month(f.date) AS DOUBLE) AS month,
             CASE WHEN isodow(f.date) >= 6 THEN 1.0::DOUBLE ELSE 0.0::DOUBLE END AS is_weekend,
             coalesce(h.is_holiday, 0.0::DOUBLE) AS is_holiday,
             q AS {T.TARGET}
      FROM f LEFT JOIN h ON f.region = h.region AND f.date = h.date
      WHERE f.date BETWEEN DATE '{start}' AND DATE '{end}'
    ) TO '{out}' (FORMAT parquet)
    """
    con = duckdb.connect()
    con.execute(sql)
    con.close()


def load(path: str) -> pa.Table:
    import polars as pl

    df = pl.read_parquet(path if path.endswith(".parquet") else f"{path}/*.parquet")
    return df.select(FEATURES_SCHEMA.names).sort(KEYS).to_arrow()


def assert_equal(a: pa.Table, b: pa.Table, what: str) -> None:
    if a.num_rows != b.num_rows:
        raise AssertionError(f"{what}: {a.num_rows} rows vs {b.num_rows}")
    for name in FEATURES_SCHEMA.names:
        x, y = a.column(name).to_numpy(), b.column(name).to_numpy()
        if x.dtype.kind == "f":
            if not np.allclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True):
                bad = int((~np.isclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True)).sum())
                raise AssertionError(f"{what}: column {name} differs on {bad} rows")
        elif not (x == y).all():
            raise AssertionError(f"{what}: column {name} differs")


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def bench(n: int, spark, work: Path) -> dict[str, object]:
    events, hol = str(work / f"events_{n}.parquet"), str(work / "holidays.parquet")
    pq.write_table(generate(n), events, row_group_size=1_000_000)
    end = START + dt.timedelta(days=DAYS - 1)
    pq.write_table(holiday_table(START, end), hol)
    outs = {e: str(work / f"out_{e}_{n}") for e in ("spark", "polars", "duckdb")}
    args = (events, hol)
    spark_cold = timed(run_spark, spark, *args, outs["spark"], START, end)
    spark_warm = timed(run_spark, spark, *args, outs["spark"], START, end)
    polars_s = timed(run_polars, *args, outs["polars"] + ".parquet", START, end)
    duckdb_s = timed(run_duckdb, *args, outs["duckdb"] + ".parquet", START, end)
    ref = load(outs["duckdb"] + ".parquet")
    assert_equal(load(outs["spark"]), ref, "spark vs duckdb")
    assert_equal(load(outs["polars"] + ".parquet"), ref, "polars vs duckdb")
    return {
        "rows_in": n,
        "rows_out": ref.num_rows,
        "spark_s": round(spark_warm, 2),
        "spark_cold_s": round(spark_cold, 2),
        "polars_s": round(polars_s, 2),
        "duckdb_s": round(duckdb_s, 2),
        "ratio_spark_to_duckdb": round(spark_warm / duckdb_s, 2),
        "outputs_equal": True,
    }


def main() -> None:
    from pipelines.spark.session import build_session

    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "1000000,5000000").split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    t0 = time.perf_counter()
    spark = build_session(
        "local[2]", app_name="bench-features", conf={"spark.sql.shuffle.partitions": "4"}
    )
    spark.range(1).count()
    start_s = time.perf_counter() - t0
    try:
        runs = []
        for n in sizes:
            runs.append(bench(n, spark, work))
            print(json.dumps(runs[-1]), flush=True)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    head = dict(runs[-1])
    head["spark_start_s"] = round(start_s, 2)
    head["scaling"] = {
        str(r["rows_in"]): {k: r[k] for k in ("spark_s", "polars_s", "duckdb_s")} for r in runs
    }
    if len(runs) > 1:
        a, b = runs[0], runs[-1]
        size_ratio = int(b["rows_in"]) / int(a["rows_in"])  # type: ignore[call-overload]
        head["spark_time_ratio_vs_size_ratio"] = [
            round(float(b["spark_s"]) / float(a["spark_s"]), 2),  # type: ignore[arg-type]
            round(size_ratio, 2),
        ]
    head["machine"] = f"{os.cpu_count()} cores, shared; timings noisy"
    print(json.dumps(head))


if __name__ == "__main__":
    main()
