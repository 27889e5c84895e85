"""One protocol, two engines: Delta written by Spark reads in delta-rs and the other way round."""

import datetime as dt

import pyarrow as pa
import pytest

from pipelines import delta

pytestmark = pytest.mark.spark


def test_spark_writes_deltalake_reads(spark, tmp_path):
    uri = str(tmp_path / "from_spark")
    df = spark.createDataFrame(
        [
            (dt.date(2026, 10, 1), "us", "SKU-1", 3, 9.5),
            (dt.date(2026, 10, 2), "eu", "SKU-2", 1, 2.0),
        ],
        "d date, region string, sku string, qty long, price double",
    )
    df.write.format("delta").partitionBy("d", "region").save(uri)
    spark.sql(f"DELETE FROM delta.`{uri}` WHERE sku = 'SKU-2'")
    table = delta.read_partition(uri, {})
    assert table.num_rows == 1
    assert table.column("qty").to_pylist() == [3]
    assert delta.table_version(uri, {}) == 1


def test_deltalake_writes_spark_reads(spark, tmp_path):
    uri = str(tmp_path / "from_rs")
    rows = pa.table(
        {"landing_date": [dt.date(2026, 10, 1)] * 3, "region": ["us"] * 3, "qty": [1, 2, 3]}
    )
    delta.write_partition(uri, rows, {"landing_date": dt.date(2026, 10, 1), "region": "us"}, {})
    delta.write_partition(
        uri, rows.slice(0, 2), {"landing_date": dt.date(2026, 10, 1), "region": "us"}, {}
    )
    got = spark.read.format("delta").load(uri)
    assert got.count() == 2
    assert sorted(r.qty for r in got.collect()) == [1, 2]
    assert spark.read.format("delta").option("versionAsOf", 0).load(uri).count() == 3
