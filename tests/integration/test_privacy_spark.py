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


def test_erasure_refuses_a_spark_table_with_deletion_vectors_and_changes_nothing(spark, lake_home):
    from pipelines.privacy.erase import NotErasableError, Subject, erase_from_table

    src = str(lake_home / "crm_erase")
    spark.sql(
        f"CREATE TABLE delta.`{src}` (customer_id STRING, qty LONG) USING delta "
        "TBLPROPERTIES (delta.enableDeletionVectors = true)"
    )
    spark.range(0, 50).selectExpr("concat('c-', id) AS customer_id", "id AS qty").coalesce(
        1
    ).write.format("delta").mode("append").save(src)
    spark.sql(f"DELETE FROM delta.`{src}` WHERE qty = 7")  # c-7 hidden by a vector, still bytes
    assert list(Path(src).rglob("deletion_vector_*.bin")), "Spark wrote no deletion vector"
    before = {p: p.read_bytes() for p in Path(src).rglob("*") if p.is_file()}
    with pytest.raises(NotErasableError, match=r"deletionVectors feature .* REORG TABLE"):
        erase_from_table(src, {}, Subject({"customer_id": ("c-7",)}))
    assert {p: p.read_bytes() for p in Path(src).rglob("*") if p.is_file()} == before
