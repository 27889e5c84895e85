"""Silver and gold written by Spark through S3A to a moto S3 server, read back by delta-rs."""

import datetime as dt
import hashlib
import hmac

import pyarrow as pa
import pytest

from pipelines import delta, spark_jobs
from pipelines.config import load_config
from pipelines.events import BRONZE_PARTITION_BY, BRONZE_SCHEMA
from pipelines.spark import hadoop_conf, spark_uri

pytestmark = [pytest.mark.spark, pytest.mark.s3]

KEY = "s3-test-key"
DAY = dt.date(2026, 10, 5)


def _bronze(landing: dt.date, rows: list[tuple[str, dt.datetime, int]]) -> pa.Table:
    n = len(rows)
    data = {
        "event_id": [r[0] for r in rows],
        "event_ts": [r[1].replace(tzinfo=dt.UTC) for r in rows],
        "region": ["us"] * n,
        "store_id": [1] * n,
        "sku": ["SKU-1"] * n,
        "category": ["grocery"] * n,
        "quantity": [r[2] for r in rows],
        "unit_price": [2.5] * n,
        "currency": ["USD"] * n,
        "promo": [False] * n,
        "channel": ["store"] * n,
        "customer_id": ["us-000007"] * n,
        "email": ["a@b.example.com"] * n,
        "_rescued_data": [None] * n,
        "source_object": [f"landing/{landing}"] * n,
        "landing_date": [landing] * n,
    }
    return pa.table(data, schema=BRONZE_SCHEMA)


def test_silver_and_gold_on_s3a_against_moto(spark, s3_endpoint, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_ENV", "emulated")
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT", s3_endpoint)
    cfg = load_config("emulated")
    loc = cfg.location("aws-us")
    opts = loc.storage_options()
    conf = hadoop_conf(loc.table_uri("x"), opts)
    assert conf["fs.s3a.bucket.lakehouse-aws-us.endpoint"] == s3_endpoint
    assert spark_uri(loc.table_uri("x"), opts).startswith("s3a://lakehouse-aws-us/")
    at = lambda h, d=DAY: dt.datetime.combine(d, dt.time(h))  # noqa: E731
    bronze_uri = loc.table_uri(spark_jobs.BRONZE_TABLE)
    for landing, rows in {
        DAY: [("a", at(1), 2), ("b", at(2), 3)],
        DAY + dt.timedelta(days=1): [("b", at(2), 3), ("c", at(23), 4)],  # dup b, late c
    }.items():
        part = {"landing_date": landing, "region": "us"}
        delta.write_partition(
            bronze_uri, _bronze(landing, rows), part, opts, partition_by=BRONZE_PARTITION_BY
        )
    options_of = {"aws-us": opts}
    spark_jobs.run(spark, "silver", DAY, DAY, cfg, options_of, "aws-us", KEY)
    spark_jobs.run(spark, "gold", DAY, DAY, cfg, options_of, "aws-us")

    silver = delta.read_partition(loc.table_uri(spark_jobs.SILVER_TABLE), opts)
    assert sorted(silver.column("event_id").to_pylist()) == ["a", "b", "c"]
    want = hmac.new(KEY.encode(), b"us-000007", hashlib.sha256).hexdigest()
    assert set(silver.column("customer_hash").to_pylist()) == {want}
    gold = delta.read_partition(loc.table_uri(spark_jobs.GOLD_TABLE), opts)
    assert gold.num_rows == 1
    assert gold.column("quantity").to_pylist() == [9]
    assert gold.column("revenue").to_pylist() == [22.5]
