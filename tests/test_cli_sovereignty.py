"""Sovereignty of compute on the command line: every subcommand that touches a location's data.

The counterpart of tests/test_sovereignty.py's walk over the Dagster definitions: the
subcommands are taken from the parser, so a new one fails here until it is either given a
refused invocation below (and a ``touches`` declaration in lakehouse/cli.py) or listed as
reading no personal data, with why.
"""

import argparse
import hashlib
import json
from pathlib import Path

import pytest

from lakehouse import cli
from pipelines.sovereignty.compute import COMPUTE_ENV

DAY = "2026-10-05"
# A worker declared US may not process azure-eu's (EU) personal data (compute.may_process).
WORKER = "US"
REFUSED_LOCATION = "azure-eu"

NO_PERSONAL_DATA = {
    "info": "prints the configuration's locations; opens no store",
    "policy": "prints the configured rules and this worker's declaration; opens no store",
    "simulate": "writes synthetic capture objects (no real person's data) and reads none",
    "backfill": "only records a backfill in the Dagster instance; each run it starts is "
    "routed by jurisdiction and each step checks its worker (tests/test_sovereignty.py)",
}


def refused_invocations(home: Path) -> dict[str, list[str]]:
    """Per subcommand, an invocation that processes azure-eu's personal data."""
    tables = home / ".lake" / REFUSED_LOCATION / "tables"
    return {
        "ingest": ["ingest", "--location", REFUSED_LOCATION, "--date", DAY],
        "maintain": ["maintain", "--table", "bronze_events", "--location", REFUSED_LOCATION],
        "scan": ["scan", "--table", "bronze_events", "--location", REFUSED_LOCATION],
        "erase": ["erase", "--customer-id", "eu-000001", "--location", REFUSED_LOCATION],
        "sync": [
            "sync",
            "--from",
            str(tables / "bronze_events"),
            "--to",
            str(home / ".lake" / REFUSED_LOCATION / "copies" / "bronze_events"),
        ],
        "status": ["status", "--json"],
        "quarantine": ["quarantine", "--location", REFUSED_LOCATION, "--date", DAY],
        "demo": ["demo", "--from", DAY, "--to", DAY],
        "run-emulated": ["run-emulated", "--from", DAY, "--to", DAY],
    }


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root``: size, mtime and content hash (a write changes one of them)."""
    return {
        str(p.relative_to(root)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def eu_lake(lake_home, monkeypatch, capsys):
    """A real local lake: a day landed and ingested at azure-eu by an undeclared worker."""
    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    sim = ["simulate", "--from", DAY, "--to", DAY, "--location", REFUSED_LOCATION]
    assert cli.main([*sim, "--events-per-day", "60", "--bad-rate", "0.1"]) == 0
    assert cli.main(["ingest", "--location", REFUSED_LOCATION, "--date", DAY]) == 0
    capsys.readouterr()
    assert (lake_home / ".lake" / REFUSED_LOCATION / "tables" / "bronze_events").is_dir()
    return lake_home


def test_every_subcommand_is_either_checked_or_said_to_read_no_personal_data(tmp_path):
    names = set(subcommands())
    invocations = refused_invocations(tmp_path)
    assert set(NO_PERSONAL_DATA) <= names, "a listed subcommand no longer exists"
    assert set(invocations) <= names, "a refused invocation names no subcommand"
    unlisted = names - set(NO_PERSONAL_DATA) - set(invocations)
    assert not unlisted, (
        f"subcommand(s) {sorted(unlisted)}: give each a `touches` declaration in lakehouse/cli.py "
        "and a refused invocation here, or list it in NO_PERSONAL_DATA saying why"
    )
    for name, sub in subcommands().items():
        declared = sub.get_default("touches") is not None
        assert declared == (name in invocations), f"{name}: touches declared {declared}"


@pytest.mark.parametrize("command", sorted(refused_invocations(Path("."))))
def test_a_worker_of_another_jurisdiction_is_refused_before_a_byte_is_read(
    command, eu_lake, monkeypatch, capsys
):
    argv = refused_invocations(eu_lake)[command]
    ran = []
    handler = subcommands()[command].get_default("handler")
    monkeypatch.setattr(cli, handler.__name__, lambda args: ran.append(args) or {})
    before = snapshot(eu_lake)
    monkeypatch.setenv(COMPUTE_ENV, WORKER)
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"lakehouse {command}: error: "), err
    assert f"location {REFUSED_LOCATION} holds personal data (" in err, err
    assert "of jurisdiction EU" in err and "run it on a worker of EU" in err, err
    assert f"declares jurisdiction {WORKER}" in err and "compute.may_process.US = [US]" in err
    assert "…" not in err, "the refusal is cut short"
    assert ran == [], "the subcommand's work began"
    assert snapshot(eu_lake) == before, "the refused subcommand changed the lake"


@pytest.mark.parametrize("command", ["ingest", "maintain", "sync", "status"])
def test_a_worker_of_the_data_jurisdiction_runs_the_same_invocation(
    command, eu_lake, monkeypatch, capsys
):
    """The control: the refused invocations are real work on this lake for an EU worker."""
    monkeypatch.setenv(COMPUTE_ENV, "EU")
    if command == "status":  # the health view reads every region's location
        monkeypatch.setenv(COMPUTE_ENV, "EU,US,APAC")
    log = eu_lake / ".lake" / REFUSED_LOCATION / "tables" / "bronze_events" / "_delta_log"
    before = snapshot(log)
    assert cli.main(refused_invocations(eu_lake)[command]) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    if command == "maintain":
        assert snapshot(log) != before, "upkeep checkpoints the table"
        assert report["table"] == "bronze_events"
