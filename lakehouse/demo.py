"""The end-to-end demo behind ``make run``: simulate, then let the sensors drive the graph."""

import datetime as dt
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg

from assets.partitions import date_region_key
from lakehouse.definitions import build_definitions
from lakehouse.ml_demo import QUIET, run_ml_demo
from pipelines import delta, tables
from pipelines.config import LakeConfig, lake_home, load_config
from pipelines.simulate import BadDay, Drift, SimulationConfig, simulate
from pipelines.storage import open_storage


def _instance() -> dg.DagsterInstance:
    home = os.environ.setdefault("DAGSTER_HOME", str(lake_home() / ".dagster"))
    if os.path.exists(home) and not os.path.isdir(home):
        raise ValueError(f"DAGSTER_HOME={home} is a file, not a folder")
    os.makedirs(home, exist_ok=True)
    config = os.path.join(home, "dagster.yaml")
    if not os.path.exists(config):
        with open(config, "w") as fh:
            fh.write("# local instance: SQLite storage in this folder\n")
    return dg.DagsterInstance.get()


def _simulate(cfg: LakeConfig, start: dt.date, end: dt.date, events_per_day: int) -> Any:
    """Land the demo's weeks of events: bad records, a corrupt object a day, drift in eu."""
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
    locations = list(cfg.locations.values())
    simulate(
        sim,
        locations,
        [open_storage(loc.root_uri(), loc.storage_options()) for loc in locations],
        {r: cfg.currency_of(r) for r in cfg.region_codes},
    )
    return sim


def demo_bad_day(end: dt.date) -> BadDay:
    """The demo's producer incident: 5 % bad records in apac five days before the end.

    lakehouse_health's quarantine-rate anomaly check (issue 19) flags it.
    """
    return BadDay("apac", end - dt.timedelta(days=5), 0.05)


def _health(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, Any]:
    """The health view over what the demo produced (as automation would after the runs)."""
    _run_or_fail(defs.resolve_job_def("health_job"), instance, {}, "health view (health_job)")
    event = instance.get_latest_materialization_event(dg.AssetKey("lakehouse_health"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return {k: meta[k].value for k in ("as_of", "anomalies") if k in meta}


def _ingest(defs: dg.Definitions, instance: dg.DagsterInstance) -> tuple[int, list[str]]:
    """Evaluate the landed-objects sensor once and run every ingestion it requests."""
    sensor = defs.resolve_sensor_def("landed_objects_sensor")
    with dg.build_sensor_context(instance=instance, resources=defs.resources) as ctx:
        result = sensor(ctx)
    if not isinstance(result, dg.SensorResult):
        raise RuntimeError(f"demo: landed_objects_sensor returned {type(result).__name__}")
    requests = list(result.run_requests or [])
    job = defs.resolve_job_def("ingest_job")
    failed: list[str] = []
    for req in requests:
        run = job.execute_in_process(
            partition_key=req.partition_key,
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
            # the tags the daemon gives a sensor's runs: `make ui` afterwards sees these run
            # keys as done and does not re-ingest everything the demo ingested
            tags={
                "lakehouse/trigger": "landed_objects_sensor",
                "dagster/sensor_name": "landed_objects_sensor",
                **({"dagster/run_key": req.run_key} if req.run_key else {}),
            },
        )
        if not run.success:
            failed.append(str(req.partition_key))
    return len(requests), failed


def _spark(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cfg: LakeConfig,
    start: dt.date,
    end: dt.date,
) -> dict[str, Any]:
    """Silver and gold of every region and day in one Spark run (what automation would run)."""
    regions = cfg.region_codes
    _run_or_fail(
        defs.resolve_job_def("spark_job"),
        instance,
        _range_tags(
            date_region_key(start.isoformat(), regions[0]),
            date_region_key(end.isoformat(), regions[-1]),
        ),
        "silver and gold (spark_job)",
    )
    return {
        loc.region: delta.table_rows(loc.table_uri(tables.GOLD.name), loc.storage_options())
        for loc in cfg.locations.values()
    }


def _sync(defs: dg.Definitions, instance: dg.DagsterInstance, cfg: LakeConfig) -> dict[str, Any]:
    """The replicas of gold in the ML home, brought up to date by one sync run."""
    _run_or_fail(
        defs.resolve_job_def("sync_job"), instance, {"lakehouse/trigger": "demo"}, "replica sync"
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
) -> dict[str, Any]:
    """The demand features of every day in one Spark run."""
    _run_or_fail(
        defs.resolve_job_def("features_job"),
        instance,
        _range_tags(start.isoformat(), end.isoformat()),
        "demand features (features_job)",
    )
    home = cfg.home
    return {
        "partitions": _latest_metadata(instance, tables.FEATURES.name, ())["partitions"],
        "rows": delta.table_rows(home.table_uri(tables.FEATURES.name), home.storage_options()),
    }


@contextmanager
def _stage(stages: dict[str, float], name: str) -> Iterator[None]:
    """Record how long a stage of the demo took (the summary's ``stages``)."""
    t = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = round(time.perf_counter() - t, 1)


def run_demo(
    start: dt.date, end: dt.date, events_per_day: int = 3000, environment: str | None = None
) -> dict[str, Any]:
    """Land a few weeks of events with drift and bad records, then materialize everything."""
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    cfg = load_config(environment)
    with _stage(stages, "simulate"):
        sim = _simulate(cfg, start, end, events_per_day)
    drift_day = end - dt.timedelta(days=7)
    with _stage(stages, "setup"):
        defs = build_definitions(cfg.environment)
        instance = _instance()
    summary: dict[str, Any] = {
        "environment": cfg.environment,
        "days": len(sim.days()),
        "drift_injected": {"region": "eu", "from": drift_day.isoformat()},
    }
    with _stage(stages, "ingest"):
        summary["ingest_runs"], summary["ingest_runs_failed"] = _ingest(defs, instance)
        summary["bronze"] = _bronze_summary(instance)
    with _stage(stages, "spark"):
        summary["gold_rows"] = _spark(defs, instance, cfg, start, end)
    with _stage(stages, "sync"):
        summary["replicas"] = _sync(defs, instance, cfg)
    with _stage(stages, "features"):
        summary["features"] = _features(defs, instance, cfg, start, end)
    days = [drift_day - dt.timedelta(days=2) + dt.timedelta(days=i) for i in range(10)]
    with _stage(stages, "ml"):
        summary["ml"] = run_ml_demo(
            defs,
            instance,
            [d for d in days if d <= end],
            train_end=drift_day - dt.timedelta(days=3),
            # a few weeks of demo data: train on 4 weeks (lakehouse.yaml's default is 8)
            window_days=28,
        )
    with _stage(stages, "health"):
        summary["health"] = _health(defs, instance)
    summary["stages"] = stages
    summary["seconds"] = round(time.perf_counter() - t0, 1)
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
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> None:
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        tags={"lakehouse/trigger": "demo", **tags},
        asset_selection=asset_selection,
    )
    if not result.success:
        raise RuntimeError(
            f"demo: {what} failed in run {result.run_id}; see it with `make ui` (Runs)"
        )


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
