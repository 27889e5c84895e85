"""Closed days grouped by a keyed customer bucket: what an erasure rewrites, and what it keeps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from pipelines.erasure.requests import keyed_hash
from pipelines.lake import delta
from pipelines.lake.config import PrivacySettings
from pipelines.lake.delta.cluster import Clustering, ClusteringError, is_clustered
from pipelines.operations.maintenance.compaction import compact

KEY = "cluster-test-key"
DAY = dt.date(2026, 10, 1)


def _bronze_like(n: int = 2_000, customers: int = 500) -> pa.Table:
    ids = [f"C{i % customers:05d}" for i in range(n)]
    return pa.table(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "customer_id": ids,
            "email": [f"{c.lower()}@example.com" for c in ids],
            "quantity": list(range(n)),
            "landing_date": [DAY] * n,
        }
    )


@pytest.fixture
def one_file_day(tmp_path: Path) -> str:
    uri = str(tmp_path / "bronze_events")
    write_deltalake(uri, _bronze_like(), partition_by=["landing_date"])
    return uri


def _adds(uri: str) -> pa.Table:
    return pa.table(DeltaTable(uri).get_add_actions(flatten=True))


def _files(uri: str) -> list[str]:
    return [str(p) for p in _adds(uri).column("path").to_pylist()]


def _bytes(uri: str) -> int:
    return int(pc.sum(_adds(uri)["size_bytes"]).as_py())


def test_a_day_is_grouped_into_k_files_one_bucket_each(one_file_day: str) -> None:
    size = _bytes(one_file_day)
    cluster = Clustering("customer_id", target_file_bytes=size // 8 + 1, key=KEY)
    part = {"landing_date": DAY}
    assert delta.compact_partition(one_file_day, {}, part, 4, cluster)
    files = _files(one_file_day)
    assert 2 <= len(files) <= 8 and all(is_clustered(f) for f in files)
    rows = 0
    for f in files:
        held = pq.read_table(Path(one_file_day) / f)
        rows += held.num_rows
        buckets = set(cluster.bucket_of(held, 8).tolist())
        assert buckets == {int(Path(f).name[6:10])}, f  # one bucket a file, the one named
        assert not any(c in f for c in held["customer_id"].to_pylist())  # no id in a name
    assert rows == 2_000
    assert DeltaTable(one_file_day).to_pyarrow_table().num_rows == 2_000
    # clustered: a second closed-day pass and the weekly compaction leave it as it is
    assert not delta.compact_partition(one_file_day, {}, part, 4, cluster)
    assert compact(one_file_day, {}).get("partitions") == 0
    assert _files(one_file_day) == files


def test_an_erasure_rewrites_only_the_subjects_file(one_file_day: str) -> None:
    size = _bytes(one_file_day)
    cluster = Clustering("customer_id", target_file_bytes=size // 16 + 1, key=KEY)
    delta.compact_partition(one_file_day, {}, {"landing_date": DAY}, 4, cluster)
    files = len(_files(one_file_day))
    assert files >= 8
    metrics = DeltaTable(one_file_day).delete("customer_id = 'C00007'")
    assert metrics["num_deleted_rows"] == 4
    assert metrics["num_removed_files"] == 1, metrics  # one of the day's files, not all
    assert len(_files(one_file_day)) == files


def test_bronze_and_silver_put_a_subject_in_the_same_bucket() -> None:
    privacy = PrivacySettings(cluster_file_bytes=1000, cluster_max_buckets=64)
    bronze = delta.bronze_clustering(privacy, KEY)
    assert bronze is not None
    silver = delta.silver_clustering(privacy)
    ids = [f"C{i:05d}" for i in range(300)]
    raw = pa.table({"customer_id": ids})
    hashed = pa.table({"customer_hash": [keyed_hash(KEY, c) for c in ids]})
    assert bronze.bucket_of(raw, 64).tolist() == silver.bucket_of(hashed, 64).tolist()
    assert len(set(bronze.bucket_of(raw, 64).tolist())) > 32  # spread, not one bucket
    # another key, other buckets: the grouping says nothing without the key
    other = Clustering("customer_id", 1000, "another-key").bucket_of(raw, 64).tolist()
    assert other != bronze.bucket_of(raw, 64).tolist()


def test_no_key_no_bronze_clustering_and_k_follows_the_data() -> None:
    privacy = PrivacySettings(cluster_file_bytes=1_000, cluster_max_buckets=50)
    assert delta.bronze_clustering(privacy, None) is None
    assert delta.bronze_clustering(privacy, "") is None
    silver = delta.silver_clustering(privacy)
    assert silver.buckets_for(0) == 1
    assert silver.buckets_for(10_500) == 11
    assert silver.buckets_for(10**9) == 50
    with pytest.raises(ClusteringError, match="customer_hash"):
        silver.bucket_of(pa.table({"customer_id": ["x"]}), 4)
    with pytest.raises(ClusteringError, match="max_buckets"):
        Clustering("customer_hash", 1, None, 0)


def test_k_is_sized_for_the_erasure_and_bounded_by_file_sizes() -> None:
    """The defaults: 64 files a day, none under 1 MiB, none over 128 MiB, at most 256."""
    silver = delta.silver_clustering(PrivacySettings())
    assert silver.buckets_for(300_000) == 1  # a demo day of silver: one file (Spark pays per file)
    assert silver.buckets_for(3_000) == 1
    assert silver.buckets_for(8 << 20) == 8  # 8 MiB: files of 1 MiB
    assert silver.buckets_for(64 << 20) == 64  # from 64 MiB a day: 64 files
    assert silver.buckets_for(1 << 30) == 64  # a production day of 1 GiB: 16 MiB files
    assert silver.buckets_for(10 << 30) == 80  # 10 GiB: files of 128 MiB, not 160
    assert silver.buckets_for(100 << 30) == 256  # the cap
    # a smaller floor cuts small days too (what the privacy benchmark also measures)
    assert (
        delta.silver_clustering(PrivacySettings(cluster_min_file_bytes=4096)).buckets_for(300_000)
        == 64
    )
    # size alone (the constructor's defaults): k from the target, as before
    assert Clustering("customer_hash", 1_000).buckets_for(10_500) == 11
    with pytest.raises(ClusteringError, match="min_file_bytes 0"):
        Clustering("customer_hash", 1_000, min_file_bytes=0)


def test_a_day_cut_into_buckets_makes_an_erasure_rewrite_one_bucket(tmp_path: Path) -> None:
    """A day clustered into buckets (a demo-sized day, with a 4 KiB floor): a delete is narrow."""
    uri = str(tmp_path / "silver_events")
    ids = [f"C{i % 1_500:05d}" for i in range(2_000)]
    rows = pa.table(
        {
            "date": [DAY] * 2_000,
            "region": ["eu"] * 2_000,
            "event_id": [f"e{i:06d}" for i in range(2_000)],
            "customer_hash": [keyed_hash(KEY, c) for c in ids],
        }
    )
    write_deltalake(uri, rows, partition_by=["date", "region"])
    day_bytes = _bytes(uri)
    cluster = delta.silver_clustering(PrivacySettings(cluster_min_file_bytes=4096))
    delta.cluster_partitions(uri, {}, [{"date": DAY, "region": "eu"}], cluster)
    files = _files(uri)
    assert len(files) == cluster.buckets_for(day_bytes) > 8
    assert all(is_clustered(f) for f in files)
    subject = keyed_hash(KEY, "C00007")
    before = _adds(uri)
    metrics = DeltaTable(uri).delete(f"customer_hash = '{subject}'")
    assert metrics["num_deleted_rows"] == 2 and metrics["num_removed_files"] == 1
    after = _adds(uri)
    written = int(
        pc.sum(
            after.filter(pc.invert(pc.is_in(after["path"], before["path"])))["size_bytes"]
        ).as_py()
    )
    assert written < _bytes(uri) / 8  # one bucket's file rewritten, not the day
    left = DeltaTable(uri).to_pyarrow_table()
    assert left.num_rows == 1_998 and subject not in left["customer_hash"].to_pylist()
    # the other rows unchanged; the subject in no live file's bytes, decoded or raw
    kept = rows.filter(pc.invert(pc.equal(rows["customer_hash"], subject)))
    assert sorted(left["event_id"].to_pylist()) == sorted(kept["event_id"].to_pylist())
    for f in DeltaTable(uri).file_uris():
        assert subject.encode() not in Path(f).read_bytes()
        assert subject not in str(pq.read_table(f).to_pylist())


def test_silver_days_are_clustered_after_a_write(tmp_path: Path) -> None:
    uri = str(tmp_path / "silver_events")
    ids = [f"C{i % 400:05d}" for i in range(1_500)]
    rows = pa.table(
        {
            "date": [DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)] * 500,
            "region": ["eu"] * 1_500,
            "customer_hash": [keyed_hash(KEY, c) for c in ids],
        }
    )
    write_deltalake(uri, rows, partition_by=["date", "region"])
    write_deltalake(uri, rows.slice(0, 3), partition_by=["date", "region"], mode="append")
    files = _files(uri)
    whole = Clustering("customer_hash", target_file_bytes=10**9)  # k = 1: left as written
    assert delta.cluster_partitions(uri, {}, [{"date": DAY, "region": "eu"}], whole) == {
        "partitions": 0,
        "files_removed": 0,
        "files_added": 0,
    }
    assert _files(uri) == files
    cluster = Clustering("customer_hash", target_file_bytes=4_000)
    got = delta.cluster_partitions(
        uri, {}, [{"date": DAY, "region": "eu"}, {"date": DAY.isoformat(), "region": "eu"}], cluster
    )
    assert got["partitions"] == 1 and got["files_added"] > 1  # the second: already clustered
    by_day = {
        day: [f for f in _files(uri) if f"date={day}" in f]
        for day in (DAY, DAY + dt.timedelta(days=1))
    }
    assert all(is_clustered(f) for f in by_day[DAY])
    assert by_day[DAY + dt.timedelta(days=1)] and not any(
        is_clustered(f) for f in by_day[DAY + dt.timedelta(days=1)]
    )
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 1_503


def test_the_ledgers_object_rows_are_kept_apart_so_an_update_rewrites_only_them(
    tmp_path: Path,
) -> None:
    from pipelines.lake.delta.cluster import LEDGER_OBJECTS_APART

    uri = str(tmp_path / "ledger")
    kinds = ["object"] * 20 + ["batch"] * 20 + ["commit"] * 2
    rows = pa.table(
        {
            "kind": kinds,
            "source_object": [f"landing/o{i:03d}.avro" for i in range(len(kinds))],
            "etag": [f"e{i}" for i in range(len(kinds))],
            "event_id_hashes": [  # a batch's event hashes; other rows hold none
                np.arange(i, i + 500, dtype=np.uint64).tobytes() if k == "batch" else b""
                for i, k in enumerate(kinds)
            ],
            "landing_date": [DAY] * len(kinds),
        }
    )
    for lo in range(0, len(kinds), 7):  # small appended files, as ingest batches leave them
        write_deltalake(uri, rows.slice(lo, 7), partition_by=["landing_date"], mode="append")
    part = {"landing_date": DAY}
    assert delta.compact_partition(uri, {}, part, 4, LEDGER_OBJECTS_APART)
    files = _files(uri)
    assert len(files) == 2 and all(is_clustered(f) for f in files)
    held = {f: pq.read_table(Path(uri) / f)["kind"].to_pylist() for f in files}
    assert sorted(set(k) == {"object"} for k in held.values()) == [False, True]
    assert not delta.compact_partition(uri, {}, part, 4, LEDGER_OBJECTS_APART)  # stays
    adds = _adds(uri)
    sizes = dict(zip(adds["path"].to_pylist(), adds["size_bytes"].to_pylist(), strict=True))
    objects = next(f for f, k in held.items() if set(k) == {"object"})
    metrics = DeltaTable(uri).update(
        updates={"etag": "'moved'"},
        predicate="kind = 'object' AND source_object = 'landing/o003.avro'",
    )
    assert metrics["num_updated_rows"] == 1 and metrics["num_removed_files"] == 1
    assert objects not in _files(uri)  # the objects' file was rewritten, the hashes' kept
    assert sizes[objects] * 5 < sum(sizes.values())
    after = DeltaTable(uri).to_pyarrow_table()
    assert after.num_rows == len(kinds)
    assert after.filter(pc.equal(after["etag"], "moved"))["source_object"].to_pylist() == [
        "landing/o003.avro"
    ]
