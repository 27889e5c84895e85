"""``lakehouse scan``: personal data by content in a table, as JSON that never shows a value."""

import json

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakehouse import cli
from pipelines.lake.config import load_config
from tests.helpers import DAY, gold_rows


def _run(capsys, *argv):
    code = cli.main(["scan", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


def test_scan_names_column_detector_and_count_never_a_value(lake_home, capsys):
    uri = load_config("local").location("azure-eu").table_uri("contacts")
    emails = [f"shopper{i}@example.org" for i in range(10)]
    write_deltalake(uri, pa.table({"contact": emails, "sku": ["SKU-0123456789"] * 10}))
    code, report, err = _run(capsys, "--table", "contacts", "--location", "azure-eu")
    assert code == 0, err
    assert report["personal_by_content"] is True and report["jurisdiction"] == "EU"
    assert report["findings"] == [
        {"column": "contact", "detector": "email", "count": 10, "sampled": 10}
    ]
    assert report["files_scanned"] == 1 and report["bytes_read"] > 0
    assert "shopper" not in json.dumps(report)


def test_time_travel_scans_an_older_version_that_still_holds_the_data(lake_home, capsys):
    uri = load_config("local").location("azure-eu").table_uri("notes")
    write_deltalake(uri, pa.table({"note": ["call +49 151 12345678", "ok"]}))
    DeltaTable(uri).delete("note = 'call +49 151 12345678'")
    code, latest, _ = _run(capsys, "--table", "notes", "--location", "azure-eu")
    assert code == 0 and latest["version"] == 1 and latest["findings"] == []
    code, old, _ = _run(capsys, "--table", "notes", "--location", "azure-eu", "--version", "0")
    assert code == 0 and [f["detector"] for f in old["findings"]] == ["phone"]


def test_pii_free_gold_scans_clean(lake_home, capsys):
    uri = load_config("local").location("azure-eu").table_uri("gold_daily_demand")
    write_deltalake(uri, gold_rows(DAY, 200), partition_by=["date"])
    code, report, _ = _run(capsys, "--table", "gold_daily_demand", "--location", "azure-eu")
    assert code == 0 and report["findings"] == [] and report["personal_by_content"] is False
    assert report["rows_scanned"] == 200


def test_scan_of_no_table_is_one_line(lake_home, capsys):
    code, report, err = _run(capsys, "--table", "nothing", "--location", "azure-eu")
    assert code == 1 and report is None and err.count("\n") == 1
    assert "is not a Delta table" in err


def test_a_path_for_a_table_cannot_reach_another_locations_data(lake_home, capsys, monkeypatch):
    cfg = load_config("local")
    uri = cfg.location("azure-eu").table_uri("contacts")
    write_deltalake(uri, pa.table({"contact": ["shopper@example.org"]}))
    monkeypatch.setenv("LAKEHOUSE_COMPUTE_JURISDICTION", "US")  # a US worker
    for command in (
        ["scan", "--table", "../../azure-eu/tables/contacts", "--location", "aws-us"],
        ["quarantine", "--table", "../../azure-eu/tables/bronze_quarantine", "--location",
         "aws-us", "--date", DAY.isoformat()],
    ):  # fmt: skip
        assert cli.main(command) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        assert "is not a name (letters, digits, _ . -; no path or '/')" in err, err


def test_quarantine_of_a_table_that_is_not_there_is_an_error_not_a_clean_day(lake_home, capsys):
    argv = ["quarantine", "--table", "nosuch", "--location", "aws-us", "--date", DAY.isoformat()]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Delta table 'nosuch' at location aws-us" in err


def test_a_version_the_table_does_not_have_is_one_line(lake_home, capsys):
    uri = load_config("local").location("azure-eu").table_uri("notes")
    write_deltalake(uri, pa.table({"note": ["ok"]}))
    code, report, err = _run(
        capsys, "--table", "notes", "--location", "azure-eu", "--version", "99"
    )
    assert code == 1 and report is None and err.count("\n") == 1
    assert f"{uri}: no version 99 (versions 0..0)" in err
