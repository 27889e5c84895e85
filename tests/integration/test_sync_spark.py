"""Tables written by Spark with deletion vectors and change data feed sync completely."""

from pathlib import Path

import pytest

from pipelines.sync import sync_table

pytestmark = pytest.mark.spark


def _rows(spark, uri: str, version: int) -> list:
    df = spark.read.format("delta").option("versionAsOf", version).load(uri)
    return sorted(tuple(r) for r in df.collect())


def test_deletion_vectors_and_change_data_are_copied(spark, tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    spark.sql(
        f"CREATE TABLE delta.`{src}` (id LONG, sku STRING, qty LONG) USING delta "
        "TBLPROPERTIES (delta.enableDeletionVectors = true, delta.enableChangeDataFeed = true)"
    )
    spark.range(0, 400).selectExpr("id", "concat('s', id % 7) AS sku", "id % 5 AS qty").coalesce(
        2
    ).write.format("delta").mode("append").save(src)
    first = sync_table(src, dst)
    assert first.target_version_after == 1
    spark.sql(f"DELETE FROM delta.`{src}` WHERE id % 10 = 0")  # deletion vectors
    spark.sql(f"UPDATE delta.`{src}` SET qty = qty + 100 WHERE id % 10 = 1")  # cdc files
    dvs = list(Path(src).rglob("deletion_vector_*.bin"))
    cdc = list((Path(src) / "_change_data").rglob("*.parquet"))
    assert dvs and cdc, "Spark wrote neither deletion vectors nor change data"
    second = sync_table(src, dst)
    assert second.versions_behind_before == 2 and second.versions_behind_after == 0
    for f in [*dvs, *cdc]:
        copy = Path(dst) / f.relative_to(src)
        assert copy.exists() and copy.read_bytes() == f.read_bytes(), f.name
    for version in range(second.target_version_after + 1):
        assert _rows(spark, dst, version) == _rows(spark, src, version), version

    def changes(uri):
        return (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", 2)
            .load(uri)
            .drop("_commit_timestamp")
            .collect()
        )

    assert sorted(map(tuple, changes(dst))) == sorted(map(tuple, changes(src)))
    assert len(changes(dst)) > 0
