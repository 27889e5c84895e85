"""Erasure with short, odd or near-miss identifiers, and corrupt objects, on a real local lake.

A too-short id matched as a "token" in unrelated records (``1``, ``%``), a prefix of another id
was reported found by a substring read-back, a corrupt landing object's erasure left its ledger
counting a quarantine row that was gone, and a checkpoint scrub nulled paths.
"""

import datetime as dt
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse import cli
from pipelines.erasure.requests import ErasureRequest, RequestError
from pipelines.ingest import capture
from pipelines.ingest import partition as ingest
from pipelines.lake import delta
from pipelines.privacy.erase import Subject, erase_from_table, scrub_checkpoint
from pipelines.sovereignty.compute import COMPUTE_ENV
from tests.erasure_lake import build, files_holding, subject
from tests.helpers import DAY

LOCATION = "azure-eu"


@pytest.fixture
def lake(lake_home, monkeypatch, pii_key):
    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    return build("local", LOCATION, pii_key, "EUR")


def _snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(str(p.relative_to(root)).startswith(s) for s in skip)
    }


# (a) an identifier an erasure cannot safely match is refused before anything is read


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--customer-id", "1"], "--customer-id: 1 character(s)"),
        (["--customer-id", "%"], "--customer-id: 1 character(s)"),
        (["--customer-id", "42"], "--customer-id: 2 character(s)"),
        (["--customer-id", "eu 00001"], "--customer-id: 1 character(s) other than"),
        (["--customer-id", "eu-0000%1"], "--customer-id: 1 character(s) other than"),
        (["--customer-id", "eu-000001", "--email", "nobody"], "--email: not an e-mail"),
        (["--customer-id", "eu-000001", "--email", "a@b"], "--email: not an e-mail"),
        (["--customer-id", "eu-000001", "--email", "a b@eu.example.com"], "--email"),
    ],
)
def test_an_ill_formed_identifier_is_refused_before_anything_changes(lake, capsys, argv, field):
    root = Path(lake["location"].root_uri())
    before = _snapshot(root)
    for extra in ([], ["--defer"]):
        assert cli.main(["erase", *argv, "--location", LOCATION, *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("lakehouse erase: error: "), err
        assert field in err, err
        assert not [v for v in argv[1::2] if len(v) > 2 and v in err], err  # never echoed
    assert _snapshot(root) == before  # every file's bytes, nothing added


def test_a_request_refuses_an_ill_formed_identifier_however_it_is_made():
    with pytest.raises(RequestError, match=r"--customer-id: 3 character\(s\)"):
        ErasureRequest.new(" abc ")
    with pytest.raises(ValueError, match="--customer-id"):  # the sensor's path: a stored row
        ErasureRequest("er-1", "%", None, dt.datetime.now(dt.UTC))
    with pytest.raises(ValueError, match="--email"):
        ErasureRequest.new("eu-000001", "x@@eu.example.com")
    long = "z" * 500 + "%"
    with pytest.raises(ValueError) as refused:
        ErasureRequest.new(long)
    assert "z" not in str(refused.value) and "\n" not in str(refused.value)
    ok = ErasureRequest.new(" eu-000001 ", "Customer1@EU.example.com")
    assert ok.customer_id == "eu-000001" and ok.email == "Customer1@EU.example.com"
    assert ErasureRequest.new("us:0007.a_b").customer_id == "us:0007.a_b"


# (b) a subject's record in a corrupt landing object: erased, the partition still reconciles


def _land_corrupt(loc, storage, content: bytes) -> str:
    """An undecodable object landed late on DAY; its key."""
    at = dt.datetime(DAY.year, DAY.month, DAY.day, 23, 59, 59, tzinfo=dt.UTC)
    key = capture.object_key(loc.landing, capture.Batch(at, []), 98)
    storage.put(key, content)
    return key


def test_a_subject_in_a_corrupt_landing_object_is_erased_and_the_partition_reconciles(lake, capsys):
    loc, storage = lake["location"], lake["storage"]
    opts = loc.storage_options()
    customer, email = subject(loc)
    corrupt = b"Obj\x01 truncated capture {" + customer.encode() + b"} \xff\xfe"
    key = _land_corrupt(loc, storage, corrupt)
    landed = ingest.ingest_partition(loc, opts, DAY)
    assert landed.result.corrupt_objects == 1 and landed.reconciled, landed.report()
    quarantined = landed.totals["quarantined"]
    bronze_rows = delta.table_rows(loc.table_uri("bronze_events"), opts)

    argv = ["erase", "--customer-id", customer, "--email", email, "--location", LOCATION]
    assert cli.main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    (place,) = report["locations"]
    assert [d["key"] for d in place["landing"]["deleted"]] == [key]
    tables = {t["table"]: t for t in place["tables"]}
    assert tables["bronze_quarantine"]["rows_deleted"] == 2  # the bad record and the object

    # the ledger no longer counts what the erasure deleted: every run reconciles
    for _ in range(2):
        again = ingest.ingest_partition(loc, opts, DAY)
        assert again.reconciled, again.report()
        assert again.result.objects == 0 and again.result.corrupt_objects == 0
    assert again.totals["quarantined"] == quarantined - 2
    assert again.table_rows["quarantine"] == quarantined - 2
    t = again.totals
    assert t["landed"] == t["ingested"] + t["quarantined"] + t["duplicates_dropped"]
    (entry,) = [o for o in again.objects if o.key == key]
    assert (entry.records, entry.quarantined) == (0, 0)
    # emptied in its place, not deleted: the ledger's object is still there
    assert storage.get(key) != corrupt and customer.encode() not in storage.get(key)
    assert files_holding(storage, lake["needles"]) == []
    # a full re-ingest reads the emptied object again: same rows, reconciled
    full = ingest.ingest_partition(loc, opts, DAY, full=True)
    assert full.reconciled, full.report()
    assert delta.table_rows(loc.table_uri("bronze_events"), opts) == bronze_rows - 3


def test_a_corrupt_object_without_the_subject_is_left_alone(lake, capsys):
    loc, storage = lake["location"], lake["storage"]
    opts = loc.storage_options()
    customer, _ = subject(loc)
    corrupt = b"%% 100% not avro {" + customer.encode() + b"9} 1 %"  # a longer id, glued
    key = _land_corrupt(loc, storage, corrupt)
    assert ingest.ingest_partition(loc, opts, DAY).reconciled
    assert cli.main(["erase", "--customer-id", customer, "--location", LOCATION]) == 0
    place = json.loads(capsys.readouterr().out)["locations"][0]
    assert place["landing"]["deleted"] == [] and storage.get(key) == corrupt
    assert ingest.ingest_partition(loc, opts, DAY).reconciled


# (c) a prefix of a real customer id is not found, and nothing is rewritten


def test_a_prefix_of_a_real_id_is_not_found_and_nothing_is_rewritten(lake, capsys):
    loc = lake["location"]
    root = Path(loc.root_uri())
    receipts = "tables/erasure_receipts"
    before = _snapshot(root, skip=(receipts,))
    # eu-04999 prefixes four customers' ids (eu-049990...), o0@x.or an address (o0@x.org)
    argv = ["erase", "--customer-id", "eu-04999", "--email", "o0@x.or", "--location", LOCATION]
    assert cli.main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["verified_absent"] is True and report["files_rewritten"] == 0
    (place,) = report["locations"]
    assert place["files_holding_subject"] == 0
    assert all(t["rows_deleted"] == 0 for t in place["tables"])
    assert not place["landing"]["rewritten"] and not place["landing"]["deleted"]
    assert _snapshot(root, skip=(receipts,)) == before  # every other file's bytes unchanged
    # the real customer is still found where they are (the prefix erased none of them)
    assert files_holding(lake["storage"], [b"eu-049990"])


# (d) a checkpoint scrub changes statistics only, and the table stays readable


def _checkpoint(uri: str) -> Path:
    (path,) = sorted(Path(uri, "_delta_log").glob("*.checkpoint.parquet"))
    return path


def _structure(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        bare = dict(row)
        for kind in ("add", "remove"):
            if isinstance(bare.get(kind), dict):
                bare[kind] = {k: v for k, v in bare[kind].items() if k != "stats"}
        out.append(bare)
    return out


def _partitioned(uri: str) -> None:
    """A table whose partition values, paths and bounds hold ``c-000042`` and ``1``."""
    for shard, ids in (("1", ["c-000042", "c-000001"]), ("c-000042", ["c-000042"])):
        rows = pa.table(
            {"customer_id": ids, "shard": [shard] * len(ids), "qty": list(range(len(ids)))}
        )
        write_deltalake(uri, rows, mode="append", partition_by=["shard"])
    write_deltalake(
        uri, pa.table({"customer_id": ["c-000002"], "shard": ["2"], "qty": [9]}), mode="append"
    )
    DeltaTable(uri).create_checkpoint()


@pytest.mark.parametrize("values", [{"1"}, {"c-000042"}, {"c-000042", "1", "shard"}])
def test_a_checkpoint_scrub_changes_only_statistics(tmp_path, values):
    uri = str(tmp_path / "t")
    _partitioned(uri)
    data = _checkpoint(uri).read_bytes()
    before = pq.read_table(io.BytesIO(data))
    scrubbed = scrub_checkpoint(data, values)
    if scrubbed is None:  # nothing a scrub may change held a value ("1": no string bound)
        assert values == {"1"}
        return
    after = pq.read_table(io.BytesIO(scrubbed))
    assert after.schema == before.schema and after.num_rows == before.num_rows
    assert _structure(after.to_pylist()) == _structure(before.to_pylist())
    stats = [r["add"]["stats"] for r in after.to_pylist() if r["add"]]
    assert stats and all('"c-000042"' not in s for s in stats)
    assert all(json.loads(s)["numRecords"] >= 1 for s in stats)  # counts kept
    assert all(r["add"]["path"] for r in after.to_pylist() if r["add"])


def test_erasing_keeps_the_table_readable_at_its_latest_and_kept_versions(tmp_path):
    uri = str(tmp_path / "t")
    _partitioned(uri)
    checkpoint = _checkpoint(uri)
    structure = _structure(pq.read_table(checkpoint).to_pylist())
    for who in ("1", "c-000042"):
        report = erase_from_table(uri, {}, Subject({"customer_id": (who,)}))
        latest = DeltaTable(uri)
        assert latest.version() == report.version_after
        rows = latest.to_pyarrow_table()
        assert who not in rows["customer_id"].to_pylist()
        for version in range(report.version_after + 1):
            if version not in report.versions_lost:
                DeltaTable(uri, version=version).to_pyarrow_table()  # reads whole
    # the last erasure rewrote the checkpoint's bounds, never its structure
    assert str(checkpoint.relative_to(uri)) in report.checkpoints_rewritten
    assert _structure(pq.read_table(checkpoint).to_pylist()) == structure
    assert sorted(DeltaTable(uri).to_pyarrow_table()["customer_id"].to_pylist()) == [
        "c-000001",
        "c-000002",
    ]
