"""`lakehouse erase` on a real local lake: the subject in no file afterwards, and a receipt."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lakehouse import cli
from pipelines.ingest import partition as ingest
from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from pipelines.replication.sync import sync
from pipelines.sovereignty.compute import COMPUTE_ENV
from tests.erasure_lake import build, files_holding, subject
from tests.helpers import DAY, config_with

LOCATION = "azure-eu"


@pytest.fixture
def lake(lake_home, monkeypatch, pii_key):
    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    return build("local", LOCATION, pii_key, "EUR")


def test_an_erased_subject_is_found_in_no_file_and_the_rest_stays(lake, capsys):
    loc, storage = lake["location"], lake["storage"]
    opts = loc.storage_options()
    before = files_holding(storage, lake["needles"])
    areas = {p.split("/")[0] + "/" + p.split("/")[1] for p in before}
    assert {"landing/capture", "tables/bronze_events", "tables/bronze_quarantine"} <= areas
    assert "tables/silver_events" in areas and any("checkpoint" in p for p in before), before
    bronze = loc.table_uri("bronze_events")
    rows_before = DeltaTable(bronze).to_pyarrow_table().num_rows
    customer, email = subject(loc)

    argv = ["erase", "--customer-id", customer, "--email", email.upper(), "--location", LOCATION]
    assert cli.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    report = json.loads(out)
    assert customer not in out and email not in out

    assert files_holding(storage, lake["needles"]) == []  # raw and decoded, every file
    assert report["verified_absent"] is True
    (place,) = report["locations"]
    tables = {t["table"]: t for t in place["tables"]}
    assert tables["bronze_events"]["rows_deleted"] == 3
    assert tables["bronze_quarantine"]["rows_deleted"] == 1
    assert tables["silver_events"]["rows_deleted"] == 1
    assert tables["silver_events"]["checkpoints_rewritten"], "the checkpoint's bounds held it"
    assert place["landing"]["rewritten"][0]["records"] == 4
    assert set(place["scanned"]) >= {"landing", "data_files", "delta_logs", "checkpoints"}
    assert place["files_holding_subject"] == 0 and place["bytes_scanned"] > 0
    now = DeltaTable(bronze).to_pyarrow_table()
    assert now.num_rows == rows_before - 3
    # time travel: the version before the subject landed is kept and whole; the one that held
    # them cost its file (erasure wins over retention) and the receipt says so
    clean = lake["bronze_clean_version"]
    assert clean not in tables["bronze_events"]["versions_lost"]
    old = DeltaTable(bronze, version=clean).to_pyarrow_table()
    assert old.num_rows == lake["bronze_rows_clean"]
    assert not pc.any(pc.equal(old["customer_id"], customer)).as_py()
    for version in tables["bronze_events"]["versions_lost"]:
        with pytest.raises(FileNotFoundError):
            DeltaTable(bronze, version=version).to_pyarrow_table()

    receipts = DeltaTable(loc.table_uri("erasure_receipts")).to_pyarrow_table().to_pylist()
    (receipt,) = receipts
    assert receipt["request_id"] == report["request_id"] and receipt["verified_absent"]
    assert receipt["files_holding_subject"] == 0 and receipt["files_scanned"] > 10
    assert len(receipt["subject_hash"]) == 64
    assert customer not in str(receipt) and email not in str(receipt)
    assert json.loads(receipt["tables"])[0]["table"] == "bronze_events"

    # the rewritten landing object is not taken for a new one: nothing re-ingested, counts hold
    again = ingest.ingest_partition(loc, opts, DAY)
    assert again.result.objects == 0 and again.reconciled, again.report()
    assert DeltaTable(bronze).to_pyarrow_table().num_rows == rows_before - 3
    # and a full re-ingest from the landing area gives the same rows, without the subject
    full = ingest.ingest_partition(loc, opts, DAY, full=True)
    assert full.reconciled, full.report()
    assert delta.table_rows(bronze, opts) == rows_before - 3


def test_erasing_again_is_safe_and_finds_nothing(lake, capsys):
    customer, _ = subject(lake["location"])
    argv = ["erase", "--customer-id", customer, "--location", LOCATION]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified_absent"] and report["files_rewritten"] == 0


def test_erasing_everywhere_keeps_the_subjects_hash_only_where_they_were(lake, capsys):
    cfg = load_config("local")
    customer, email = subject(lake["location"])
    assert cli.main(["erase", "--customer-id", customer, "--email", email]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified_absent"]
    assert {p["location"] for p in report["locations"]} == set(cfg.locations)
    hashes = {}
    for loc in cfg.locations.values():
        (receipt,) = DeltaTable(loc.table_uri("erasure_receipts")).to_pyarrow_table().to_pylist()
        assert receipt["request_id"] == report["request_id"] and receipt["verified_absent"]
        assert receipt["files_scanned"] >= 0 and receipt["files_holding_subject"] == 0
        hashes[loc.name] = receipt["subject_hash"]
    # a keyed hash is the subject's pseudonymized data: it stays in their jurisdiction's
    # receipt; the locations only scanned to prove absence keep the request, not the hash
    assert hashes == {
        name: report["subject_hash"] if name == LOCATION else None for name in cfg.locations
    }


def test_without_the_key_erase_refuses_in_one_line(lake, monkeypatch, capsys):
    monkeypatch.delenv("LAKEHOUSE_PII_KEY")
    customer, _ = subject(lake["location"])
    assert cli.main(["erase", "--customer-id", customer, "--location", LOCATION]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "LAKEHOUSE_PII_KEY" in err and customer not in err


def test_defer_records_a_request_for_the_sensor_and_erases_nothing(lake, capsys):
    from pipelines.erasure import requests

    loc, storage = lake["location"], lake["storage"]
    customer, email = subject(loc)
    holding = files_holding(storage, lake["needles"])
    argv = ["erase", "--customer-id", customer, "--email", email, "--location", LOCATION]
    assert cli.main([*argv, "--defer"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "pending" and customer not in str(report)
    assert [i for i, _ in requests.waiting(loc, loc.storage_options())] == [report["request_id"]]
    assert set(holding) <= set(files_holding(storage, lake["needles"]))  # + the request's row


def test_deferring_again_reports_the_pending_request_and_records_nothing(lake, capsys):
    from pipelines.erasure import requests

    loc = lake["location"]
    customer, email = subject(loc)
    argv = ["erase", "--customer-id", customer, "--location", LOCATION, "--defer"]

    def defer(*extra: str) -> dict:
        assert cli.main([*argv, *extra]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert customer not in out and email.lower() not in out.lower()
        return json.loads(out)

    first = defer("--email", email)
    assert first["recorded"] is True
    requests_uri = loc.table_uri("erasure_requests")
    version = delta.table_version(requests_uri, {})
    # the same identifiers (the e-mail compared as silver hashes it): the same request
    again = defer("--email", f" {email.upper()} ")
    assert again["request_id"] == first["request_id"] and again["recorded"] is False
    assert again["requested_at"] == first["requested_at"]
    assert delta.table_version(requests_uri, {}) == version  # no commit, no row
    # another set of identifiers is another request
    other = defer()
    assert other["recorded"] is True and other["request_id"] != first["request_id"]
    waiting = [i for i, _ in requests.waiting(loc, loc.storage_options())]
    assert waiting == [first["request_id"], other["request_id"]]
    assert DeltaTable(requests_uri).to_pyarrow_table().num_rows == 2
    files = list(Path(loc.root_uri(), "tables", "erasure_requests").rglob("*.parquet"))
    assert len(files) == 2  # the repeat left no file behind either


def test_two_recordings_of_one_subject_at_once_leave_one_pending_request(lake_home, monkeypatch):
    """The loser of the commit race checks again on the winner's version (forced here)."""
    from pipelines.erasure import requests

    loc = load_config("local").location(LOCATION)
    opts = loc.storage_options()
    mine = requests.ErasureRequest.new("eu-000042", "c42@eu.example.com")
    theirs = requests.ErasureRequest.new("eu-000042", "C42@eu.example.com ")
    read_rows = delta.read_rows
    raced: list[requests.ErasureRequest | None] = []

    def read_then_lose(table):
        rows = read_rows(table)
        if not raced:  # mine has checked this version: theirs records before mine commits
            raced.append(None)
            raced[0] = requests.submit(loc, opts, theirs)
        return rows

    monkeypatch.setattr(delta, "read_rows", read_then_lose)
    held = requests.submit(loc, opts, mine)
    assert raced == [theirs]
    assert held.request_id == theirs.request_id != mine.request_id
    assert [i for i, _ in requests.waiting(loc, opts)] == [theirs.request_id]
    # and without forcing: eight recordings in eight threads, one request
    monkeypatch.setattr(delta, "read_rows", read_rows)
    start = threading.Barrier(8)

    def record(n: int) -> str:
        request = requests.ErasureRequest.new("eu-000777", None)
        start.wait()
        return requests.submit(loc, opts, request).request_id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(record, range(8)))
    assert len(ids) == 1
    assert len(requests.waiting(loc, opts)) == 2  # theirs, and the one of eu-000777


def test_a_replica_of_a_personal_table_in_its_jurisdiction_is_erased_there_too(
    lake_home, monkeypatch, pii_key, tmp_path, capsys
):
    """bronze_events replicated to a second EU location: erased at both, the replica in sync."""

    def edit(data):
        env = data["environments"]["local"]
        eu = next(x for x in env["locations"] if x["name"] == LOCATION)
        env["locations"].append({**eu, "name": "azure-eu-dr", "root": ".lake/azure-eu-dr"})
        data["replication"].append(
            {"table": "bronze_events", "from": [LOCATION], "to": "azure-eu-dr"}
        )

    config_with(tmp_path, monkeypatch, edit)
    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    lake = build("local", LOCATION, pii_key, "EUR")
    cfg = load_config()
    (replica,) = [r for r in cfg.replicas() if r.table == "bronze_events"]
    assert replica.target.jurisdiction == "EU"
    sync(cfg, replica.source_uri, replica.target_uri)
    dr = open_storage(replica.target_uri, {}, create=False)
    assert files_holding(dr, lake["needles"])  # the replica holds the subject

    customer, email = subject(lake["location"])
    argv = ["erase", "--customer-id", customer, "--email", email, "--location", LOCATION]
    assert cli.main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["verified_absent"] is True
    (place,) = report["locations"]
    (entry,) = [t for t in place["tables"] if t.get("replica") == replica.name]
    assert entry["location"] == "azure-eu-dr" and entry["files_removed"]
    assert any(k.startswith(f"replica {replica.name}") for k in place["scanned"])
    assert files_holding(dr, lake["needles"]) == []  # found in no file of the replica
    # still a replica: its rows are the source's, and the next sync finds it not diverged
    source = DeltaTable(replica.source_uri).to_pyarrow_table().sort_by("event_id")
    assert DeltaTable(replica.target_uri).to_pyarrow_table().sort_by("event_id").equals(source)
    again = sync(cfg, replica.source_uri, replica.target_uri)
    assert again.versions_behind_after == 0
