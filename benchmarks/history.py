"""History: does a run cost what a day costs, with 30 and with 365 days behind it?

Builds the same lake twice (local folders, three regions), with ``days_small`` and
``days_large`` days of history: each region's landing objects (the capture format's own
keys, a few objects a day, as the simulator lands them), its gold (one commit per day, as the
daily runs make it), bronze, quarantine and ingest ledger (partitions per landing day, written
in monthly commits), the ML home's health table, the replicas synced up to date, and the
landed-objects sensor's cursor after it saw the history, and bronze's VACUUM plan as the last
weekly upkeep left it (``_lakehouse_upkeep/vacuum.json``: the version it planned to, nothing
waiting, as the history holds no removal). Then it lands one new day in every
region (landing objects, and the gold row set) and runs, each step in a fresh process (so the
peak RSS is the step's), in this order:

- ``sensor``: one tick of ``landed_objects_sensor`` from the cursor that saw the history;
- ``ingest``: the ``bronze_events`` asset (with the quarantine and checks) for the new day's
  partition of every region, through Dagster as the sensor's runs do;
- ``ledger``: what an ingest run reads of the ledger before claiming a batch (the partition's
  state and its event-id hashes), every region;
- ``backlog``: the hourly safety net's question for the new day, every region (a listing of
  the day's folders and a narrow ledger read);
- ``replica``: both replica assets, materialized as the product runs them (sync, per-run
  verification of what was copied, Great Expectations on the touched partitions);
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
reads are not counted. ``objects_listed``: objects the steps' listings returned (a local
folder counts every file it scanned). ``before``: the replica step on the large lake with the
code before this change (``git archive`` of ``BENCH_HISTORY_BEFORE``, default the branch's
base), whose bytes are the storage layer's counter when that code has it, else those of its
full reads (source once, replica twice: the live files' sizes).

Not covered here (honest, see the JSON's ``not_covered``): Spark steps (silver, gold,
features), training and registered models, forecast and drift.

Knobs: BENCH_HISTORY_SMALL (30), BENCH_HISTORY_LARGE (365), BENCH_HISTORY_ROWS (gold rows per
region-day, 1000), BENCH_HISTORY_BEFORE (a commit, or "" to skip the before run; default the
merge base with main), BENCH_HISTORY_REPO (the git repository holding it; default this tree),
BENCH_HISTORY_STEPS (a comma-separated subset of the steps, default all).
Prints one JSON object as its last line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
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
    "spark steps (silver, gold, features)",
    "training, registered models, forecast, drift",
    "the maintenance planner's model pins (no MLflow registry here)",
]
LANDING_EVENTS = 200  # events a region-day lands (bronze's filler volume)
LANDING_OBJECTS = 4  # objects a region-day lands in (history and new day)
CURSOR_FILE = "sensor_cursor.json"
MEASURES = ("seconds", "bytes_read", "rss_mb", "objects_listed")


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LAKEHOUSE_HOME=str(home), LAKEHOUSE_ENV="local", PYTHONPATH=str(ROOT))
    env.pop("DAGSTER_HOME", None)
    return env


def _filled(schema: pa.Schema, n: int, fixed: dict[str, Any], seed: int) -> pa.Table:
    """``n`` rows of ``schema``: ``fixed`` columns as given, the rest plausible fillers."""
    cols: dict[str, list[Any]] = {}
    for f in schema:
        if f.name in fixed:
            cols[f.name] = [fixed[f.name]] * n
        elif pa.types.is_integer(f.type):
            cols[f.name] = [(i * 7 + seed) % 97 for i in range(n)]
        elif pa.types.is_floating(f.type):
            cols[f.name] = [((i * 13 + seed) % 101) / 10 for i in range(n)]
        elif pa.types.is_timestamp(f.type):
            cols[f.name] = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * n
        elif pa.types.is_date(f.type):
            cols[f.name] = [END] * n
        elif pa.types.is_boolean(f.type):
            cols[f.name] = [False] * n
        elif pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            cols[f.name] = [b"{}"] * n
        else:
            cols[f.name] = [f"{f.name}-{(i + seed) % 50}" for i in range(n)]
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
    schema: pa.Schema, days: list[dt.date], region: str, n: int, fixed: dict[str, Any] | None = None
) -> pa.Table:
    return pa.concat_tables(
        _filled(schema, n, {"landing_date": d, "region": region, **(fixed or {})}, d.toordinal())
        for d in days
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


def _append(uri: str, data: pa.Table, partition_by: list[str]) -> None:
    write_deltalake(
        uri,
        data,
        mode="append",
        partition_by=partition_by,
        configuration={"delta.checkpointInterval": "10"},
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
        for spec, n, fixed in (
            (tables.BRONZE, LANDING_EVENTS, {}),
            (tables.QUARANTINE, 5, {}),
            (tables.LEDGER, LANDING_OBJECTS, {"kind": "object"}),  # other days: never parsed
        ):
            for start in range(0, days, 30):
                chunk = history[start : start + 30]
                data = _landing(spec.schema, chunk, loc.region, n, fixed)
                _append(loc.table_uri(spec.name), data, list(spec.partition_by))
        _land(loc, history)
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
    "replica": _step_replica,
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
    out["bytes_read"] = sum(counts.values())
    out["bytes_read_by_location"] = {
        loc.name: bytes_under(counts, loc.root_uri()) for loc in cfg.locations.values()
    }
    out["objects_listed"] = sum(v - listed_before.get(k, 0) for k, v in objects_listed().items())
    out["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


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
    if done.returncode != 0:
        raise RuntimeError(f"{args or 'before'} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
                steps[step][label] = _child(home, ["--step", step])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures: dict[str, dict[str, Any]] = {}
    for step, got in steps.items():
        s, g = got["small"], got["large"]
        figures[step] = {
            **{f"{k}_{label}": got[label][k] for k in MEASURES for label in ("small", "large")},
            "time_ratio": _ratio(g["seconds"], s["seconds"]),
            "bytes_ratio": _ratio(g["bytes_read"], s["bytes_read"]),
            "rss_ratio": _ratio(g["rss_mb"], s["rss_mb"]),
            "bytes_read_by_location_large": g["bytes_read_by_location"],
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
