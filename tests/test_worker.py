"""The ingest worker (``lakehouse ingest --follow``): exactly once through kills, two workers,
SIGTERM, sovereignty, and what it reports to Dagster (the instance in DAGSTER_HOME).

Tiny data, real processes: each worker is the CLI in a subprocess, synchronised on the lines
it writes (a commit) and on its exit (``--max-idle-seconds``), never on a timer.
"""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from pipelines.ingest import ledger, parse
from pipelines.lake import delta
from pipelines.lake.config import PROJECT_ROOT, load_config

pytestmark = pytest.mark.slow

TODAY = dt.datetime.now(dt.UTC).date()


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    home = tmp / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    # Create the instance's storage once: two workers starting on a fresh SQLite instance would
    # both run its schema migration (alembic then finds two heads). A deployment's instance
    # (PostgreSQL, or the webserver's URL) exists before its workers start.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(tmp),
        "LAKEHOUSE_ENV": "local",
        "LAKEHOUSE_START_DATE": (TODAY - dt.timedelta(days=5)).isoformat(),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(PROJECT_ROOT),
        **extra,
    }
    env.pop("LAKEHOUSE_COMPUTE_JURISDICTION", None)
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _land(
    env: dict[str, str],
    events: int = 1500,
    seed: int = 7,
    day: dt.date = TODAY,
    location: str = "aws-us",
) -> None:
    """Simulated objects of ``day`` (keys follow the day: landing a day twice rewrites them)."""
    day = day.isoformat()
    out = _cli(
        env, "simulate", "--from", day, "--to", day, "--location", location,
        "--events-per-day", str(events), "--bad-rate", "0.02", "--seed", str(seed),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def _worker(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lakehouse.cli", "ingest", "--follow", "--location", "aws-us"]
    cmd += ["--linger-seconds", "0", "--poll-seconds", "0.2", "--batch-objects", "1", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=open(log, "ab"))


def _wait_for(log: Path, text: str, proc: subprocess.Popen, times: int = 1) -> None:
    """Until the worker's log holds ``text`` ``times`` times (or it exits, or 180 s pass)."""
    deadline = time.time() + 180
    while time.time() < deadline:
        if log.exists() and log.read_text().count(text) >= times:
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged {times}x in time: {log.read_text()[-2000:]}")


def _landing_keys(tmp: Path, location: str = "aws-us") -> set[str]:
    root = tmp / ".lake" / location
    return {str(p.relative_to(root)) for p in (root / "landing").rglob("*") if p.is_file()}


def _exactly_once(
    tmp: Path, env: dict[str, str], first: dt.date = TODAY, location: str = "aws-us"
) -> dict[str, dict[str, int]]:
    """Every landed object in the ledger once; counts reconcile; no event id twice in bronze.

    The dates looked at run from ``first`` to two days after today.
    """
    os.environ["LAKEHOUSE_HOME"] = str(tmp)
    loc = load_config("local").location(location)
    keys: list[str] = []
    totals = {}
    for day in [first + dt.timedelta(days=i) for i in range((TODAY - first).days + 3)]:
        part = {"landing_date": day, "region": loc.region}
        state = ledger.read_state(loc.table_uri(ledger.LEDGER_TABLE), {}, part)
        if not state.objects:
            continue
        assert not state.pending()
        keys += [o.key for o in state.objects]
        t = state.totals()
        assert t["landed"] == t["ingested"] + t["quarantined"] + t["duplicates_dropped"]
        ids = delta.read_partition(loc.table_uri("bronze_events"), {}, part, columns=["event_id"])
        assert ids.num_rows == t["ingested"]
        hashes = parse.key_hashes(ids["event_id"])
        assert len(np.unique(hashes)) == len(hashes), "an event id twice in bronze"
        q = delta.partition_rows(loc.table_uri("bronze_quarantine"), {}, part)
        assert q == t["quarantined"]
        totals[f"{day.isoformat()}|{loc.region}"] = t
    assert len(keys) == len(set(keys))
    assert set(keys) == _landing_keys(tmp, location)
    return totals


def _reported(env: dict[str, str], totals: dict[str, dict[str, int]]) -> None:
    """Dagster's latest runless materialization of each partition says the ledger's totals."""
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for key, t in totals.items():
            recs = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey("bronze_events"), asset_partitions=[key]
                ),
                limit=1,
                ascending=False,
            ).records
            assert recs, f"{key} not reported"
            assert recs[0].run_id == "", "reported without a run"  # Dagster's runless id
            meta = recs[0].asset_materialization.metadata
            assert {k: meta[k].value for k in t} == t
            for asset, check in CHECKS:
                history = instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(dg.AssetKey(asset), check), limit=500
                )
                evaluations = [
                    r.event.dagster_event.event_specific_data
                    for r in history
                    if r.event is not None and r.event.dagster_event is not None
                ]
                mine = [e for e in evaluations if e.metadata["partition"].value == key]
                assert mine and all(e.passed for e in mine), (check, key)


CHECKS = [
    ("bronze_events", "bronze_events_expectations"),
    ("bronze_events", "bronze_events_reconciliation"),
    ("bronze_quarantine", "bronze_quarantine_expectations"),
]


def test_sigkill_and_restart_lose_nothing_and_double_nothing(tmp_path):
    env = _env(tmp_path)
    _land(env, 3000)
    log = tmp_path / "worker.log"
    for kill in range(3):  # killed right after a commit, while the next batch is in flight
        proc = _worker(env, log)
        _wait_for(log, "committed batch", proc, times=kill + 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    _land(env, 500, day=TODAY + dt.timedelta(days=1))  # more lands while no worker runs
    proc = _worker(env, log, "--max-idle-seconds", "1")
    assert proc.wait(300) == 0, log.read_text()[-3000:]
    report = json.loads(proc.stdout.read())
    assert report["worker"]["state"] == "stopped"
    _reported(env, _exactly_once(tmp_path, env))


def test_two_workers_share_a_location(tmp_path):
    env = _env(tmp_path)
    _land(env, 3000)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = _worker(env, log_a, "--max-idle-seconds", "2")
    b = _worker(env, log_b, "--max-idle-seconds", "2")
    assert a.wait(300) == 0, log_a.read_text()[-2000:]
    assert b.wait(300) == 0, log_b.read_text()[-2000:]
    _reported(env, _exactly_once(tmp_path, env))


FEWER_BATCHES = ("--batch-objects", "16")  # what is tested here is per date, not per batch


def _committed_dates(log: Path) -> set[str]:
    """The landing dates a worker's log says it committed (``... aws-us DATE committed ...``)."""
    out = set()
    for line in log.read_text().splitlines():
        words = line.split()
        if "committed" in words and words[words.index("committed") - 2] == "aws-us":
            out.add(words[words.index("committed") - 1])
    return out


def test_two_sharded_workers_split_the_dates_each_ingested_once(tmp_path):
    env = _env(tmp_path)
    days = [TODAY - dt.timedelta(days=i) for i in (2, 1, 0)]
    for seed, day in enumerate(days):
        _land(env, 600, seed=seed, day=day)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [
        _worker(env, log, "--shard", f"{k}/2", "--max-idle-seconds", "2", *FEWER_BATCHES)
        for k, log in enumerate(logs)
    ]
    for proc, log in zip(workers, logs, strict=True):
        assert proc.wait(300) == 0, log.read_text()[-2000:]
    mine = [_committed_dates(log) for log in logs]
    assert mine[0] and mine[1], "both workers did work"
    assert not mine[0] & mine[1], "a date committed by both workers"
    for k in (0, 1):  # worker k took only the dates whose day number is k modulo 2
        assert {dt.date.fromisoformat(d).toordinal() % 2 for d in mine[k]} == {k}
    totals = _exactly_once(tmp_path, env, first=days[0])
    assert {key.split("|")[0] for key in totals} == mine[0] | mine[1]  # every date, by one
    _reported(env, totals)


def test_a_bad_shard_is_refused_naming_the_option(tmp_path):
    env = _env(tmp_path)
    out = _cli(env, "ingest", "--follow", "--location", "aws-us", "--shard", "2/2")
    assert out.returncode == 2
    assert "--shard" in out.stderr and "'2/2' is not K/N" in out.stderr


def test_a_restarted_worker_goes_back_for_an_older_backlog(tmp_path):
    env = _env(tmp_path)
    _land(env, 300)
    log = tmp_path / "worker.log"
    proc = _worker(env, log, "--days-back", "1", "--max-idle-seconds", "1", *FEWER_BATCHES)
    assert proc.wait(300) == 0, log.read_text()[-2000:]
    before = _committed_dates(log)
    assert TODAY.isoformat() in before
    old = TODAY - dt.timedelta(days=4)  # landed while no worker ran, beyond --days-back
    _land(env, 300, seed=3, day=old)
    proc = _worker(env, log, "--days-back", "1", "--max-idle-seconds", "1", *FEWER_BATCHES)
    assert proc.wait(300) == 0, log.read_text()[-2000:]
    assert old.isoformat() in _committed_dates(log) - before
    _reported(env, _exactly_once(tmp_path, env, first=old - dt.timedelta(days=1)))


def test_sigterm_finishes_the_batch_in_flight_and_exits_0(tmp_path):
    env = _env(tmp_path)
    _land(env, 3000)
    log = tmp_path / "worker.log"
    proc = _worker(env, log)
    _wait_for(log, "committed batch", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0, log.read_text()[-2000:]
    assert "SIGTERM: finishing the batch in flight" in log.read_text()
    os.environ["LAKEHOUSE_HOME"] = str(tmp_path)
    loc = load_config("local").location("aws-us")
    state = ledger.read_state(
        loc.table_uri(ledger.LEDGER_TABLE), {}, {"landing_date": TODAY, "region": loc.region}
    )
    assert state.committed and not state.pending()  # nothing claimed and left behind
    status = json.loads(proc.stdout.read())["worker"]
    assert status["state"] == "stopped" and status["commits"] >= 1


def test_a_worker_for_another_jurisdiction_refuses_before_a_read(tmp_path):
    env = _env(tmp_path, LAKEHOUSE_COMPUTE_JURISDICTION="EU")
    _land(env, 200)
    out = _cli(env, "ingest", "--follow", "--location", "aws-us", "--max-idle-seconds", "1")
    assert out.returncode == 1
    assert "refused" in out.stderr and "US" in out.stderr and "EU" in out.stderr
    assert not (tmp_path / ".lake" / "aws-us" / "_workers").exists()  # no state, no read
    assert not (tmp_path / ".lake" / "aws-us" / "tables").exists()


def test_a_worker_without_its_dagster_instance_refuses_at_start_in_one_line(tmp_path):
    env = _env(tmp_path)
    _land(env, 200)
    env.pop("DAGSTER_HOME")  # and no .dagster/ under LAKEHOUSE_HOME: nowhere to report to
    out = _cli(env, "ingest", "--follow", "--location", "aws-us", "--max-idle-seconds", "1")
    assert out.returncode == 1
    lines = [x for x in out.stderr.strip().splitlines() if "COMPUTE_JURISDICTION" not in x]
    assert lines == [  # (the unset jurisdiction's notice apart)
        f"lakehouse ingest: error: the project's Dagster instance {tmp_path / '.dagster'} "
        "(DAGSTER_HOME unset) is not an existing folder: `make setup` (or `make run`) creates "
        "the project's .dagster/; or export DAGSTER_HOME"
    ]
    assert not (tmp_path / ".lake" / "aws-us" / "_workers").exists()  # refused before a read
    assert not (tmp_path / ".lake" / "aws-us" / "tables").exists()


def test_a_worker_refuses_a_url_or_an_instance_it_cannot_report_to_and_shows_no_password(
    tmp_path,
):
    env = _env(tmp_path)
    args = ["ingest", "--follow", "--location", "aws-us", "--max-idle-seconds", "1"]
    for url in ("notaurl", "ftp://127.0.0.1/x", "http://", "http://admin:S3CRET@"):
        out = _cli(env, *args, "--dagster-url", url)
        assert out.returncode == 1, out.stderr
        (line,) = [x for x in out.stderr.splitlines() if "COMPUTE_JURISDICTION" not in x]
        assert "is not a webserver's http(s) URL" in line and "S3CRET" not in line, line
    broken = tmp_path / "broken-dagster"
    broken.mkdir()
    (broken / "dagster.yaml").write_text("run_storage: [unclosed\n")
    out = _cli({**env, "DAGSTER_HOME": str(broken)}, *args)
    assert out.returncode == 1
    (line,) = [x for x in out.stderr.splitlines() if "COMPUTE_JURISDICTION" not in x]
    assert f"Dagster instance {broken} (DAGSTER_HOME)" in line and "dagster.yaml" in line
    assert not (tmp_path / ".lake" / "aws-us" / "_workers").exists()  # refused before a read
    # a URL with credentials works as any other, and its password is never printed
    _land(env, 200)
    log = tmp_path / "worker.log"
    proc = _worker(env, log, "--dagster-url", "http://u:S3CRET@127.0.0.1:9")  # a closed port
    try:
        _wait_for(log, "retry in", proc)  # committed, the report refused: backing off
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:  # never left running when an assertion fails
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "reporting to Dagster at http://***@127.0.0.1:9" in text and "S3CRET" not in text
    out = proc.stdout.read().decode()
    assert "S3CRET" not in out
    # its commits count though no report got through (the ledger is the truth; reports follow)
    status = json.loads(out)["worker"]
    assert status["commits"] >= 1 and status["events_landed"] > 0, status
    assert status["last_error"] and "retry" not in status["last_error"]


def test_a_worker_that_cannot_report_stops_after_max_idle_seconds_in_one_line(tmp_path):
    """Failing is no progress: --max-idle-seconds ends a worker whose webserver is down too."""
    env = _env(tmp_path)
    _land(env, 200)
    args = ["ingest", "--follow", "--location", "aws-us", "--linger-seconds", "0"]
    out = _cli(env, *args, "--max-idle-seconds", "2", "--dagster-url", "http://127.0.0.1:9")
    assert out.returncode == 1, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("lakehouse ingest: error: stopped after --max-idle-seconds 2 "), line
    assert "aws-us" in line and "Traceback" not in out.stderr
    # what it committed is in the tables; a worker started later takes the rest and makes
    # the reports owed: every object once, every partition reported with its checks
    out = _cli(env, *args, "--max-idle-seconds", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    _reported(env, _exactly_once(tmp_path, env))


def test_a_worker_reports_to_the_projects_instance_when_dagster_home_is_unset(tmp_path):
    env = _env(tmp_path)
    _land(env, 200)
    shutil.copytree(env.pop("DAGSTER_HOME"), tmp_path / ".dagster")  # what `make setup` makes
    log = tmp_path / "worker.log"
    proc = _worker(env, log, "--max-idle-seconds", "1")
    assert proc.wait(300) == 0, log.read_text()[-2000:]
    assert f"reporting to Dagster instance {tmp_path / '.dagster'} (DAGSTER_HOME unset)" in (
        log.read_text()
    )
    _reported({**env, "DAGSTER_HOME": str(tmp_path / ".dagster")}, _exactly_once(tmp_path, env))


def test_one_worker_follows_several_locations_each_exactly_once(tmp_path):
    env = _env(tmp_path)
    _land(env, 600)
    _land(env, 600, seed=8, location="azure-eu")
    log = tmp_path / "worker.log"
    proc = _worker(env, log, "--location", "azure-eu", "--max-idle-seconds", "1")
    assert proc.wait(300) == 0, log.read_text()[-2000:]
    assert "following aws-us (US), azure-eu (EU)" in log.read_text()
    us = _exactly_once(tmp_path, env)
    eu = _exactly_once(tmp_path, env, location="azure-eu")
    assert f"{TODAY}|us" in us and f"{TODAY}|eu" in eu  # (and late arrivals' next date)
    assert {k[-3:] for k in us} == {"|us"} and {k[-3:] for k in eu} == {"|eu"}
    _reported(env, {**us, **eu})
    out = json.loads(proc.stdout.read())["locations"]
    assert [(o["location"], o["worker"]["state"]) for o in out] == [
        ("aws-us", "stopped"),
        ("azure-eu", "stopped"),
    ]


def test_a_worker_refuses_every_location_when_one_is_of_another_jurisdiction(tmp_path):
    env = _env(tmp_path, LAKEHOUSE_COMPUTE_JURISDICTION="US")
    _land(env, 200)
    _land(env, 200, location="azure-eu")
    args = ["--follow", "--location", "aws-us", "--location", "azure-eu"]
    out = _cli(env, "ingest", *args, "--max-idle-seconds", "1")
    assert out.returncode == 1
    assert "refused" in out.stderr and "azure-eu" in out.stderr and "EU" in out.stderr
    for name in ("aws-us", "azure-eu"):  # neither location read nor written
        assert not (tmp_path / ".lake" / name / "_workers").exists()
        assert not (tmp_path / ".lake" / name / "tables").exists()


def test_status_shows_each_workers_lag(tmp_path):
    env = _env(tmp_path)
    _land(env, 300)
    log = tmp_path / "worker.log"
    proc = _worker(env, log, "--max-idle-seconds", "1")
    assert proc.wait(300) == 0, log.read_text()[-2000:]
    out = _cli(env, "status", "--json")
    assert out.returncode == 0, out.stderr
    workers = json.loads(out.stdout)["ingest_workers"]
    assert [w["location"] for w in workers] == ["aws-us"]
    assert workers[0]["state"] == "stopped" and workers[0]["commits"] >= 1
    assert set(workers[0]["lag"]) == {"lag_seconds", "backlog_objects", "backlog_bytes"}
