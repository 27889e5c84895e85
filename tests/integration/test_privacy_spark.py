"""Spark-written Delta with deletion vectors: content discovery sees what the files carry."""

from pathlib import Path

import pytest

from pipelines.lake.config import load_config
from pipelines.privacy.detect import BUILTIN_DETECTORS
from pipelines.privacy.sample import ContentScan, scan_delta
from pipelines.replication.sync import sync
from pipelines.sovereignty.policy import PolicyError

pytestmark = pytest.mark.spark


def test_a_spark_table_with_deletion_vectors_is_refused_by_content(spark, lake_home):
    cfg = load_config("local")
    src = cfg.location("azure-eu").table_uri("crm_notes")
    spark.sql(
        f"CREATE TABLE delta.`{src}` (id LONG, contact STRING, sku STRING) USING delta "
        "TBLPROPERTIES (delta.enableDeletionVectors = true)"
    )
    spark.range(0, 200).selectExpr(
        "id",
        "CASE WHEN id % 2 = 0 THEN concat('shopper', id, '@example.org') ELSE 'walk-in' END "
        "AS contact",
        "concat('SKU-', lpad(cast(id AS STRING), 10, '0')) AS sku",
    ).coalesce(1).write.format("delta").mode("append").save(src)
    # Every e-mail row deleted: a reader sees none, the data file still holds them all.
    spark.sql(f"DELETE FROM delta.`{src}` WHERE id % 2 = 0")
    assert list(Path(src).rglob("deletion_vector_*.bin")), "Spark wrote no deletion vector"
    assert spark.read.format("delta").load(src).where("contact LIKE '%@%'").count() == 0
    scan = ContentScan(BUILTIN_DETECTORS, max_files=8, rows_per_file=1000)
    _, sample = scan_delta(src, {}, scan)
    assert [(f.column, f.detector, f.count) for f in sample.report.findings] == [
        ("contact", "email", 100)
    ]
    with pytest.raises(PolicyError, match=r"column 'contact' holds email by content \(100 of"):
        sync(cfg, src, cfg.home.replica_uri("crm_notes", "azure-eu"))


def _holding(root: Path, needle: str) -> list[str]:
    """Files under ``root`` holding ``needle``: raw bytes, and Parquet decoded (every row)."""
    import pyarrow.parquet as pq

    out = []
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            if path.suffix == ".parquet":
                text += str(pq.read_table(path).to_pylist()).encode()
            if needle.encode() in text:
                out.append(str(path.relative_to(root)))
    return out


def test_erasure_purges_the_rows_spark_hid_with_deletion_vectors(spark, lake_home):
    from pipelines.privacy.erase import Subject, erase_from_table

    src = str(lake_home / "crm_erase")
    spark.sql(
        f"CREATE TABLE delta.`{src}` (customer_id STRING, qty LONG, day STRING) USING delta "
        "PARTITIONED BY (day) TBLPROPERTIES (delta.enableDeletionVectors = true)"
    )
    spark.range(0, 60).selectExpr(
        "concat('shopper', id, '@example.org') AS customer_id",
        "id AS qty",
        "IF(id < 30, 'd1', 'd2') AS day",
    ).repartition(1).write.format("delta").mode("append").save(src)
    # shopper 7 deleted by Spark: hidden by a vector, still bytes in the live file of d1
    spark.sql(f"DELETE FROM delta.`{src}` WHERE qty = 7")
    assert list(Path(src).rglob("deletion_vector_*.bin")), "Spark wrote no deletion vector"
    seven, forty_one = "shopper7@example.org", "shopper41@example.org"  # no hex: not in a UUID
    assert _holding(Path(src), seven)  # the live file still holds the hidden row
    before = {r.qty: r.customer_id for r in spark.read.format("delta").load(src).collect()}
    # 7 hidden, 41 visible (in d2, which has no vector): both erased
    report = erase_from_table(src, {}, Subject({"customer_id": (seven, forty_one)}))
    assert report.rows_deleted == 1 and report.verified_absent, report.as_dict()
    for needle in (seven, forty_one):
        assert _holding(Path(src), needle) == [], needle
    # every other row unchanged, read by Spark (the purge's commit is a valid Delta commit)
    after = {r.qty: r.customer_id for r in spark.read.format("delta").load(src).collect()}
    assert after == {q: c for q, c in before.items() if q != 41}
    # the version with the vector, and the first, held 7's bytes: erasure won over retention
    assert report.versions_lost and report.files_removed
