"""The lakehouse command: JSON reports, clear errors, non-zero exits."""

import json

import pytest

from lakehouse.cli import main


def test_info_lists_locations(capsys):
    assert main(["--env", "local", "info"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [loc["name"] for loc in report["locations"]] == ["aws-us", "azure-eu", "gcp-apac"]


def test_simulate_then_ingest_reconciles(lake_home, capsys):
    assert (
        main(
            [
                "simulate",
                "--from",
                "2026-10-05",
                "--to",
                "2026-10-06",
                "--location",
                "aws-us",
                "--events-per-day",
                "200",
                "--bad-rate",
                "0.05",
                "--corrupt-per-day",
                "1",
                "--drift",
                "us:2026-10-06:price=1.3,mix=electronics*2",
            ]
        )
        == 0
    )
    sim = json.loads(capsys.readouterr().out)
    assert sim["regions"]["us"]["corrupt_objects"] == 2
    assert (
        main(["ingest", "--location", "aws-us", "--date", "2026-10-05", "--to", "2026-10-06"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["reconciled"] is True
    assert [p["landing_date"] for p in report["partitions"]] == ["2026-10-05", "2026-10-06"]
    assert sum(p["corrupt_objects"] for p in report["partitions"]) == 2


def test_unknown_location_is_a_clear_error(lake_home, capsys):
    assert main(["ingest", "--location", "mars-1", "--date", "2026-10-05"]) == 1
    err = capsys.readouterr().err
    assert "unknown lake location 'mars-1'" in err and "aws-us" in err


def test_bad_drift_spec_names_the_knob(capsys):
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "simulate",
                "--from",
                "2026-10-05",
                "--to",
                "2026-10-05",
                "--drift",
                "us:2026-10-05:heat=2",
            ]
        )
    assert exc.value.code == 2
    assert "unknown drift knob 'heat'" in capsys.readouterr().err


def test_missing_env_placeholder_names_the_variable(monkeypatch, capsys):
    monkeypatch.delenv("LAKEHOUSE_AWS_BUCKET", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert main(["--env", "prod", "ingest", "--location", "aws-us", "--date", "2026-10-05"]) == 1
    assert "needs environment variable LAKEHOUSE_AWS_BUCKET" in capsys.readouterr().err
