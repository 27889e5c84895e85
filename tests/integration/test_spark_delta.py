"""One protocol, two engines: Delta written by Spark reads in delta-rs and the other way round."""

import datetime as dt

import pyarrow as pa
import pytest

from pipelines.lake import delta
from tests.helpers import suites

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
    # version 0 is the empty table write_partition creates first; 1 holds the first write
    assert spark.read.format("delta").option("versionAsOf", 0).load(uri).count() == 0
    assert spark.read.format("delta").option("versionAsOf", 1).load(uri).count() == 3


def test_spark_skips_files_by_the_statistics_write_partition_records(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(delta.commit, "MIN_FILE_ROWS", 2)  # two files of two rows each
    uri = str(tmp_path / "stats")
    utc = dt.UTC
    ts = [dt.datetime(2026, 10, 1, h, 0, 0, 999, tzinfo=utc) for h in (1, 2, 22, 23)]
    rows = pa.table(
        {
            "d": [dt.date(2026, 10, 1)] * 4,
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "qty": [1, 2, 30, 40],
        }
    )
    delta.write_partition(uri, rows, {"d": dt.date(2026, 10, 1)}, {})
    got = spark.read.format("delta").load(uri)
    # Bounds rounded outwards to the millisecond: the microsecond rows are still found.
    assert got.filter(got.ts >= ts[3]).count() == 1
    assert got.filter(got.ts <= ts[0]).count() == 1
    assert got.filter("qty >= 30").count() == 2
    assert got.filter(got.ts > ts[1]).count() == 2


def test_spark_partition_replace_is_read_exactly_by_deltalake(spark, lake_home):
    from pipelines.lake.config import load_config
    from pipelines.spark import session as spark_engine

    loc = load_config("local").location("azure-eu")
    uri = loc.table_uri("t")
    schema = "landing_date date, region string, qty long"
    day1, day2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
    df = spark.createDataFrame([(day1, "eu", 1), (day2, "eu", 2)], schema)

    def replace(frame, day):
        part = {"landing_date": day, "region": "eu"}
        target = spark_engine.configure_storage(spark, uri, {}, loc)
        spark_engine.write_replace(frame, target, delta.partition_predicate(part), list(part))

    replace(df.filter("landing_date = '2026-10-01'"), day1)
    replace(df.filter("landing_date = '2026-10-02'"), day2)
    replace(spark.createDataFrame([(day1, "eu", 7), (day1, "eu", 8)], schema), day1)
    assert delta.table_version(uri, {}) == 2
    rows = delta.read_partition(uri, {})
    assert sorted(rows.column("qty").to_pylist()) == [2, 7, 8]


def test_great_expectations_validates_spark_dataframes(spark):
    from data_quality import gx

    df = spark.createDataFrame(
        [("a", "us", 1), ("a", "us", -1)], "event_id string, region string, quantity long"
    )
    outcome = gx.validate(suites()["bronze_events"], df, {"expected_rows": 2})
    failed = {(o.expectation, o.column) for o in outcome.failed}
    assert ("expect_column_values_to_be_unique", "event_id") in failed
    assert ("expect_column_values_to_be_between", "quantity") in failed
    assert ("expect_table_row_count_to_equal", None) not in failed
    assert outcome.rows == 2


def _commits(uri):
    import json
    from pathlib import Path

    out = []
    for path in sorted((Path(uri) / "_delta_log").glob("*.json")):
        out.append([json.loads(line) for line in path.read_text().splitlines()])
    return out


def test_spark_writes_keep_statistics_on_the_registered_columns_only(spark, tmp_path):
    """A new table is created with its statistics' columns; an older one gets them, once."""
    import json

    from pipelines.lake import tables
    from pipelines.spark import session as spark_engine

    schema = "d date, customer_hash string, store_id long"
    day = dt.date(2026, 10, 1)
    df = spark.createDataFrame([(day, "f" * 64, 7), (day, "e" * 64, 9)], schema)
    wanted = {tables.STATS_COLUMNS: "store_id"}
    old, new = str(tmp_path / "old"), str(tmp_path / "new")
    df.write.format("delta").partitionBy("d").save(old)  # before the registry named any
    for uri in (old, new):
        for _ in range(2):
            spark_engine.write_replace(df, uri, "d = '2026-10-01'", ["d"], None, wanted)
    for uri, metadata_commits in ((old, 2), (new, 1)):
        commits = _commits(uri)
        metas = [a["metaData"] for c in commits for a in c if "metaData" in a]
        assert len(metas) == metadata_commits  # created with it, or set once, not per write
        assert metas[-1]["configuration"][tables.STATS_COLUMNS] == "store_id"
        adds = [a["add"] for a in commits[-1] if "add" in a]
        assert adds and all(json.loads(a["stats"])["nullCount"] == {"store_id": 0} for a in adds)
        assert "f" * 32 not in json.dumps(commits[-1])  # no hash as a bound
        assert spark.read.format("delta").load(uri).filter("store_id = 9").count() == 1


def test_a_missing_table_is_a_one_line_error_and_gets_no_properties(spark, tmp_path):
    from pipelines.lake.config import ConfigError
    from pipelines.spark import jobs
    from pipelines.spark import session as spark_engine

    missing = str(tmp_path / "never_written")
    assert spark_engine.ensure_properties(spark, missing, {"delta.appendOnly": "false"}) is False
    with pytest.raises(ConfigError, match=r"^silver of here: no Delta table at .*never_written$"):
        jobs.read_delta(spark, None, missing, {}, "true", "silver of here")
