"""`make run`, timed: the whole demo in a fresh lake and Dagster instance, and its stages.

Runs ``python -m lakehouse.cli demo`` (what ``make run`` runs) in a child process with a fresh
LAKEHOUSE_HOME and DAGSTER_HOME in a temporary folder, then reads the Dagster instance it left
behind. Prints one JSON object as its last line: seconds (the demo's wall time), stages
(seconds per stage, from the demo's summary), ingest (workers or runs), ingest_partitions,
ingest_runs, code_location_load_s (import of
``lakehouse.definitions`` and ``build_definitions()`` in a fresh interpreter; also
code_location_import_s, heavy_modules_at_load and definitions_validate_s, the seconds of
``dagster definitions validate``), load_average
(the machine is shared) and reconciled (every bronze partition's reconciliation check passed
and its counts add up), python_cpu_seconds (CPU of the demo's Python processes, its workers
included; Spark's JVM is not reaped by the demo, so not counted).

Knobs (environment): BENCH_DEMO_ARGS (extra arguments for ``lakehouse demo``, e.g.
``--from 2026-10-01``), BENCH_KEEP (keep the temporary folder and print where it is).
"""

import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METADATA_COUNTS = ("landed", "ingested", "quarantined", "duplicates_dropped")
LOAD_SNIPPET = """
import json, sys, time
t = time.perf_counter()
import lakehouse.definitions
imported = time.perf_counter() - t
lakehouse.definitions.build_definitions()
built = time.perf_counter() - t
heavy = [m for m in ("pyspark", "mlflow", "great_expectations", "sklearn", "pandas")
         if m in sys.modules]
print(json.dumps({"import_s": round(imported, 3), "load_s": round(built, 3), "heavy": heavy}))
"""


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LAKEHOUSE_HOME=str(tmp / "home"),
        DAGSTER_HOME=str(tmp / "dagster"),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    env.setdefault("LAKEHOUSE_PII_KEY", "local-demo-key-not-a-secret")
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env


def _fresh(tmp: Path) -> None:
    (tmp / "home").mkdir()
    (tmp / "dagster").mkdir()
    # the instance `make setup` gives the demo (run queue, concurrency pools)
    shutil.copy(ROOT / "deploy" / "dagster-local.yaml", tmp / "dagster" / "dagster.yaml")


def code_location_load(env: dict[str, str]) -> dict[str, Any]:
    """Import and build of the code location in a new interpreter: seconds, heavy modules.

    ``import_s`` is the import of ``lakehouse.definitions``; ``load_s`` adds
    ``build_definitions()``; ``heavy`` lists the heavy libraries loaded by then (they should
    load when a run needs them, not when the code location loads).
    """
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SNIPPET],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def definitions_validate_s(env: dict[str, str]) -> float:
    """Seconds of ``dagster definitions validate`` on workspace.yaml (what a deploy checks)."""
    dagster = Path(sys.executable).with_name("dagster")
    t = time.perf_counter()
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"dagster definitions validate failed:\n{out.stderr[-2000:]}")
    return round(seconds, 2)


def _cpu_of_children() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_demo(env: dict[str, str]) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds of ``lakehouse demo``, CPU seconds of its Python processes, its summary.

    The CPU seconds say what the Python side costs whatever else the shared machine runs.
    """
    args = shlex.split(os.environ.get("BENCH_DEMO_ARGS", ""))
    cpu = _cpu_of_children()
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "demo", "--json", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - t
    cpu = _cpu_of_children() - cpu
    if out.returncode != 0:
        raise SystemExit(f"lakehouse demo failed (exit {out.returncode}):\n{out.stdout[-4000:]}")
    text = out.stdout
    return seconds, cpu, json.loads(text[text.index("{") :])


def reconciled(dagster_home: Path, expected: int) -> dict[str, Any]:
    """Every bronze partition: its latest reconciliation check passed, its counts add up.

    A run's check evaluation carries no partition key: it is joined to the partition through
    the run that materialized it. A runless one (the demo's workers) names its partition in
    its metadata (``lakehouse/worker.py`` says why).
    """
    import dagster as dg

    from assets.bronze import RECONCILIATION_CHECK
    from pipelines.lake import tables

    bronze = dg.AssetKey(tables.BRONZE.name)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run_of: dict[str, str] = {}  # partition -> its newest materializing run ("": none)
        sums: dict[str, bool] = {}
        for rec in instance.fetch_materializations(bronze, limit=10_000).records:
            mat = rec.asset_materialization
            if mat is None or mat.partition is None or mat.partition in run_of:
                continue
            run_of[mat.partition] = rec.run_id
            v = {k: int(mat.metadata[k].value) for k in METADATA_COUNTS}  # type: ignore[arg-type]
            sums[mat.partition] = v["landed"] == sum(v[k] for k in METADATA_COUNTS[1:])
        key = dg.AssetCheckKey(bronze, RECONCILIATION_CHECK)
        passed: dict[str, bool] = {}  # a run id, or "|" + a runless evaluation's partition
        for rec in instance.event_log_storage.get_asset_check_execution_history(
            key, limit=10_000
        ):  # newest first
            ok = rec.status.value == "SUCCEEDED"
            if rec.run_id:
                passed.setdefault(rec.run_id, ok)
            elif rec.event is not None and rec.event.dagster_event is not None:
                meta = rec.event.dagster_event.event_specific_data.metadata  # type: ignore[union-attr]
                if "partition" in meta:
                    passed.setdefault("|" + str(meta["partition"].value), ok)
    checks = {p: passed.get(run or "|" + p, False) for p, run in run_of.items()}
    ok = len(run_of) == expected and all(checks.values()) and all(sums.values())
    return {"reconciled": ok, "partitions_checked": len(run_of)}


def main() -> None:
    """Time the demo in a fresh temporary lake and print the JSON summary last."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    try:
        _fresh(tmp)
        env = _env(tmp)
        load = code_location_load(env)
        validate_s = definitions_validate_s(env)
        load_before = os.getloadavg()
        seconds, cpu, summary = run_demo(env)
        load_after = os.getloadavg()
        print(json.dumps(summary, default=str), flush=True)
        partitions = int(summary["ingest_partitions"])
        rec = reconciled(tmp / "dagster", partitions)
        print(
            json.dumps(
                {
                    "seconds": round(seconds, 1),
                    "python_cpu_seconds": round(cpu, 1),
                    "stages": summary.get("stages"),
                    "ingest": summary.get("ingest"),
                    "ingest_partitions": partitions,
                    "ingest_runs": int(summary["ingest_runs"]),
                    "ingest_failed": len(summary.get("ingest_failed") or []),
                    "code_location_load_s": load["load_s"],
                    "code_location_import_s": load["import_s"],
                    "heavy_modules_at_load": load["heavy"],
                    "definitions_validate_s": validate_s,
                    **rec,
                    "load_average": {
                        "before": round(load_before[0], 2),
                        "after_1m": round(load_after[0], 2),
                        "after_15m": round(load_after[2], 2),
                    },
                }
            )
        )
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
