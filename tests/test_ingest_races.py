"""Promises that hostile tests broke: concurrent closed-day runs, upkeep under a pending batch,
a ledger that lost commits, a commit naming a file that is gone."""

import datetime as dt
import multiprocessing as mp
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.ingest import ledger
from pipelines.ingest import partition as ingest
from pipelines.ingest.batch import BRONZE_TABLE, QUARANTINE_TABLE
from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.lake.delta import rewrite as delta_rewrite
from pipelines.operations import maintenance
from pipelines.simulation.simulate import SimulationConfig
from tests.helpers import DAY, land
from tests.test_ingest_incremental import LOC, _crash_in_child

OPEN = dt.datetime.combine(DAY, dt.time(12), dt.UTC)
CLOSED = OPEN + dt.timedelta(days=3)
# Rounds of the closed-day race: each round three or four processes on one closed day.
ROUNDS = 4


def _loc():
    return load_config().location(LOC)


def _part(day: dt.date = DAY) -> dict[str, object]:
    return {"landing_date": day, "region": "us"}


def _run(day: dt.date = DAY, **kw) -> ingest.PartitionIngest:
    loc = _loc()
    kw.setdefault("now", dt.datetime.combine(day, dt.time(12), dt.UTC))
    return ingest.ingest_partition(loc, loc.storage_options(), day, **kw)


def _closed_run(home: str, day: dt.date, barrier) -> None:
    os.environ["LAKEHOUSE_HOME"] = home
    barrier.wait(60)
    _run(day, now=dt.datetime.combine(day, dt.time(12), dt.UTC) + dt.timedelta(days=3))


def _maintain_compact(home: str, table: str, barrier) -> None:
    os.environ["LAKEHOUSE_HOME"] = home
    uri = _loc().table_uri(table)
    barrier.wait(60)
    maintenance.compact(uri, {})


def _table_counts(day: dt.date) -> dict[str, int]:
    """Rows as an independent reader sees them: plain pyarrow over the files of the version."""
    loc = _loc()
    part = _part(day)
    out = {}
    for name in (BRONZE_TABLE, QUARANTINE_TABLE, ledger.LEDGER_TABLE):
        rows = delta.read_partition(loc.table_uri(name), {}, part)
        out[name] = rows.num_rows
        if name == BRONZE_TABLE:
            out["distinct_event_ids"] = pc.count_distinct(rows["event_id"]).as_py()
        if name == ledger.LEDGER_TABLE:
            out["object_rows"] = int(pc.sum(pc.equal(rows["kind"], "object")).as_py())
    return out


def test_concurrent_runs_and_upkeep_of_a_closed_day_never_double_a_row(lake_home):
    """Three runs of one closed day and maintenance's compaction at once, ROUNDS times."""
    ctx = mp.get_context("spawn")  # delta-rs (tokio) must not be forked
    for r in range(ROUNDS):
        day = DAY + dt.timedelta(days=r)
        sim = SimulationConfig(
            start=day,
            end=day,
            events_per_day=600,
            objects_per_day=10,
            bad_rate=0.03,
            late_share=0.0,
        )
        (report,) = land(LOC, sim)
        first = _run(day, batch_objects=1)  # an open day: ten batches, ten files a table
        assert not first.compacted
        before = _table_counts(day)
        assert before["object_rows"] == report.objects
        barrier = ctx.Barrier(4)
        jobs = [ctx.Process(target=_closed_run, args=(str(lake_home), day, barrier))]
        jobs += [ctx.Process(target=_closed_run, args=(str(lake_home), day, barrier))]
        jobs += [ctx.Process(target=_closed_run, args=(str(lake_home), day, barrier))]
        # round by round, upkeep compacts bronze or the ledger beside the runs
        table = BRONZE_TABLE if r % 2 == 0 else ledger.LEDGER_TABLE
        jobs += [ctx.Process(target=_maintain_compact, args=(str(lake_home), table, barrier))]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(300)
        assert [job.exitcode for job in jobs] == [0, 0, 0, 0], f"round {r}"
        after = _table_counts(day)
        assert after == before, f"round {r}: {before} -> {after}"
        assert after["distinct_event_ids"] == after[BRONZE_TABLE]
        loc = _loc()
        assert delta.partition_files(loc.table_uri(BRONZE_TABLE), {}, _part(day)) == 1
        state = ledger.read_state(loc.table_uri(ledger.LEDGER_TABLE), {}, _part(day))
        assert state.totals()["landed"] == report.records
        assert state.totals()["ingested"] == after[BRONZE_TABLE]
        assert state.totals()["quarantined"] == after[QUARANTINE_TABLE]


def test_a_rewrite_commits_only_on_the_version_it_read(lake_home):
    """A compaction whose version was overtaken by an append keeps the appended rows."""
    uri = str(lake_home / "t")
    for i in range(4):
        _append(uri, i)
    real = delta_rewrite._rewrite_files

    def overtaken(*a, **kw):
        staged = real(*a, **kw)
        _append(uri, 99)  # lands between the compaction's read and its commit
        return staged

    delta_rewrite._rewrite_files = overtaken
    try:
        assert delta.rewrite_partition(uri, {}, [("p", "=", "a")]) is not None
    finally:
        delta_rewrite._rewrite_files = real
    rows = delta.read_partition(uri, {})
    assert sorted(rows["x"].to_pylist()) == sorted([*range(40), *range(990, 1000)])


def _append(uri: str, i: int) -> None:
    data = pa.table({"p": ["a"] * 10, "x": list(range(i * 10, i * 10 + 10))})
    adds = delta.stage_files(uri, data, {"p": "a"}, {})
    delta.commit_files(uri, adds, data.schema, {"p": "a"}, {}, replace=False, app_id=None)


def _crash_before_bronze(home: Path) -> ledger.Batch:
    ctx = mp.get_context("spawn")
    child = ctx.Process(target=_crash_in_child, args=(str(home), "before_bronze"))
    child.start()
    child.join(120)
    assert child.exitcode == 9
    state = ledger.read_state(_loc().table_uri(ledger.LEDGER_TABLE), {}, _part())
    (pending,) = state.pending()
    return pending


def _age(root: Path, days: int = 30) -> None:
    old = time.time() - days * 86400
    for p in root.rglob("*.parquet"):
        os.utime(p, (old, old))


@pytest.mark.parametrize("sweep", [False, True], ids=["log", "orphan-sweep"])
def test_upkeep_keeps_the_files_a_pending_batch_names(lake_home, sweep):
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=800, bad_rate=0.03, late_share=0.0)
    (report,) = land(LOC, sim)
    pending = _crash_before_bronze(lake_home)
    loc = _loc()
    root = lake_home / ".lake" / LOC
    _age(root)  # the day was not re-run within VACUUM's retention
    cfg = load_config()
    for table in (BRONZE_TABLE, QUARANTINE_TABLE):
        maintenance.maintain(cfg, table, LOC, sweep=sweep)
    uri = loc.table_uri(BRONZE_TABLE)
    assert delta.missing_files(uri, {}, pending.bronze) == []
    qa = loc.table_uri(QUARANTINE_TABLE)
    assert delta.missing_files(qa, {}, pending.quarantine) == []
    done = _run()
    assert done.batches[0] == pending.number and done.reconciled
    assert done.totals["landed"] == report.records
    rows = delta.read_partition(uri, {}, _part())
    assert rows.num_rows == done.totals["ingested"]


def test_a_pending_batch_whose_files_are_gone_is_abandoned_and_its_objects_taken_again(lake_home):
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=800, bad_rate=0.03, late_share=0.0)
    (report,) = land(LOC, sim)
    pending = _crash_before_bronze(lake_home)
    loc = _loc()
    for name, adds in (
        (BRONZE_TABLE, pending.bronze),
        (QUARANTINE_TABLE, pending.quarantine),
    ):
        for add in adds:  # removed by an upkeep that did not know of the claim
            (Path(loc.table_uri(name)) / add.path).unlink()
    done = _run()
    assert pending.number not in done.batches
    assert done.reconciled, done.report()
    assert done.totals["landed"] == report.records
    assert len(done.objects) == report.objects
    rows = delta.read_partition(loc.table_uri(BRONZE_TABLE), {}, _part())  # readable
    assert rows.num_rows == done.totals["ingested"]
    assert pc.count_distinct(rows["event_id"]).as_py() == rows.num_rows
    again = _run()
    assert again.batches == [] and again.totals == done.totals


def test_a_commit_never_names_a_file_that_does_not_exist(lake_home):
    uri = str(lake_home / "t")
    data = pa.table({"p": ["a"] * 3, "x": [1, 2, 3]})
    delta.write_partition(uri, data, {"p": "a"}, {})
    adds = delta.stage_files(uri, data, {"p": "a"}, {})
    (Path(uri) / adds[0].path).unlink()
    with pytest.raises(delta.MissingFileError, match="no longer exist"):
        delta.commit_files(uri, adds, data.schema, {"p": "a"}, {}, replace=False, app_id=None)
    assert delta.table_version(uri, {}) == 1 and delta.read_partition(uri, {}).num_rows == 3


def _roll_back(table_root: Path, keep_version: int) -> int:
    """Delete the log's commits (and checkpoints) after ``keep_version``: an older snapshot."""
    log = table_root / "_delta_log"
    gone = 0
    for p in sorted(log.iterdir()):
        head = p.name.split(".")[0]
        if head.isdigit() and int(head) > keep_version:
            p.unlink()
            gone += 1
    (log / "_last_checkpoint").unlink(missing_ok=True)
    return gone


def test_a_rolled_back_ledger_stops_the_ingest_and_a_full_run_rebuilds_it(lake_home):
    sim = SimulationConfig(
        start=DAY, end=DAY, events_per_day=900, objects_per_day=8, late_share=0.0
    )
    (report,) = land(LOC, sim)
    loc = _loc()
    held = lake_home / "held"
    landing = lake_home / ".lake" / LOC / "landing"
    later = sorted(p for p in landing.rglob("*") if p.is_file())[6:]
    for p in later:  # two objects land after the first runs
        (held / p.name).parent.mkdir(parents=True, exist_ok=True)
        p.rename(held / p.name)
    done = _run(batch_objects=2)
    assert len(done.batches) == 3
    ledger_root = Path(loc.table_uri(ledger.LEDGER_TABLE))
    assert _roll_back(ledger_root, 4) > 0  # the ledger as it was after its second batch
    for p in later:
        p.parent.mkdir(parents=True, exist_ok=True)
        (held / p.name).rename(p)
    with pytest.raises(ledger.LedgerError) as err:
        _run(batch_objects=2)
    text = str(err.value)
    assert "\n" not in text and f"{DAY}|us" in text and "bronze holds batch 3" in text
    full = _run(full=True)
    assert full.reconciled and full.totals["landed"] == report.records
    rows = delta.read_partition(loc.table_uri(BRONZE_TABLE), {}, _part())
    assert rows.num_rows == full.totals["ingested"]
    assert pc.count_distinct(rows["event_id"]).as_py() == rows.num_rows
    assert _run().batches == []


def test_a_damaged_ledger_log_is_named_in_one_line(lake_home):
    land(LOC, SimulationConfig(start=DAY, end=DAY, events_per_day=200, objects_per_day=2))
    _run()
    log = Path(_loc().table_uri(ledger.LEDGER_TABLE)) / "_delta_log"
    newest = max(p for p in log.glob("*.json"))
    newest.write_text("this is not json\n")
    with pytest.raises(delta.TableError) as err:
        _run()
    text = str(err.value)
    assert "\n" not in text and newest.name in text and ledger.LEDGER_TABLE in text


def test_pending_files_names_only_unfinished_batches(lake_home):
    land(LOC, SimulationConfig(start=DAY, end=DAY, events_per_day=300, objects_per_day=3))
    _run()
    uri = _loc().table_uri(ledger.LEDGER_TABLE)
    assert ledger.pending_files(uri, {}) == {"bronze": set(), "quarantine": set()}


def test_the_cli_exits_non_zero_on_a_rolled_back_ledger_in_one_line(lake_home, capsys):
    from lakehouse.cli import main

    land(LOC, SimulationConfig(start=DAY, end=DAY, events_per_day=400, objects_per_day=4))
    assert main(["ingest", "--location", LOC, "--date", str(DAY), "--batch-objects", "1"]) == 0
    _roll_back(Path(_loc().table_uri(ledger.LEDGER_TABLE)), 2)
    capsys.readouterr()
    assert main(["ingest", "--location", LOC, "--date", str(DAY)]) == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert f"{DAY}|us" in line and "rolled back or damaged" in line, line
