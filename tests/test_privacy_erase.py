"""Erasure from one Delta table: the subject gone from every version's files, read back."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from pipelines.lake.delta import read_rows
from pipelines.privacy.erase import NotErasableError, Subject, erase_from_table

SUBJECT = Subject({"customer_id": ("c-000042",), "email": ("erin@example.org",)})


def _batch(ids: list[int]) -> pa.Table:
    return pa.table(
        {
            "customer_id": [f"c-{i:06d}" for i in ids],
            "email": [f"user{i}@example.org" if i != 42 else "erin@example.org" for i in ids],
            "qty": ids,
        }
    )


def _everywhere(root: Path, needle: str) -> int:
    """Files under ``root`` holding ``needle``: raw bytes, and Parquet decoded."""
    found = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        decoded = str(pq.read_table(path).to_pylist()) if path.suffix == ".parquet" else ""
        found += needle.encode() in data or needle in decoded
    return found


def test_the_subject_is_gone_from_every_version_and_the_rest_stays(tmp_path):
    uri = str(tmp_path / "bronze")
    write_deltalake(uri, _batch(list(range(0, 50))))  # v0 holds the subject
    write_deltalake(uri, _batch(list(range(50, 100))), mode="append")  # v1 does not
    write_deltalake(uri, _batch([42, 100, 101]), mode="append")  # v2 holds them again
    assert _everywhere(Path(uri), "erin@example.org") >= 2
    report = erase_from_table(uri, {}, SUBJECT)
    assert report.rows_deleted == 2 and report.version_after == 3
    assert report.verified_absent, report.as_dict()
    assert len(report.files_removed) == 2 and report.bytes_removed > 0
    assert _everywhere(Path(uri), "erin@example.org") == 0
    assert _everywhere(Path(uri), "c-000042") == 0
    now = DeltaTable(uri).to_pyarrow_table()
    assert now.num_rows == 101 and "c-000042" not in now.column("customer_id").to_pylist()
    # every older version referenced version 0's file: erasure won over retention, the
    # receipt says which versions were lost, and time travel there now fails
    assert report.versions_lost == [0, 1, 2]
    for version in report.versions_lost:
        with pytest.raises(FileNotFoundError):
            DeltaTable(uri, version=version).to_pyarrow_table()
    assert DeltaTable(uri, version=3).to_pyarrow_table().num_rows == 101
    shown = str(report.as_dict())
    assert "erin" not in shown and "000042" not in shown


def test_the_receipt_names_the_subject_by_a_keyed_hash():
    a, b = SUBJECT.keyed_hash("k1"), SUBJECT.keyed_hash("k2")
    assert a != b and len(a) == 64 and "erin" not in a


def test_a_table_without_the_subject_is_left_as_it_was(tmp_path):
    uri = str(tmp_path / "gold")
    write_deltalake(uri, pa.table({"sku": ["SKU-1", "SKU-2"], "qty": [1, 2]}))
    before = sorted(p.read_bytes() for p in Path(uri).rglob("*") if p.is_file())
    report = erase_from_table(uri, {}, SUBJECT)
    assert report.rows_deleted == 0 and report.version_after == 0 and report.verified_absent
    assert report.files_removed == [] and report.log_files_rewritten == []
    assert report.versions_lost == []
    assert sorted(p.read_bytes() for p in Path(uri).rglob("*") if p.is_file()) == before


def test_a_table_with_the_deletion_vectors_feature_is_erased(tmp_path):
    """delta-rs writes no vector itself (Spark does: tests/integration/test_privacy_spark.py)."""
    uri = str(tmp_path / "crm")
    write_deltalake(uri, _batch([1, 42]), configuration={"delta.enableDeletionVectors": "true"})
    write_deltalake(uri, _batch([2, 3]), mode="append")
    report = erase_from_table(uri, {}, SUBJECT)
    assert report.rows_deleted == 1 and report.verified_absent, report.as_dict()
    assert _everywhere(Path(uri), "erin@example.org") == 0
    assert sorted(read_rows(DeltaTable(uri))["qty"].to_pylist()) == [1, 2, 3]


def test_a_table_with_column_mapping_is_refused_before_anything_changes(tmp_path):
    uri = str(tmp_path / "crm")
    write_deltalake(
        uri,
        _batch([1, 42]),
        configuration={"delta.columnMapping.mode": "name"},
    )
    before = sorted(p.read_bytes() for p in Path(uri).rglob("*") if p.is_file())
    with pytest.raises(NotErasableError, match=r"reader feature\(s\) columnMapping"):
        erase_from_table(uri, {}, SUBJECT)
    assert sorted(p.read_bytes() for p in Path(uri).rglob("*") if p.is_file()) == before
