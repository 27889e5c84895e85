"""History: does a run cost what a day costs, with 30 and with 365 days behind it?

Builds the same lake twice (local folders, three regions), with ``days_small`` and
``days_large`` days of history: each region's gold (one commit per day, as the daily runs
make it), bronze and quarantine (partitions per landing day, written in monthly commits),
the ML home's health table, and the replicas synced up to date. Then it lands one new day in
every region's gold, bronze and quarantine and runs, each in a fresh process (so the peak RSS
is the step's):

- ``replica``: both replica assets, materialized as the product runs them (sync, per-run
  verification of what was copied, Great Expectations on the touched partitions);
- ``health``: the ``lakehouse_health`` asset's partition of the new day (the day's partitions,
  and 62 kept days of health rows as the baseline);
- ``status``: ``lakehouse status --json`` (kept health rows of 63 days, and the tables' logs
  for storage at rest).

Bytes read are the storage layer's per-location counter (pipelines/lake/storage/interface.py): what
obstore reads, plus the data files delta-rs opens where the engines say so; delta-rs's log
reads are not counted. ``before``: the replica step on the large lake with the code before
this change (``git archive`` of ``BENCH_HISTORY_BEFORE``, default the branch's base), whose
bytes are those of its full reads (source once, replica twice: the live files' sizes).

Not covered here (honest, see the JSON's ``not_covered``): the ingest step and its ledger,
the landing listing behind the sensor and schedule, Spark steps (silver, gold, features),
training and registered models, the maintenance planner.

Knobs: BENCH_HISTORY_SMALL (30), BENCH_HISTORY_LARGE (365), BENCH_HISTORY_ROWS (gold rows per
region-day, 1000), BENCH_HISTORY_BEFORE (a commit, or "" to skip the before run; default the
merge base with main), BENCH_HISTORY_REPO (the git repository holding it; default this tree).
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
GOAL_RATIO = 1.3
STEPS = ("replica", "health", "status")
NOT_COVERED = [
    "ingest (and its ledger)",
    "landing listing behind the sensor and the hourly schedule",
    "spark steps (silver, gold, features)",
    "training, registered models, forecast, drift",
    "maintenance planner",
]


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


def _landing(schema: pa.Schema, days: list[dt.date], region: str, n: int) -> pa.Table:
    return pa.concat_tables(
        _filled(schema, n, {"landing_date": d, "region": region}, d.toordinal()) for d in days
    )


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
        for spec, n in ((tables.BRONZE, 200), (tables.QUARANTINE, 5)):
            for start in range(0, days, 30):
                chunk = history[start : start + 30]
                data = _landing(spec.schema, chunk, loc.region, n)
                _append(loc.table_uri(spec.name), data, list(spec.partition_by))
    for rep in cfg.replicas():
        sync(cfg, rep.source_uri, rep.target_uri, SyncOptions(table=rep.table))
    # the health rows earlier daily runs kept: measured once here, over the whole history
    measured = health.measure(cfg, history[0], END, lambda loc: loc.storage_options())
    health.write(cfg, measured, cfg.home.storage_options())


def land_new_day(rows: int) -> None:
    """The day after the history, in every region's gold, bronze and quarantine."""
    from pipelines.lake import tables
    from pipelines.lake.config import load_config

    cfg = load_config("local")
    day = END + dt.timedelta(days=1)
    for loc in cfg.locations.values():
        _append(
            loc.table_uri(tables.GOLD.name),
            _gold(day, loc.region, rows),
            list(tables.GOLD.partition_by),
        )
        for spec, n in ((tables.BRONZE, 200), (tables.QUARANTINE, 5)):
            data = _landing(spec.schema, [day], loc.region, n)
            _append(loc.table_uri(spec.name), data, list(spec.partition_by))


def run_step(step: str) -> dict[str, Any]:
    """One step in this process (a child): seconds, bytes read per location, peak RSS."""
    import dagster as dg

    from pipelines.lake.config import load_config
    from pipelines.lake.storage import bytes_read, bytes_read_since, bytes_under
    from resources import resources_for
    from tests.helpers import asset

    cfg = load_config("local")
    out: dict[str, Any] = {}
    before = bytes_read()
    t0 = time.perf_counter()
    if step == "replica":
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
        out.update(
            copied_bytes=copied,
            verify_bytes=verify,
            checks_passed=all(ev.passed for ev in checks),
        )
    elif step == "health":
        # the new day's partition: its rows, and the kept weeks before it as the baseline
        result = dg.materialize(
            [asset("lakehouse_health")],
            resources=resources_for("local"),
            partition_key=(END + dt.timedelta(days=1)).isoformat(),
        )
        out["success"] = result.success
    elif step == "status":
        from lakehouse import cli

        out["exit"] = cli.main(["status", "--json"])
    out["seconds"] = round(time.perf_counter() - t0, 3)
    counts = bytes_read_since(before)
    out["bytes_read"] = sum(counts.values())
    out["bytes_read_by_location"] = {
        loc.name: bytes_under(counts, loc.root_uri()) for loc in cfg.locations.values()
    }
    out["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


BEFORE_SCRIPT = """
import json, resource, time, sys
import dagster as dg
from assets.replicas import build_replicas
from data_quality.suites import build_suites
from pipelines.lake.config import load_config
from resources import resources_for
cfg = load_config("local")
assets = build_replicas(cfg, build_suites(cfg))
t0 = time.perf_counter()
result = dg.materialize(assets, resources=resources_for("local"))
seconds = time.perf_counter() - t0
copied = sum(int(m.materialization.metadata["bytes_copied"].value)
             for m in result.get_asset_materialization_events())
print(json.dumps({"seconds": round(seconds, 3), "copied_bytes": copied,
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
    result["bytes_read"] = _table_bytes(home)
    result["bytes_read_note"] = "full reads: source once, replica twice (live files' sizes)"
    result["commit"] = commit
    return result


def _ratio(large: float, small: float) -> float:
    return round(large / small, 3) if small else (1.0 if not large else float("inf"))


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
    steps: dict[str, dict[str, Any]] = {s: {} for s in STEPS}
    build_seconds: dict[str, float] = {}
    before = None
    try:
        for label, days in (("small", small), ("large", large)):
            home = work / label
            t0 = time.perf_counter()
            _child(home, ["--build", str(days), str(rows)])
            build_seconds[label] = round(time.perf_counter() - t0, 1)
            if label == "large" and before_commit:
                # the old code on a copy of the same lake, same new day
                copy = work / "large-before"
                shutil.copytree(home, copy)
                before = _before(copy, before_commit)
                shutil.rmtree(copy, ignore_errors=True)
            for step in STEPS:
                steps[step][label] = _child(home, ["--step", step])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures: dict[str, dict[str, Any]] = {}
    for step, got in steps.items():
        s, g = got["small"], got["large"]
        figures[step] = {
            "small": {k: s[k] for k in ("seconds", "bytes_read", "rss_mb")},
            "large": {k: g[k] for k in ("seconds", "bytes_read", "rss_mb")},
            "time_ratio": _ratio(g["seconds"], s["seconds"]),
            "bytes_ratio": _ratio(g["bytes_read"], s["bytes_read"]),
            "rss_ratio": _ratio(g["rss_mb"], s["rss_mb"]),
            "bytes_read_by_location_large": g["bytes_read_by_location"],
        }
    replica = steps["replica"]["large"]
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
        ),
        "replica_checks_passed": all(
            steps["replica"][x]["checks_passed"] for x in steps["replica"]
        ),
        "replica_before_large": before,
        "status_seconds_large": steps["status"]["large"]["seconds"],
        "reconciled": None,  # not measured: needs the ingest and ledger steps (not covered)
        "build_seconds": build_seconds,
        "goals": {"ratios": GOAL_RATIO, "replica_verify_bytes_per_copied_byte": 2, "status_s": 3},
        "not_covered": NOT_COVERED,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
