"""`lakehouse erase` on moto (S3), Azurite and fake-gcs-server: the subject in no object after."""

import json

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder

from lakehouse import cli
from pipelines.lake import delta, tables
from pipelines.sovereignty.compute import COMPUTE_ENV
from tests.erasure_lake import build, files_holding, subject

CASES = [
    pytest.param("aws-us", "USD", marks=pytest.mark.s3),
    pytest.param("azure-eu", "EUR", marks=pytest.mark.azure),
    pytest.param("gcp-apac", "SGD", marks=pytest.mark.gcs),
]


@pytest.mark.parametrize(("location", "currency"), CASES)
def test_erase_on_an_emulated_cloud(emulated_env, location, currency, pii_key, monkeypatch, capsys):
    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    lake = build("emulated", location, pii_key, currency)
    storage = lake["storage"]
    assert len(files_holding(storage, lake["needles"])) >= 5
    customer, email = subject(lake["location"])
    argv = ["erase", "--customer-id", customer, "--email", email, "--location", location]
    assert cli.main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["verified_absent"] and report["files_rewritten"] >= 5
    assert files_holding(storage, lake["needles"]) == []
    (place,) = report["locations"]
    assert {t["table"]: t["rows_deleted"] for t in place["tables"]}["bronze_events"] == 3
    assert place["landing"]["ledger_rows_updated"] >= 1
    # every table the erasure rewrote stays readable by an outside reader, every file it names
    for name in (tables.BRONZE.name, tables.QUARANTINE.name, "silver_events", tables.LEDGER.name):
        uri = lake["location"].table_uri(name)
        target, opts = delta.deltalake_target(uri, lake["location"].storage_options())
        table = DeltaTable(target, storage_options=opts or None)
        rows = QueryBuilder().register("t", table).execute("SELECT * FROM t")
        assert pa.RecordBatchReader.from_stream(rows).read_all().num_rows > 0, name
