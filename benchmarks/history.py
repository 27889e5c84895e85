"""History: does a run cost what a day costs, with 30 and with 365 days behind it?

Builds the same lake twice (local folders, three regions), with ``days_small`` and
``days_large`` days of history at the demo's volume (3,000 events a region-day): each
region's landing objects (the capture format's own keys, 24 objects a day, as the simulator
lands them), its gold (one commit per day, as the daily runs make it), bronze, quarantine,
ingest ledger and silver (partitions per day, written in monthly commits; strings distinct
per row, as ids and e-mails are), the ML home's health table, the replicas synced up to
date, and the landed-objects sensor's cursor after it saw the history, and bronze's VACUUM
plan as the last weekly upkeep left it (``_lakehouse_upkeep/vacuum.json``: the version it
planned to, nothing waiting, as the history holds no removal). Then it lands one new day in
every region (landing objects, and the gold row set) and runs, each step in a fresh process (so the
peak RSS is the step's), in this order:

- ``sensor``: one tick of ``landed_objects_sensor`` from the cursor that saw the history;
- ``ingest``: the ``bronze_events`` asset (with the quarantine and checks) for the new day's
  partition of every region, through Dagster as the sensor's runs do;
- ``ledger``: what an ingest run reads of the ledger before claiming a batch (the partition's
  state and its event-id hashes), every region;
- ``backlog``: the hourly safety net's question for the new day, every region (a listing of
  the day's folders and a narrow ledger read);
- ``silver`` and ``gold``: the Spark assets for the new day's partition of every region
  (a local Spark session, as ``make run``), silver from the new day's bronze;
- ``replica``: both replica assets, materialized as the product runs them (sync, per-run
  verification of what was copied, Great Expectations on the touched partitions);
- ``features``: the Spark features of the new day (every region's gold and replicas, the
  28-day look-back);
- ``forecast`` and ``drift``: the champion's forecast of the new day, and its drift against
  the champion's reference;
- ``train``: a retraining (``demand_model``, as drift triggers it): the window the ``ml:``
  settings name (56 days and a 7-day holdout), read from the partitions the log lists. The
  window and its 28 days of warm-up need 49 days: a shorter lake cannot train, so the step
  runs on the large lake only and is reported apart (``train``), its bytes read against its
  window's files (``bytes_read_to_window_bytes``) and the whole table's (``table_bytes``);
- ``health``: the ``lakehouse_health`` asset's partition of the new day (the day's partitions,
  and the kept health rows of the day a week before, which carry the anomaly baseline's eight
  same-weekday values: one day of rows whatever the history);
- ``maintenance``: the upkeep planner of every region's bronze, dry (``lakehouse maintain
  --dry-run``: the retention floor, compaction, vacuum and log cleanup it would do), from the
  last weekly run's VACUUM plan, without registered models' pins (no MLflow here);
- ``status``: ``lakehouse status --json`` (the kept health rows of the week it judges, each
  carrying its baseline, and the storage at rest the day's rows kept: no table's log).

Bytes read are the storage layer's per-location counter (pipelines/lake/storage/interface.py): what
obstore reads, plus the data files delta-rs opens where the engines say so; delta-rs's log
reads are not counted. A Spark step adds what its JVM read through Hadoop's file systems
(``bytes_read_spark``: data files and the Delta log), and its peak RSS adds the JVM's
(``rss_mb_jvm``, the JVM's VmHWM). ``objects_listed``: objects the steps' listings returned (a local
folder counts every file it scanned). ``before``: the replica step on the large lake with the
code before this change (``git archive`` of ``BENCH_HISTORY_BEFORE``, default the branch's
base), whose bytes are the storage layer's counter when that code has it, else those of its
full reads (source once, replica twice: the live files' sizes).

The history has silver, features, forecast and drift tables of every day (filler rows of each
table's schema, monthly commits), and a champion model trained on the history's features in
a local MLflow store (sqlite, as ``make run``).

Knobs: BENCH_HISTORY_SMALL (30), BENCH_HISTORY_LARGE (365), BENCH_HISTORY_ROWS (gold rows per
region-day, 1000), BENCH_HISTORY_BEFORE (a commit, or "" to skip the before run; default the
merge base with main), BENCH_HISTORY_REPO (the git repository holding it; default this tree),
BENCH_HISTORY_STEPS (a comma-separated subset of the steps, default all), BENCH_HISTORY_REPEATS
(runs of each read-only step: sensor, ledger, backlog, maintenance, status; its figures are the
run of median seconds, and ``seconds_runs`` lists every run's; default 3).
Prints one JSON object as its last line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

ROOT = Path(__file__).resolve().parents[1]
# where git finds the "before" commit (a snapshot of the tree elsewhere may run the benchmark)
REPO = Path(os.environ.get("BENCH_HISTORY_REPO", str(ROOT)))
END = dt.date(2026, 10, 31)  # the newest day of history; the new day is the one after
NEW_DAY = END + dt.timedelta(days=1)
GOAL_RATIO = 1.3
NOT_COVERED = [
    "the maintenance planner's model pins (the step plans without the registry's pins)",
]
# a retraining: its 56-day window and 7-day holdout come after 28 days of warm-up, so a lake
# of fewer days cannot train (reported on the large lake, against its window's bytes)
WINDOW_STEPS = ("train",)
TRAIN_MIN_DAYS = 28 + 14 + 7
# events a region-day lands (and bronze's and silver's filler rows): the demo's volume
# (lakehouse.cli.DEMO_EVENTS_PER_DAY), in the simulator's default 24 capture objects a day
LANDING_EVENTS = 3000
LANDING_OBJECTS = 24
CURSOR_FILE = "sensor_cursor.json"
# steps that change nothing (the sensor tick keeps no cursor here): run REPEATS times each
READ_ONLY = ("sensor", "ledger", "backlog", "maintenance", "status")
REPEATS = int(os.environ.get("BENCH_HISTORY_REPEATS", "3"))
# silver's columns as its Spark step types them (pipelines/spark/transforms.py: silver_events)
SILVER_ARROW = pa.schema(
    [
        ("date", pa.date32()),
        ("region", pa.string()),
        ("event_id", pa.string()),
        ("event_ts", pa.timestamp("us", "UTC")),
        ("store_id", pa.int64()),
        ("sku", pa.string()),
        ("category", pa.string()),
        ("quantity", pa.int64()),
        ("unit_price", pa.float64()),
        ("currency", pa.string()),
        ("promo", pa.bool_()),
        ("channel", pa.string()),
        ("customer_hash", pa.string()),
        ("email_hash", pa.string()),
        ("landing_date", pa.date32()),
        ("is_late", pa.bool_()),
    ]
)
MEASURES = ("seconds", "bytes_read", "rss_mb", "objects_listed")


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LAKEHOUSE_HOME=str(home), LAKEHOUSE_ENV="local", PYTHONPATH=str(ROOT))
    env.setdefault("LAKEHOUSE_PII_KEY", "local-demo-key-not-a-secret")  # as make's default
    env.pop("DAGSTER_HOME", None)
    return env


def _filled(schema: pa.Schema, n: int, fixed: dict[str, Any], seed: int) -> pa.Table:
    """``n`` rows of ``schema``: ``fixed`` columns as given, the rest plausible fillers.

    Strings are distinct per row (ids, e-mails, payloads do not compress into a dictionary).
    """
    import numpy as np
    import pyarrow.compute as pc

    i = np.arange(n)
    cols: dict[str, Any] = {}
    for f in schema:
        if f.name in fixed:
            cols[f.name] = pa.repeat(pa.scalar(fixed[f.name], f.type), n)
        elif pa.types.is_integer(f.type):
            cols[f.name] = pa.array((i * 7 + seed) % 97).cast(f.type)
        elif pa.types.is_floating(f.type):
            cols[f.name] = pa.array(((i * 13 + seed) % 101) / 10).cast(f.type)
        elif pa.types.is_timestamp(f.type):
            cols[f.name] = pa.repeat(pa.scalar(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), f.type), n)
        elif pa.types.is_date(f.type):
            cols[f.name] = pa.repeat(pa.scalar(END, f.type), n)
        elif pa.types.is_boolean(f.type):
            cols[f.name] = pa.repeat(pa.scalar(False), n)
        elif pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            cols[f.name] = pa.repeat(pa.scalar(b"{}", f.type), n)
        else:
            number = pc.cast(pa.array(i), pa.string())
            cols[f.name] = pc.binary_join_element_wise(f"{f.name}-{seed}-", number, "")
    return pa.Table.from_pydict(cols, schema=schema)


def _gold(day: dt.date, region: str, rows: int) -> pa.Table:
    from pipelines.lake.schemas import GOLD_SCHEMA

    t = _filled(GOLD_SCHEMA, rows, {"date": day, "region": region}, day.toordinal())
    return t.set_column(
        GOLD_SCHEMA.get_field_index("store_id"),
        "store_id",
        pa.array([i % 20 + 1 for i in range(rows)], pa.int64()),
    ).set_column(
        GOLD_SCHEMA.get_field_index("sku"),
        "sku",
        pa.array([f"sku-{i // 20}" for i in range(rows)], pa.string()),
    )


def _landing(
    schema: pa.Schema,
    days: list[dt.date],
    region: str | None,
    n: int,
    fixed: dict[str, Any] | None = None,
    column: str = "landing_date",
) -> pa.Table:
    where = {} if region is None else {"region": region}
    return pa.concat_tables(
        _filled(schema, n, {column: d, **where, **(fixed or {})}, d.toordinal()) for d in days
    )


def _land(loc: Any, days: list[dt.date]) -> None:
    """Capture objects of ``days`` in a location's landing area, as the simulator lands them."""
    from pipelines.lake.config import load_config
    from pipelines.lake.storage import open_storage
    from pipelines.simulation.simulate import SimulationConfig, land_day

    sim = SimulationConfig(
        start=days[0],
        end=days[-1],
        events_per_day=LANDING_EVENTS,
        objects_per_day=LANDING_OBJECTS,
        late_share=0.0,
    )
    storage = open_storage(loc.root_uri(), loc.storage_options())
    currency = load_config("local").currency_of(loc.region)
    for day in days:
        land_day(sim, loc, storage, day, currency)


def _sensor_tick(cursor: str | None) -> dict[str, Any]:
    """One evaluation of the landed-objects sensor from ``cursor``: its cursor and requests."""
    import dagster as dg

    from resources import LakeResource
    from tests.helpers import definitions

    sensor = definitions().resolve_sensor_def("landed_objects_sensor")
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), cursor=cursor, resources={"lake": LakeResource()}
    ) as ctx:
        result = sensor(ctx)
    return {
        "cursor": result.cursor,
        "requests": sorted(r.partition_key for r in result.run_requests or []),
    }


# tables Spark writes in the product, with the statistics Spark keeps: on the columns the
# registry names (TableSpec.properties), strings bounded too, as delta-rs's write_deltalake does
# (and Spark's checkpoint interval); the others are written as the product's delta-rs writers
# write them (pipelines.lake.delta.append_rows: its statistics, no string bounds; its settings)
SPARK_WRITTEN = ("silver_events", "gold_daily_demand", "demand_features")


def _append(uri: str, data: pa.Table, partition_by: list[str]) -> None:
    from pipelines.lake import delta, tables

    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if name not in SPARK_WRITTEN:
        delta.append_rows(uri, data, {}, partition_by=partition_by)
        return
    write_deltalake(
        uri,
        data,
        mode="append",
        partition_by=partition_by,
        configuration={"delta.checkpointInterval": "10", **tables.table(name).properties()},
    )


def build(home: Path, days: int, rows: int) -> None:
    """A lake with ``days`` days of history, replicas synced (runs with LAKEHOUSE_HOME=home)."""
    from pipelines.lake import tables
    from pipelines.lake.config import load_config
    from pipelines.operations import health
    from pipelines.replication.options import SyncOptions
    from pipelines.replication.sync import sync

    cfg = load_config("local")
    history = [END - dt.timedelta(days=i) for i in range(days - 1, -1, -1)]
    for loc in cfg.locations.values():
        gold = loc.table_uri(tables.GOLD.name)
        for day in history:
            _append(gold, _gold(day, loc.region, rows), list(tables.GOLD.partition_by))
        for spec, n, fixed, column in (
            (tables.BRONZE, LANDING_EVENTS, {}, "landing_date"),
            (tables.QUARANTINE, 5, {}, "landing_date"),
            # other days: never parsed
            (tables.LEDGER, LANDING_OBJECTS, {"kind": "object"}, "landing_date"),
            (tables.SILVER, LANDING_EVENTS, {}, "date"),
        ):
            _monthly(loc.table_uri(spec.name), spec, history, loc.region, n, fixed, column)
        _land(loc, history)
    # the ML home's daily tables: features of every region, the forecast and its drift
    home_loc = cfg.home
    # (the model's categorical inputs take few values, as the demo's)
    few = {"region": home_loc.region, "category": "grocery"}
    for spec, n, fixed in (
        (tables.FEATURES, 3 * rows, few),
        (tables.FORECAST, 3 * rows, {"region": home_loc.region}),
        (tables.DRIFT, 20, {}),
    ):
        _monthly(home_loc.table_uri(spec.name), spec, history, None, n, fixed, "date")
    for rep in cfg.replicas():
        sync(cfg, rep.source_uri, rep.target_uri, SyncOptions(table=rep.table))
    # the sensor has seen the history: its cursor is where the next tick starts
    (home / CURSOR_FILE).write_text(json.dumps(_sensor_tick(None)["cursor"]))
    # the health rows earlier daily runs kept, each judged and carrying its weekday history:
    # measured and judged once here, over the whole history
    kept = cfg.home.storage_options()
    measured = health.measure(cfg, history[0], END, lambda loc: loc.storage_options())
    health.write(cfg, health.judge(cfg, kept, measured, history).health, kept)
    _upkeep_plans(cfg)
    _champion(cfg)


def _monthly(
    uri: str,
    spec: Any,
    history: list[dt.date],
    region: str | None,
    n: int,
    fixed: dict[str, Any],
    column: str,
) -> None:
    """``n`` filler rows a day of ``history`` in ``spec``'s table, a commit a month."""
    schema = spec.schema if spec.schema is not None else SILVER_ARROW
    assert schema.names == list(spec.columns), f"{spec.name}: the benchmark's columns are stale"
    for start in range(0, len(history), 30):
        data = _landing(schema, history[start : start + 30], region, n, fixed, column)
        _append(uri, data, list(spec.partition_by))


def _champion(cfg: Any) -> None:
    """A champion model, trained on the history's last three weeks of features.

    A daily run would have trained it on its 56-day window after 28 days of warm-up, which a
    30-day history does not have: the window here is given, the same in both lakes.
    """
    import pandas as pd

    from pipelines.lake import delta, tables
    from pipelines.ml import tracking
    from pipelines.ml.train import Window
    from resources.mlflow import MLflowResource

    uri = cfg.home.table_uri(tables.FEATURES.name)
    window = Window(
        END - dt.timedelta(days=20), END - dt.timedelta(days=7), END - dt.timedelta(days=6), END
    )
    frame = delta.read_between(uri, {}, "date", window.train_start, END).to_pandas()
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    track = MLflowResource().tracking()
    lineage = [
        tracking.Lineage(tables.FEATURES.name, uri, delta.table_version(uri, {}), len(frame))
    ]
    outcome = tracking.train_and_register(track, frame, lineage, cfg.ml, window=window)
    if not outcome.promoted:  # filler rows: the gate may refuse the first model
        track.client().set_registered_model_alias(
            track.model_name, tracking.CHAMPION, outcome.version
        )


def _upkeep_plans(cfg: Any) -> None:
    """What the last weekly upkeep left of bronze: its VACUUM plan, up to the history's end."""
    from pipelines.lake import tables
    from pipelines.lake.storage import open_storage
    from pipelines.operations.maintenance import compute_floor, log_vacuum
    from pipelines.replication.deltalog import latest_version

    for loc in cfg.locations.values():
        storage = open_storage(loc.table_uri(tables.BRONZE.name), loc.storage_options())
        version = latest_version(storage)
        assert version is not None
        floor = compute_floor(version, [])
        log_vacuum(storage, floor, retention_hours=cfg.maintenance.retention_hours)


def land_new_day(rows: int) -> None:
    """The day after the history: every region's landing objects and gold rows."""
    from pipelines.lake import tables
    from pipelines.lake.config import load_config

    cfg = load_config("local")
    for loc in cfg.locations.values():
        _append(
            loc.table_uri(tables.GOLD.name),
            _gold(NEW_DAY, loc.region, rows),
            list(tables.GOLD.partition_by),
        )
        _land(loc, [NEW_DAY])  # bronze and quarantine: the ingest step writes them


def _step_sensor(cfg: Any) -> dict[str, Any]:
    home = Path(os.environ["LAKEHOUSE_HOME"])
    return {"requests": _sensor_tick(json.loads((home / CURSOR_FILE).read_text()))["requests"]}


def _step_ingest(cfg: Any) -> dict[str, Any]:
    import dagster as dg

    from assets.partitions import date_region_key
    from pipelines.lake import tables
    from resources import resources_for
    from tests.helpers import asset

    reconciled = []
    for loc in cfg.locations.values():
        result = dg.materialize(
            [asset(tables.BRONZE.name)],
            resources=resources_for("local"),
            partition_key=date_region_key(NEW_DAY.isoformat(), loc.region),
        )
        for mat in result.get_asset_materialization_events():
            meta = mat.materialization.metadata
            if "reconciled" in meta:
                reconciled.append(bool(meta["reconciled"].value))
    return {"reconciled": bool(reconciled) and all(reconciled)}


def _step_ledger(cfg: Any) -> dict[str, Any]:
    from pipelines.ingest import ledger
    from pipelines.ingest.events import bronze_partition
    from pipelines.lake import tables

    objects = 0
    for loc in cfg.locations.values():
        uri, part = loc.table_uri(tables.LEDGER.name), bronze_partition(NEW_DAY, loc.region)
        objects += len(ledger.read_state(uri, loc.storage_options(), part).objects)
        ledger.read_hashes(uri, loc.storage_options(), part)
    return {"objects": objects}


def _step_backlog(cfg: Any) -> dict[str, Any]:
    from pipelines.ingest.closed_day import backlog

    later = dt.datetime.combine(NEW_DAY, dt.time(23, 30), dt.UTC)
    return {
        "backlog": {
            loc.name: backlog(loc, loc.storage_options(), NEW_DAY, later)
            for loc in cfg.locations.values()
        }
    }


def _materialize(name: str, keys: list[Any]) -> dict[str, Any]:
    """``name`` materialized through Dagster, a run per partition key (None: unpartitioned)."""
    import dagster as dg

    from resources import resources_for
    from tests.helpers import asset

    passed = []
    for key in keys:
        result = dg.materialize([asset(name)], resources=resources_for("local"), partition_key=key)
        passed += [ev.passed for ev in result.get_asset_check_evaluations()]
    return {"runs": len(keys), "checks_passed": all(passed)}


def _region_keys(cfg: Any) -> list[Any]:
    from assets.partitions import date_region_key

    return [date_region_key(NEW_DAY.isoformat(), loc.region) for loc in cfg.locations.values()]


def _step_silver(cfg: Any) -> dict[str, Any]:
    return _materialize("silver_events", _region_keys(cfg))


def _step_gold(cfg: Any) -> dict[str, Any]:
    from pipelines.lake import tables

    return _materialize(tables.GOLD.name, _region_keys(cfg))


def _step_features(cfg: Any) -> dict[str, Any]:
    from pipelines.lake import tables

    return _materialize(tables.FEATURES.name, [NEW_DAY.isoformat()])


def _step_forecast(cfg: Any) -> dict[str, Any]:
    from pipelines.lake import tables

    return _materialize(tables.FORECAST.name, [NEW_DAY.isoformat()])


def _step_drift(cfg: Any) -> dict[str, Any]:
    from pipelines.lake import tables

    return _materialize(tables.DRIFT.name, [NEW_DAY.isoformat()])


def _step_train(cfg: Any) -> dict[str, Any]:
    """A retraining; with what its window's files and the whole table hold, to compare."""
    import dagster as dg
    import pyarrow.compute as pc

    from pipelines.lake import delta, tables
    from resources import resources_for
    from tests.helpers import asset

    result = dg.materialize([asset("demand_model")], resources=resources_for("local"))
    window = result.asset_materializations_for_node("demand_model")[0].metadata["window"].value
    files = delta.file_actions(cfg.home.table_uri(tables.FEATURES.name), {})
    assert files is not None and isinstance(window, dict)
    days = pc.cast(files["partition.date"], pa.date32())
    lo, hi = (
        dt.date.fromisoformat(window["train_start"]),
        dt.date.fromisoformat(window["holdout_end"]),
    )
    inside = pc.and_(pc.greater_equal(days, pa.scalar(lo)), pc.less_equal(days, pa.scalar(hi)))
    return {
        "checks_passed": all(ev.passed for ev in result.get_asset_check_evaluations()),
        "window": window,
        "window_bytes": int(pc.sum(files.filter(inside)["size_bytes"]).as_py() or 0),
        "table_bytes": int(pc.sum(files["size_bytes"]).as_py() or 0),
    }


def _step_replica(cfg: Any) -> dict[str, Any]:
    import dagster as dg

    from resources import resources_for
    from tests.helpers import asset

    result = dg.materialize(
        [asset(r.name) for r in cfg.replicas()], resources=resources_for("local")
    )
    copied = verify = 0
    for mat in result.get_asset_materialization_events():
        copied += int(mat.materialization.metadata["bytes_copied"].value)  # type: ignore[arg-type]
    checks = result.get_asset_check_evaluations()
    for ev in checks:
        meta = ev.metadata
        if "verify_replica_bytes_read" in meta:
            verify += int(meta["verify_replica_bytes_read"].value)  # type: ignore[arg-type]
            verify += int(meta["verify_source_bytes_read"].value)  # type: ignore[arg-type]
    return {
        "copied_bytes": copied,
        "verify_bytes": verify,
        "checks_passed": all(ev.passed for ev in checks),
    }


def _step_health(cfg: Any) -> dict[str, Any]:
    import dagster as dg

    from resources import resources_for
    from tests.helpers import asset

    # the new day's partition: its rows, and the kept weeks before it as the baseline
    result = dg.materialize(
        [asset("lakehouse_health")],
        resources=resources_for("local"),
        partition_key=NEW_DAY.isoformat(),
    )
    return {"success": result.success}


def _step_maintenance(cfg: Any) -> dict[str, Any]:
    from pipelines.lake import tables
    from pipelines.operations.maintenance import maintain

    return {
        "versions": [
            maintain(cfg, tables.BRONZE.name, loc.name, dry_run=True).version_before
            for loc in cfg.locations.values()
        ]
    }


def _step_status(cfg: Any) -> dict[str, Any]:
    from lakehouse import cli

    return {"exit": cli.main(["status", "--json"])}


STEP_RUNS = {
    "sensor": _step_sensor,
    "ingest": _step_ingest,
    "ledger": _step_ledger,
    "backlog": _step_backlog,
    "silver": _step_silver,
    "gold": _step_gold,
    "replica": _step_replica,
    "features": _step_features,
    "forecast": _step_forecast,
    "drift": _step_drift,
    "train": _step_train,
    "health": _step_health,
    "maintenance": _step_maintenance,
    "status": _step_status,
}


def run_step(step: str) -> dict[str, Any]:
    """One step in this process (a child): seconds, bytes read per location, peak RSS."""
    from pipelines.lake.config import load_config
    from pipelines.lake.storage import bytes_read, bytes_read_since, bytes_under, objects_listed

    cfg = load_config("local")
    listed_before = objects_listed()
    before = bytes_read()
    t0 = time.perf_counter()
    out = STEP_RUNS[step](cfg)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    counts = bytes_read_since(before)
    jvm = _jvm_figures()
    out["bytes_read_spark"] = jvm["bytes_read"]
    out["bytes_read"] = sum(counts.values()) + jvm["bytes_read"]
    out["bytes_read_by_location"] = {
        loc.name: bytes_under(counts, loc.root_uri()) for loc in cfg.locations.values()
    }
    out["objects_listed"] = sum(v - listed_before.get(k, 0) for k, v in objects_listed().items())
    out["rss_mb_jvm"] = jvm["rss_mb"]
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_mb"] = round(own + jvm["rss_mb"], 1)
    return out


def _jvm_figures() -> dict[str, Any]:
    """What this process's Spark JVM read through Hadoop's file systems, and its peak RSS."""
    if "pyspark" not in sys.modules:
        return {"bytes_read": 0, "rss_mb": 0.0}
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context  # the session the steps started
    if sc is None:
        return {"bytes_read": 0, "rss_mb": 0.0}
    stats = sc._jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics()
    read = sum(int(stats.get(i).getBytesRead()) for i in range(stats.size()))
    proc = getattr(sc._gateway, "proc", None)  # the JVM pyspark launched
    peak = 0.0
    if proc is not None:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return {"bytes_read": read, "rss_mb": round(peak, 1)}


BEFORE_SCRIPT = """
import json, resource, time, sys
import dagster as dg
from assets.replicas import build_replicas
from data_quality.suites import build_suites
from pipelines.lake.config import load_config
from resources import resources_for
try:  # code that has the storage layer's read counter (#28) says what it read
    from pipelines.lake.storage import bytes_read
except ImportError:
    bytes_read = None
cfg = load_config("local")
assets = build_replicas(cfg, build_suites(cfg))
before = bytes_read() if bytes_read else {}
t0 = time.perf_counter()
result = dg.materialize(assets, resources=resources_for("local"))
seconds = time.perf_counter() - t0
counted = (sum(bytes_read().values()) - sum(before.values())) if bytes_read else None
copied = sum(int(m.materialization.metadata["bytes_copied"].value)
             for m in result.get_asset_materialization_events())
print(json.dumps({"seconds": round(seconds, 3), "copied_bytes": copied, "counted": counted,
                  "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def _child(home: Path, args: list[str], cwd: Path = ROOT, code: str | None = None) -> Any:
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "benchmarks.history"]
    env = _env(home)
    if code:
        env["PYTHONPATH"] = str(cwd)
    done = subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode == -signal.SIGABRT and lines and lines[-1].startswith("{"):
        # the step finished and printed its figures; a native library's thread then aborted
        # the interpreter's exit ("terminate called without an active exception"), seen once
        # in a backlog step: kept, and said in the JSON (a re-run would measure other work)
        got = json.loads(lines[-1])
        got["aborted_at_exit"] = done.stderr.strip().splitlines()[-1][:200]
        return got
    if done.returncode != 0:
        raise RuntimeError(f"{args or 'before'} failed: {done.stderr[-3000:]}")
    return json.loads(lines[-1])


def _table_bytes(home: Path) -> int:
    """Live data bytes of every replica's source and (twice) of the replica: the old reads."""
    code = """
import json
from pipelines.lake.config import load_config
from pipelines.lake.delta import file_actions
import pyarrow.compute as pc
cfg = load_config("local")
def size(uri):
    a = file_actions(uri, {})
    return 0 if a is None else int(pc.sum(a.column("size_bytes")).as_py() or 0)
print(json.dumps(sum(size(r.source_uri) + 2 * size(r.target_uri) for r in cfg.replicas())))
"""
    return int(_child(home, [], code=code))


def _before(home: Path, commit: str) -> dict[str, Any] | None:
    if not commit:
        return None
    old = Path(tempfile.mkdtemp(prefix="history-before-"))
    try:
        archive = subprocess.run(
            ["git", "archive", commit], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        result = _child(home, [], cwd=old, code=BEFORE_SCRIPT)
    finally:
        shutil.rmtree(old, ignore_errors=True)
    counted = result.pop("counted", None)
    if counted is not None:
        result["bytes_read"] = counted
        result["bytes_read_note"] = "the storage layer's counter, as the steps'"
    else:
        result["bytes_read"] = _table_bytes(home)
        result["bytes_read_note"] = "full reads: source once, replica twice (live files' sizes)"
    result["commit"] = commit
    return result


def _median_run(home: Path, step: str) -> dict[str, Any]:
    """A step's figures; a read-only step's of the run of median seconds out of REPEATS.

    The read-only steps take under a second or two, so one run's time is mostly the machine's
    noise (the same step measured 1.2 and 1.6 times slower in two runs, bytes equal).
    """
    runs = [_child(home, ["--step", step]) for _ in range(REPEATS if step in READ_ONLY else 1)]
    got = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {**got, "seconds_runs": [r["seconds"] for r in runs]} if len(runs) > 1 else got


def _ratio(large: float, small: float) -> float:
    return round(large / small, 3) if small else (1.0 if not large else float("inf"))


STEPS = tuple(STEP_RUNS)


def main() -> None:
    """Build both lakes, run the steps, print the JSON."""
    if len(sys.argv) > 2 and sys.argv[1] == "--step":
        print(json.dumps(run_step(sys.argv[2])))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--build":
        build(Path(os.environ["LAKEHOUSE_HOME"]), int(sys.argv[2]), int(sys.argv[3]))
        land_new_day(int(sys.argv[3]))
        print(json.dumps({"built": True}))
        return
    small = int(os.environ.get("BENCH_HISTORY_SMALL", "30"))
    large = int(os.environ.get("BENCH_HISTORY_LARGE", "365"))
    rows = int(os.environ.get("BENCH_HISTORY_ROWS", "1000"))
    base = subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    before_commit = os.environ.get("BENCH_HISTORY_BEFORE", base)
    work = Path(tempfile.mkdtemp(prefix="history-bench-"))
    chosen = [x for x in os.environ.get("BENCH_HISTORY_STEPS", ",".join(STEPS)).split(",") if x]
    unknown = sorted(set(chosen) - set(STEPS))
    if unknown:
        raise SystemExit(f"BENCH_HISTORY_STEPS: unknown step(s) {unknown}; known: {STEPS}")
    steps: dict[str, dict[str, Any]] = {s: {} for s in STEPS if s in chosen}
    build_seconds: dict[str, float] = {}
    before = None
    try:
        for label, days in (("small", small), ("large", large)):
            home = work / label
            t0 = time.perf_counter()
            _child(home, ["--build", str(days), str(rows)])
            build_seconds[label] = round(time.perf_counter() - t0, 1)
            if label == "large" and before_commit and "replica" in steps:
                # the old code on a copy of the same lake, same new day
                copy = work / "large-before"
                shutil.copytree(home, copy)
                before = _before(copy, before_commit)
                shutil.rmtree(copy, ignore_errors=True)
            for step in steps:
                if step in WINDOW_STEPS and days < TRAIN_MIN_DAYS:
                    continue  # the window needs more history than the lake has
                steps[step][label] = _median_run(home, step)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures: dict[str, dict[str, Any]] = {}
    windowed = {k: steps.pop(k) for k in WINDOW_STEPS if k in steps}
    for step, got in steps.items():
        s, g = got["small"], got["large"]
        repeated = {x: r["seconds_runs"] for x, r in got.items() if "seconds_runs" in r}
        figures[step] = {
            **{f"{k}_{label}": got[label][k] for k in MEASURES for label in ("small", "large")},
            "time_ratio": _ratio(g["seconds"], s["seconds"]),
            "bytes_ratio": _ratio(g["bytes_read"], s["bytes_read"]),
            "rss_ratio": _ratio(g["rss_mb"], s["rss_mb"]),
            "bytes_read_by_location_large": g["bytes_read_by_location"],
            **{f"{k}_{x}": got[x][k] for k in ("bytes_read_spark", "rss_mb_jvm") for x in got},
            **{f"seconds_runs_{x}": runs for x, runs in repeated.items()},
        }
    replica = steps.get("replica", {}).get("large", {})
    ingest = steps.get("ingest", {})
    out = {
        "days_small": small,
        "days_large": large,
        "gold_rows_per_region_day": rows,
        "steps": figures,
        "worst_time_ratio": max(f["time_ratio"] for f in figures.values()),
        "worst_bytes_ratio": max(f["bytes_ratio"] for f in figures.values()),
        "worst_rss_ratio": max(f["rss_ratio"] for f in figures.values()),
        "train": {
            label: {
                **{k: got[k] for k in (*MEASURES, "window", "window_bytes", "table_bytes")},
                "bytes_read_to_window_bytes": round(
                    got["bytes_read"] / max(got["window_bytes"], 1), 3
                ),
            }
            for label, got in windowed.get("train", {}).items()
        },
        "aborted_at_exit": sorted(
            f"{s} ({x})"
            for s, got in {**steps, **windowed}.items()
            for x in got
            if "aborted_at_exit" in got[x]
        ),
        "checks_passed": {
            s: all(got[x].get("checks_passed", True) for x in got)
            for s, got in {**steps, **windowed}.items()
        },
        "replica_verify_bytes_per_copied_byte": round(
            replica["verify_bytes"] / max(replica["copied_bytes"], 1), 3
        )
        if replica
        else None,
        "replica_checks_passed": all(
            steps["replica"][x]["checks_passed"] for x in steps.get("replica", {})
        ),
        "replica_before_large": before,
        "status_seconds_large": steps["status"]["large"]["seconds"] if "status" in steps else None,
        # the new day's ingest, every region and both lakes: landed = ingested + quarantined
        # + duplicates for every object (the bronze asset's reconciliation)
        "reconciled": all(ingest[x]["reconciled"] for x in ingest) if ingest else None,
        "build_seconds": build_seconds,
        "goals": {"ratios": GOAL_RATIO, "replica_verify_bytes_per_copied_byte": 2, "status_s": 3},
        "not_covered": NOT_COVERED,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
