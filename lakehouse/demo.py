"""The end-to-end demo behind ``make run``: simulate, then let the sensors drive the graph."""

import datetime as dt
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from assets.partitions import date_region_key
from lakehouse.definitions import build_definitions
from lakehouse.demo_ingest import ingest
from lakehouse.demo_workers import INGEST_MODES, LandDays, Workers, land_days
from lakehouse.ml_demo import QUIET, failure_reason, run_ml_demo
from lakehouse.progress import Progress, Stage
from pipelines.lake import delta, tables
from pipelines.lake.config import PER_JURISDICTION, PROJECT_ROOT, LakeConfig, lake_home, load_config
from pipelines.simulation.simulate import BadDay, Drift, SimulationConfig
from pipelines.sovereignty.compute import COMPUTE_ENV
from pipelines.spark.session import build_session
from resources.spark import SparkResource

LOCAL_INSTANCE_YAML = PROJECT_ROOT / "deploy" / "dagster-local.yaml"


def _instance() -> dg.DagsterInstance:
    home = os.environ.setdefault("DAGSTER_HOME", str(lake_home() / ".dagster"))
    if os.path.exists(home) and not os.path.isdir(home):
        raise ValueError(f"DAGSTER_HOME={home} is a file, not a folder")
    os.makedirs(home, exist_ok=True)
    config = os.path.join(home, "dagster.yaml")
    if not os.path.exists(config):
        # the local profile `make setup` installs: SQLite here, no telemetry, run queue limits
        shutil.copyfile(LOCAL_INSTANCE_YAML, config)
    return dg.DagsterInstance.get()


# The demo trains its first model on 4 weeks (lakehouse.yaml's default is 8) ending this many
# days before the last day: drift is injected a week before the end, the model must predate it.
DEMO_WINDOW_DAYS = 28
TRAIN_ENDS_BEFORE_END = 10


def demo_train_end(end: dt.date) -> dt.date:
    """The last day the demo's first model is trained on (its holdout ends there)."""
    return end - dt.timedelta(days=TRAIN_ENDS_BEFORE_END)


def check_demo_days(cfg: LakeConfig, start: dt.date, end: dt.date, what: str = "demo") -> None:
    """A one-line error, before anything runs, when the days cannot train the first model.

    The rule is the training's own (``plan_window``: look-back warm-up, a minimum of training
    days, the holdout), tried on the days the demo would land. The commands check before they
    start; ``run_demo`` itself does not, since a lake with older features trains on fewer days.
    """
    from pipelines.ml.train import WARMUP_DAYS, TrainingError, plan_window

    train_end = demo_train_end(end)

    def trains(first: dt.date) -> bool:
        days = [first + dt.timedelta(days=i) for i in range((train_end - first).days + 1)]
        try:
            plan_window(days, DEMO_WINDOW_DAYS, cfg.ml.holdout_days, train_end)
        except TrainingError:
            return False
        return True

    if trains(start):
        return
    latest = start
    while not trains(latest):
        latest -= dt.timedelta(days=1)
    count = (end - start).days + 1
    raise ValueError(
        f"{what} --from {start} --to {end}: {count} day(s) are too few to train the forecast "
        f"(on days up to {train_end}, after {WARMUP_DAYS} days of look-back warm-up and a "
        f"{cfg.ml.holdout_days}-day holdout); use --from {latest} or earlier"
    )


# Days a worker lands at a time: small enough for steady progress, large enough to be cheap.
LAND_CHUNK_DAYS = 7


def _simulate(
    cfg: LakeConfig,
    start: dt.date,
    end: dt.date,
    events_per_day: int,
    workers: Workers,
    stage: Stage | None = None,
) -> SimulationConfig:
    """Land the demo's weeks of events: bad records, a corrupt object a day, drift in eu.

    The days of each location are landed by the workers a week at a time: every region-day is
    drawn from its own generator and named by its day, so the landing areas are the same.
    """
    sim = SimulationConfig(
        start=start,
        end=end,
        events_per_day=events_per_day,
        bad_rate=0.004,
        corrupt_objects_per_day=1,
        drift=(
            Drift(
                region="eu", start=end - dt.timedelta(days=7), price_shift=1.25, demand_shift=0.85
            ),
        ),
        bad_days=(demo_bad_day(end),),
    )
    days = sim.days()
    if stage is not None:
        stage.total = len(cfg.locations) * len(days)
    tasks = [
        LandDays(sim, cfg.environment, name, tuple(days[i : i + LAND_CHUNK_DAYS]))
        for i in range(0, len(days), LAND_CHUNK_DAYS)
        for name in cfg.locations
    ]

    def landed(result: tuple[int, int]) -> None:
        if stage is not None:
            stage.advance(result[0], events=result[1])

    workers.map(land_days, tasks, on_result=landed)
    return sim


def demo_bad_day(end: dt.date) -> BadDay:
    """The demo's producer incident: 5 % bad records in apac five days before the end.

    lakehouse_health's quarantine-rate anomaly check (issue 19) flags it.
    """
    return BadDay("apac", end - dt.timedelta(days=5), 0.05)


def _health(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    start: dt.date,
    end: dt.date,
    stage: Stage | None = None,
) -> dict[str, Any]:
    """The health view of every day: each region's measured, then rolled up (one run each).

    Both runs cover the range (the assets' backfill policy): every region's days in one run of
    region_health, then the roll-up, where each day is judged against the days before it and
    gets its own partition's figures; the summary counts the anomalies flagged and names their
    region-days.
    """
    regions = defs.resolve_job_def("region_health_job")
    by_region = regions.partitions_def
    assert isinstance(by_region, dg.MultiPartitionsDefinition)
    codes = by_region.get_partitions_def_for_dimension("region").get_partition_keys()
    first, last = codes[0], codes[-1]
    _run_or_fail(
        regions,
        instance,
        _range_tags(
            date_region_key(start.isoformat(), first), date_region_key(end.isoformat(), last)
        ),
        f"region health of {start}..{end} (region_health_job)",
    )
    job = defs.resolve_job_def("health_job")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    if stage is not None:
        stage.total = len(days)
    _run_or_fail(
        job,
        instance,
        _range_tags(start.isoformat(), end.isoformat()),
        f"health of {start}..{end} (health_job)",
    )
    if stage is not None:
        stage.advance(len(days))
    latest = _latest_by_partition(instance, "lakehouse_health")
    flagged = [
        f"{day}: {latest[day.isoformat()]['flagged'].value}"
        for day in days
        if day.isoformat() in latest
        and latest[day.isoformat()].get("anomalies")
        and int(latest[day.isoformat()]["anomalies"].value)
    ]
    return {
        "from": start.isoformat(),
        "as_of": end.isoformat(),
        "days": len(days),
        "anomalies": sum(
            int(m["anomalies"].value) for k, m in latest.items() if k and "anomalies" in m
        ),
        "flagged": flagged,
    }


def _spark(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cfg: LakeConfig,
    start: dt.date,
    end: dt.date,
    stage: Stage | None = None,
) -> dict[str, Any]:
    """Silver and gold of every region and day in one Spark run (what automation would run).

    With one code location per jurisdiction, each region's partitions are a run of their own,
    tagged with its jurisdiction (what jobs/jurisdiction.py requests); otherwise one run,
    tagged as the Spark automation sensor tags its runs.
    """
    regions = cfg.region_codes
    days = (end - start).days + 1
    if stage is not None:
        stage.total = 2 * days * len(regions)  # a silver and a gold partition each
    job = defs.resolve_job_def("spark_job")
    if cfg.compute.pools == PER_JURISDICTION:
        for region in regions:
            tags = {
                **_sensor_tags(defs, "spark_automation_sensor"),
                cfg.compute.routing_tag: cfg.jurisdiction_of_region(region),
                **_range_tags(
                    date_region_key(start.isoformat(), region),
                    date_region_key(end.isoformat(), region),
                ),
            }
            _run_or_fail(job, instance, tags, f"silver and gold of {region} (spark_job)", stage)
    else:
        tags = {
            **_sensor_tags(defs, "spark_automation_sensor"),
            **_range_tags(
                date_region_key(start.isoformat(), regions[0]),
                date_region_key(end.isoformat(), regions[-1]),
            ),
        }
        _run_or_fail(job, instance, tags, "silver and gold (spark_job)", stage)
    return {
        loc.region: delta.table_rows(loc.table_uri(tables.GOLD.name), loc.storage_options())
        for loc in cfg.locations.values()
    }


def _sync(
    defs: dg.Definitions, instance: dg.DagsterInstance, cfg: LakeConfig, stage: Stage | None = None
) -> dict[str, Any]:
    """The replicas of gold in the ML home, brought up to date by one sync run."""
    if stage is not None:
        stage.total = len(cfg.replicas())
    _run_or_fail(
        defs.resolve_job_def("sync_job"),
        instance,
        _sensor_tags(defs, "automation_sensor"),
        "replica sync",
        stage,
    )
    return {
        r.name: _latest_metadata(
            instance,
            r.name,
            ("route", "replica_version", "versions_behind", "bytes_copied", "egress_usd"),
        )
        for r in cfg.replicas()
    }


def _features(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cfg: LakeConfig,
    start: dt.date,
    end: dt.date,
    stage: Stage | None = None,
) -> dict[str, Any]:
    """The demand features of every day in one Spark run."""
    if stage is not None:
        stage.total = (end - start).days + 1
    _run_or_fail(
        defs.resolve_job_def("features_job"),
        instance,
        {**_sensor_tags(defs, "spark_automation_sensor"), **_range_tags(str(start), str(end))},
        "demand features (features_job)",
        stage,
    )
    home = cfg.home
    return {
        "partitions": _latest_metadata(instance, tables.FEATURES.name, ())["partitions"],
        "rows": delta.table_rows(home.table_uri(tables.FEATURES.name), home.storage_options()),
    }


def _sensor_tags(defs: dg.Definitions, name: str) -> dict[str, str]:
    """The tags an automation sensor gives its runs (the routing tag among them)."""
    sensor = defs.resolve_sensor_def(name)
    return dict(getattr(sensor, "run_tags", None) or {})


def _start_spark_early(defs: dg.Definitions) -> None:
    """Start this process's local Spark session in the background (the workers ingest now).

    The Spark run that follows finds the JVM up: Spark keeps one session per process and its
    builder waits for a session being started. A remote session is the step runner's business.
    Should the early start fail, the Spark run starts it again and reports the failure.
    """
    spark = (defs.resources or {}).get("spark")
    if isinstance(spark, SparkResource) and str(spark.master).startswith("local"):
        args = (str(spark.master), dict(spark.conf))
        threading.Thread(target=_start_spark, args=args, name="spark-start", daemon=True).start()


def _start_spark(master: str, conf: dict[str, str]) -> None:
    try:
        build_session(master=master, conf=conf)
    except Exception as exc:
        logging.getLogger(__name__).info(f"demo: Spark did not start early ({exc}); later")


@contextmanager
def _stage(
    stages: dict[str, float], name: str, progress: Progress, unit: str = "partitions"
) -> Iterator[Stage]:
    """A stage of the demo: shown as it goes, its seconds recorded (the summary's ``stages``)."""
    t = time.perf_counter()
    try:
        with progress.stage(name, unit=unit) as stage:
            yield stage
    finally:
        stages[name] = round(time.perf_counter() - t, 1)


SUMMARY_FILE = Path(".lake") / "demo-summary.json"


def summary_path() -> Path:
    """Where the demo writes its summary as JSON: ``.lake/demo-summary.json`` in the lake home."""
    return lake_home() / SUMMARY_FILE


def run_demo(
    start: dt.date,
    end: dt.date,
    events_per_day: int = 3000,
    environment: str | None = None,
    progress: Progress | None = None,
    ingest_mode: str = INGEST_MODES[0],
) -> dict[str, Any]:
    """Land a few weeks of events with drift and bad records, then materialize everything.

    ``progress`` shows each stage as it goes (default: nothing shown). ``ingest_mode`` is how
    bronze is ingested (:mod:`lakehouse.demo_ingest`): by the workers, reporting each
    partition without a run (the default), or by a run per partition. The summary is also
    written to :func:`summary_path`.
    """
    t0 = time.perf_counter()
    progress = progress or Progress.silent("demo")
    stages: dict[str, float] = {}
    cfg = load_config(environment)
    # The demo's one process serves every jurisdiction, and says so: a deployment's workers
    # declare theirs (LAKEHOUSE_COMPUTE_JURISDICTION), unset it is warned about on every run.
    os.environ.setdefault(COMPUTE_ENV, ",".join(cfg.jurisdictions))
    instance = _instance()  # before the workers start: they open this same instance
    with Workers(cfg.environment) as workers:  # they load while the events are simulated
        with _stage(stages, "simulate", progress, unit="region-days") as stage:
            sim = _simulate(cfg, start, end, events_per_day, workers, stage)
        with _stage(stages, "setup", progress, unit="code location") as stage:
            stage.total = 1
            defs = build_definitions(cfg.environment)
            workers.use_here(defs, instance)
            stage.advance()
        summary = _materialize(
            defs, instance, workers, cfg, (start, end), stages, progress, ingest_mode
        )
    drift_day = end - dt.timedelta(days=7)
    summary = {
        "environment": cfg.environment,
        "days": len(sim.days()),
        "drift_injected": {"region": "eu", "from": drift_day.isoformat()},
        **summary,
        "stages": stages,
        "seconds": round(time.perf_counter() - t0, 1),
        "summary_file": str(summary_path()),
    }
    path = summary_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _materialize(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    workers: Workers,
    cfg: LakeConfig,
    first_last: tuple[dt.date, dt.date],
    stages: dict[str, float],
    progress: Progress,
    ingest_mode: str,
) -> dict[str, Any]:
    """Every stage after the simulation, each timed into ``stages``; their summaries."""
    start, end = first_last
    summary: dict[str, Any] = {"ingest": ingest_mode}
    _start_spark_early(defs)
    with _stage(stages, "ingest", progress) as stage:
        partitions, summary["ingest_failed"] = ingest(
            ingest_mode, defs, instance, cfg, workers, stage
        )
        summary["ingest_partitions"] = partitions
        summary["ingest_runs"] = partitions if ingest_mode == "runs" else 0
        summary["bronze"] = _bronze_summary(instance)
    with _stage(stages, "spark", progress) as stage:
        summary["gold_rows"] = _spark(defs, instance, cfg, start, end, stage)
    with _stage(stages, "sync", progress, unit="replicas") as stage:
        summary["replicas"] = _sync(defs, instance, cfg, stage)
    with _stage(stages, "features", progress) as stage:
        summary["features"] = _features(defs, instance, cfg, start, end, stage)
    drift_day = end - dt.timedelta(days=7)
    days = [drift_day - dt.timedelta(days=2) + dt.timedelta(days=i) for i in range(10)]
    with _stage(stages, "ml", progress, unit="runs") as stage:
        summary["ml"] = run_ml_demo(
            defs,
            instance,
            [d for d in days if d <= end],
            train_end=demo_train_end(end),
            window_days=DEMO_WINDOW_DAYS,
            stage=stage,
            tags=_sensor_tags(defs, "automation_sensor"),
        )
    with _stage(stages, "health", progress, unit="days") as stage:
        summary["health"] = _health(defs, instance, start, end, stage)
    return summary


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def _run_or_fail(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    tags: dict[str, str],
    what: str,
    stage: Stage | None = None,
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> None:
    run_id = str(uuid.uuid4())
    with _watch(instance, run_id, stage):
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
            tags={"lakehouse/trigger": "demo", **tags},
            asset_selection=asset_selection,
            run_id=run_id,
        )
    if not result.success:
        raise RuntimeError(
            f"demo: {what} failed in run {result.run_id}, {failure_reason(result)} "
            "(its logs: `make ui`, Runs)"
        )


# How often a running stage's progress is read back from the run's events (seconds).
WATCH_INTERVAL = 1.0


@contextmanager
def _watch(instance: dg.DagsterInstance, run_id: str, stage: Stage | None) -> Iterator[None]:
    """Count the run's materialized partitions into ``stage`` while it runs, and its step.

    A single run over many partitions reports them as it finishes each asset: the stage shows
    which step runs meanwhile. Reads the instance's event log, which the run writes anyway.
    """
    if stage is None:
        yield
        return
    stop = threading.Event()
    kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.STEP_START}

    def poll() -> None:
        cursor = None
        while True:
            done = stop.wait(WATCH_INTERVAL)
            try:
                found = instance.get_records_for_run(run_id, cursor=cursor, of_type=kinds)
            except Exception:  # the run's log is not there yet; progress is best effort
                found = None
            if found is not None:
                cursor = found.cursor
                _count_events(stage, found.records)
            stage.tick()
            if done:
                return

    thread = threading.Thread(target=poll, name="demo-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _count_events(stage: Stage, records: Sequence[Any]) -> None:
    materialized = 0
    for rec in records:
        event = rec.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            stage.note(f"step {event.step_key}")
        else:
            materialized += 1
    if materialized:
        stage.advance(materialized)


def _latest_metadata(
    instance: dg.DagsterInstance, asset: str, fields: tuple[str, ...]
) -> dict[str, Any]:
    """Selected metadata of an asset's latest materialization, summed over its partitions."""
    latest = _latest_by_partition(instance, asset)
    out: dict[str, Any] = {"partitions": sum(1 for p in latest if p is not None)}
    for meta in latest.values():
        for f in fields:
            if f in meta:
                value = meta[f].value
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out[f] = out.get(f, 0) + value
                else:
                    out[f] = value
    return out


def _bronze_summary(instance: dg.DagsterInstance) -> dict[str, Any]:
    out: dict[str, dict[str, int]] = {}
    for partition, meta in _latest_by_partition(instance, tables.BRONZE.name).items():
        if partition is None:
            continue
        region = partition.split("|")[-1]
        agg = out.setdefault(
            region,
            {
                "partitions": 0,
                "landed": 0,
                "ingested": 0,
                "quarantined": 0,
                "duplicates_dropped": 0,
            },
        )
        agg["partitions"] += 1
        for k in ("landed", "ingested", "quarantined", "duplicates_dropped"):
            agg[k] += int(meta[k].value)  # type: ignore[arg-type]
    return out


def _latest_by_partition(instance: dg.DagsterInstance, asset: str) -> dict[str | None, Any]:
    """Metadata of each partition's newest materialization (key None when unpartitioned)."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
    latest: dict[str | None, Any] = {}
    for rec in records:  # newest first
        mat = rec.asset_materialization
        if mat is not None and mat.partition not in latest:
            latest[mat.partition] = mat.metadata
    return latest
