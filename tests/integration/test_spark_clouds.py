"""Silver and gold written by Spark on each emulated cloud, read back by delta-rs.

S3A on moto, hadoop-azure's WASB driver on Azurite, the GCS connector on fake-gcs-server: the
settings are the locations' ``spark:`` blocks in lakehouse.yaml (docs/emulators.md).
"""

import datetime as dt
import hashlib
import hmac

import pyarrow as pa
import pytest

from pipelines.ingest.events import BRONZE_PARTITION_BY, BRONZE_SCHEMA
from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.spark import jobs as spark_jobs

pytestmark = pytest.mark.spark

KEY = "s3-test-key"
DAY = dt.date(2026, 10, 5)


def _bronze(
    landing: dt.date, rows: list[tuple[str, dt.datetime, int]], region: str, currency: str
) -> pa.Table:
    n = len(rows)
    data = {
        "event_id": [r[0] for r in rows],
        "event_ts": [r[1].replace(tzinfo=dt.UTC) for r in rows],
        "region": [region] * n,
        "store_id": [1] * n,
        "sku": ["SKU-1"] * n,
        "category": ["grocery"] * n,
        "quantity": [r[2] for r in rows],
        "unit_price": [2.5] * n,
        "currency": [currency] * n,
        "promo": [False] * n,
        "channel": ["store"] * n,
        "customer_id": ["us-000007"] * n,
        "email": ["a@b.example.com"] * n,
        "_rescued_data": [None] * n,
        "source_object": [f"landing/{landing}"] * n,
        "landing_date": [landing] * n,
    }
    return pa.table(data, schema=BRONZE_SCHEMA)


CLOUDS = [
    pytest.param("aws-us", "s3a://lakehouse-aws-us/", marks=pytest.mark.s3, id="s3a-moto"),
    pytest.param(
        "azure-eu", "wasb://lakehouse-azure-eu@devstoreaccount1/", marks=pytest.mark.azure,
        id="wasb-azurite",
    ),
    pytest.param("gcp-apac", "gs://lakehouse-gcp-apac/", marks=pytest.mark.gcs, id="gs-fake-gcs"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "spark_root"), CLOUDS)
def test_silver_and_gold_on_each_emulated_cloud(spark, emulated_env, name, spark_root):
    cfg = load_config("emulated")
    loc = cfg.location(name)
    opts = loc.storage_options()
    assert loc.spark_uri(loc.table_uri("x"), opts) == spark_root + "tables/x"
    region, currency = loc.region, cfg.currency_of(loc.region)
    at = lambda h, d=DAY: dt.datetime.combine(d, dt.time(h))  # noqa: E731
    bronze_uri = loc.table_uri(spark_jobs.BRONZE_TABLE)
    for landing, rows in {
        DAY: [("a", at(1), 2), ("b", at(2), 3)],
        DAY + dt.timedelta(days=1): [("b", at(2), 3), ("c", at(23), 4)],  # dup b, late c
    }.items():
        part = {"landing_date": landing, "region": region}
        bronze = _bronze(landing, rows, region, currency)
        delta.write_partition(bronze_uri, bronze, part, opts, partition_by=BRONZE_PARTITION_BY)
    options_of = {name: opts}
    for step in ("silver", "gold"):
        request = spark_jobs.StepRequest(
            step=step,
            start=DAY,
            end=DAY,
            location=name,
            cfg=cfg,
            storage_options=options_of,
            pii_key=lambda: KEY,
        )
        spark_jobs.run(spark, request)

    silver = delta.read_partition(loc.table_uri(spark_jobs.SILVER_TABLE), opts)
    assert sorted(silver.column("event_id").to_pylist()) == ["a", "b", "c"]
    want = hmac.new(KEY.encode(), b"us-000007", hashlib.sha256).hexdigest()
    assert set(silver.column("customer_hash").to_pylist()) == {want}
    gold = delta.read_partition(loc.table_uri(spark_jobs.GOLD_TABLE), opts)
    assert gold.num_rows == 1
    assert gold.column("quantity").to_pylist() == [9]
    assert gold.column("revenue").to_pylist() == [22.5]
