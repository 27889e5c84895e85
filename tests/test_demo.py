"""The demo's ingestion side by side: by workers reporting without runs, or a run per partition."""

import datetime as dt
import io
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from lakehouse import demo, demo_ingest
from lakehouse.definitions import build_definitions
from lakehouse.demo_workers import WORKERS_ENV, Workers, worker_count
from lakehouse.progress import Progress
from pipelines.ingest import capture
from pipelines.ingest.events import bronze_partition
from pipelines.lake import delta, tables
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from pipelines.simulation.simulate import simulate

DAY = dt.date(2026, 10, 5)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def instance(lake_home: Path, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    """A Dagster instance in a folder of its own, which the worker processes open too."""
    home = lake_home / "dagster"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.get()


def _runs_by_partition(instance: dg.DagsterInstance) -> dict[str, dg.DagsterRun]:
    runs = instance.get_runs(dg.RunsFilter(job_name="ingest_job"))
    return {r.tags["dagster/partition"]: r for r in runs}


def test_ingestion_runs_side_by_side_each_its_own_run_with_its_materializations(instance):
    cfg = load_config("local")
    out = io.StringIO()  # not a terminal: plain lines
    progress = Progress("demo", stream=out, interval=0)
    with Workers(cfg.environment, count=2) as workers, progress:
        with progress.stage("simulate", unit="region-days") as stage:
            demo._simulate(cfg, DAY, DAY + dt.timedelta(days=1), 200, workers, stage)
        defs = build_definitions(cfg.environment)
        workers.use_here(defs, instance)
        with progress.stage("ingest") as stage:
            count, failed = demo_ingest.ingest("runs", defs, instance, cfg, workers, stage)
    runs = _runs_by_partition(instance)
    assert failed == []
    assert count == len(runs) >= 6  # two days in three regions, late events may add a day
    for key, run in runs.items():
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/sensor_name"] == "landed_objects_sensor"
        assert run.tags["dagster/run_key"].startswith(f"{key}|")
        region = key.split("|")[1]
        assert run.tags["lakehouse/jurisdiction"] == cfg.jurisdiction_of_region(region)
    lines = out.getvalue().splitlines()
    last = lines[-1]
    assert last.startswith(f"demo: ingest {count}/{count} partitions, ") and last.endswith(" done")
    landed = sum(r["landed"] for r in demo._bronze_summary(instance).values())
    assert f" {landed:,} events (" in lines[-1]  # the runs' landed records, counted as they end
    assert any(line.startswith("demo: simulate 6/6 region-days, ") for line in lines)
    mats = instance.fetch_materializations(dg.AssetKey("bronze_events"), limit=100).records
    assert {m.asset_materialization.partition for m in mats} == set(runs)
    assert {m.run_id for m in mats} == {r.run_id for r in runs.values()}
    pids = {m.event_log_entry.dagster_event.pid for m in mats}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # executed by the workers
    summary = demo._bronze_summary(instance)
    for region in summary.values():
        assert region["landed"] == (
            region["ingested"] + region["quarantined"] + region["duplicates_dropped"]
        )


def test_one_worker_runs_everything_in_this_process(instance):
    cfg = load_config("local")
    with Workers(cfg.environment, count=1) as workers:
        demo._simulate(cfg, DAY, DAY, 50, workers)
        defs = build_definitions(cfg.environment)
        workers.use_here(defs, instance)
        count, failed = demo_ingest.ingest("runs", defs, instance, cfg, workers)
    mats = instance.fetch_materializations(dg.AssetKey("bronze_events"), limit=100).records
    assert failed == [] and count == len(mats) >= 3
    assert {m.event_log_entry.dagster_event.pid for m in mats} == {os.getpid()}


def test_workers_ingest_and_report_every_partition_without_a_run(instance):
    cfg = load_config("local")
    with Workers(cfg.environment, count=2) as workers:
        demo._simulate(cfg, DAY, DAY + dt.timedelta(days=1), 200, workers)
        defs = build_definitions(cfg.environment)
        workers.use_here(defs, instance)
        requests = demo_ingest._sensor_requests(defs, instance)
        count, failed = demo_ingest.ingest("workers", defs, instance, cfg, workers)
    assert failed == []
    assert count == len(requests) >= 6  # every partition the sensor asks for
    assert instance.get_runs(dg.RunsFilter(job_name="ingest_job")) == []  # no run launched
    bronze = instance.fetch_materializations(dg.AssetKey("bronze_events"), limit=100).records
    quarantine = instance.fetch_materializations(dg.AssetKey("bronze_quarantine"), limit=100)
    assert {m.asset_materialization.partition for m in bronze} == {
        r.partition_key for r in requests
    }
    assert len(quarantine.records) == len(bronze) == count  # each partition reported once
    assert {m.run_id for m in bronze} == {""}  # runless, as the ingest worker reports
    pids = {m.event_log_entry.dagster_event.pid for m in bronze}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # reported by the workers
    for rec in bronze:  # the metadata the summary reads, against the Delta tables themselves
        mat = rec.asset_materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        date, region = mat.partition.split("|")
        loc = cfg.location_for_region(region)
        part = bronze_partition(dt.date.fromisoformat(date), region)
        opts = loc.storage_options()
        bronze_rows = delta.partition_rows(loc.table_uri(tables.BRONZE.name), opts, part)
        assert meta["ingested"] == bronze_rows
        assert meta["quarantined"] == delta.partition_rows(
            loc.table_uri(tables.QUARANTINE.name), opts, part
        )
        assert meta["landed"] == meta["ingested"] + meta["quarantined"] + meta["duplicates_dropped"]
        assert meta["lakehouse/data_jurisdiction"] == loc.jurisdiction
    for check in ("bronze_events_reconciliation", "bronze_events_expectations"):
        key = dg.AssetCheckKey(dg.AssetKey("bronze_events"), check)
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
        evaluated = {
            r.event.dagster_event.event_specific_data.metadata["partition"].value for r in history
        }
        assert evaluated == {r.partition_key for r in requests}, check
        if check == "bronze_events_reconciliation":
            assert {r.status.value for r in history} == {"SUCCEEDED"}


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_worker_count_that_is_no_whole_number_is_named(monkeypatch, value):
    monkeypatch.setenv(WORKERS_ENV, value)
    with pytest.raises(ValueError, match=f"{WORKERS_ENV}={value!r}"):
        worker_count()


def test_workers_default_to_the_cores_at_most_two(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert worker_count() == max(1, min(2, os.cpu_count() or 1))
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert worker_count() == 3


def _landed(root: Path) -> dict[str, object]:
    """Each landed object's records (Avro files carry a random sync marker: compare contents)."""
    cfg = load_config("local")
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "landing" not in path.parts:
            continue
        rel = path.relative_to(root)
        landing = cfg.location(rel.parts[1]).landing
        try:
            out[str(rel)] = capture.decode(landing, path.read_bytes())
        except capture.CorruptObjectError:  # the demo's corrupt object of the day: cut in half
            out[str(rel)] = ("corrupt", path.stat().st_size)
    return out


def test_workers_land_exactly_what_one_process_lands(lake_home, monkeypatch):
    cfg = load_config("local")
    first, last = DAY, DAY + dt.timedelta(days=3)
    with Workers(cfg.environment, count=2) as workers:
        sim = demo._simulate(cfg, first, last, 120, workers)
    side_by_side = _landed(lake_home)
    shutil.rmtree(lake_home / ".lake")
    locations = list(cfg.locations.values())
    simulate(
        sim,
        locations,
        [open_storage(loc.root_uri(), loc.storage_options()) for loc in locations],
        {r: cfg.currency_of(r) for r in cfg.region_codes},
    )
    one_process = _landed(lake_home)
    assert len(one_process) >= 3 * 4 * 2  # objects of every location and day
    assert any(isinstance(v, tuple) for v in one_process.values())  # corrupt ones compared too
    assert side_by_side == one_process


def test_the_demos_own_runs_carry_the_tags_automation_gives_its_runs(lake_home):
    defs = build_definitions("local")
    spark = demo._sensor_tags(defs, "spark_automation_sensor")
    assert spark == {"lakehouse/spark": "true", "lakehouse/jurisdiction": "shared"}
    assert demo._sensor_tags(defs, "automation_sensor") == {"lakehouse/jurisdiction": "any"}


def test_too_few_days_for_the_forecast_are_refused_before_anything_runs(lake_home):
    cfg = load_config("local")
    end = dt.date(2026, 10, 28)
    with pytest.raises(ValueError, match="too few to train the forecast") as info:
        demo.check_demo_days(cfg, dt.date(2026, 10, 22), end)
    earliest = dt.date.fromisoformat(str(info.value).split("use --from ")[1].split()[0])
    demo.check_demo_days(cfg, earliest, end)  # the start it names is enough
    with pytest.raises(ValueError, match="too few"):
        demo.check_demo_days(cfg, earliest + dt.timedelta(days=1), end)  # and the latest


def test_a_failed_run_is_one_line_naming_its_step_and_error(instance):
    @dg.asset
    def broken() -> None:
        raise ValueError("the input at s3://b/x is not a Delta table")

    result = dg.materialize([broken], instance=instance, raise_on_error=False)
    reason = demo.failure_reason(result)
    assert reason == "step broken: ValueError: the input at s3://b/x is not a Delta table"
