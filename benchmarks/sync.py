"""Sync: throughput against a plain obstore copy, incremental bytes, no-op cost, kill trials.

Local folders on both sides (the machine's disk; emulators would mostly measure themselves).
Prints one JSON object as its last line: initial_mb_per_s, raw_copy_mb_per_s, ratio_to_raw,
incremental_bytes_ratio, noop_sync_s, naive_noop_sync_s, noop_speedup, noop_table_files,
kill_trials (children actually killed), kill_trials_mid_sync, kill_trials_consistent.

Knobs (environment): BENCH_SYNC_MB (initial table size, default 512), BENCH_SYNC_FILES (files
of the no-op table, default 5000), BENCH_SYNC_KILLS (kill trials, default 20).
"""

import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import obstore
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from obstore.store import LocalStore

from pipelines.lake.storage import open_storage, stream_copy
from pipelines.replication.deltalog import list_log
from pipelines.replication.sync import sync_table

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def random_table(mb: float, seed: int) -> pa.Table:
    rows = int(mb * MB / 16)
    rng = np.random.default_rng(seed)
    return pa.table({"id": np.arange(rows, dtype=np.int64), "x": rng.random(rows)})


def data_bytes(uri: str) -> dict[str, int]:
    root = Path(uri)
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and "_delta_log" not in p.parts
    }


async def raw_copy(src: str, dst: str, paths: list[str], concurrency: int = 16) -> int:
    """What one would otherwise write: concurrent obstore get -> put of every file."""
    a, b = LocalStore(prefix=src), LocalStore(prefix=dst, mkdir=True)
    sem = asyncio.Semaphore(concurrency)
    total = 0

    async def one(path: str) -> None:
        nonlocal total
        async with sem:
            resp = await obstore.get_async(a, path)
            await obstore.put_async(b, path, resp.stream(min_chunk_size=8 * MB))
            total += int(resp.meta["size"])

    await asyncio.gather(*(one(p) for p in paths))
    return total


def naive_sync(src: str, dst: str) -> int:
    """A listing-based sync of the whole table folder: copy what differs by path and size."""
    a, b = open_storage(src), open_storage(dst)
    have = {o.path: o.size for o in b.list("")}
    copied = 0
    for o in a.list(""):
        if have.get(o.path) != o.size:
            copied += stream_copy(a, o.path, b).size
    return copied


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def throughput(work: Path, total_mb: int) -> dict:
    src = str(work / "src")
    files = max(8, total_mb // 8)
    write_deltalake(src, random_table(total_mb, 1), target_file_size=int(total_mb * MB / files))
    paths = sorted(p.relative_to(src).as_posix() for p in Path(src).rglob("*") if p.is_file())
    size = sum((Path(src) / p).stat().st_size for p in paths)
    sync_rates, raw_rates = [], []
    for round_ in range(2):  # alternate, best of two each: the page cache favours neither
        raw_dst = work / f"raw{round_}"
        s, copied = timed(lambda d=raw_dst: asyncio.run(raw_copy(src, str(d), paths)))
        raw_rates.append(copied / MB / s)
        shutil.rmtree(raw_dst)
        dst = str(work / f"dst{round_}")
        s, report = timed(sync_table, src, dst)
        assert report.bytes_copied == size, (report.bytes_copied, size)
        sync_rates.append(report.bytes_copied / MB / s)
        if round_ == 0:
            shutil.rmtree(dst)
    dst = str(work / "dst1")
    before = data_bytes(src)
    write_deltalake(src, random_table(total_mb / 8, 2), mode="append", target_file_size=8 * MB)
    new = {p: n for p, n in data_bytes(src).items() if p not in before}
    incremental = sync_table(src, dst)
    return {
        "initial_mb": round(size / MB, 1),
        "initial_files": len(paths),
        "initial_mb_per_s": round(max(sync_rates), 1),
        "raw_copy_mb_per_s": round(max(raw_rates), 1),
        "ratio_to_raw": round(max(sync_rates) / max(raw_rates), 3),
        "incremental_new_files": len(new),
        "incremental_bytes_ratio": round(incremental.bytes_copied / sum(new.values()), 4),
    }


def noop(work: Path, files: int) -> dict:
    src, dst = str(work / "many"), str(work / "many-replica")
    # A table grown by appends of about 100 small files each (delta-rs closes a file per
    # 1024-row batch with a tiny target size), checkpointed like a long-lived table.
    appends = max(1, files // 100)
    for i in range(appends):
        ids = np.arange(i * 102_400, (i + 1) * 102_400, dtype=np.int64)
        write_deltalake(src, pa.table({"id": ids}), mode="append", target_file_size=1)
    DeltaTable(src).create_checkpoint()
    n_files = len(DeltaTable(src).file_uris())
    sync_table(src, dst)
    shutil.copytree(dst, work / "naive-replica")
    sync_table(src, dst)  # warm: first-call imports (pyarrow.parquet) are not the sync
    naive_sync(src, str(work / "naive-replica"))
    ours = [timed(sync_table, src, dst)[0] for _ in range(5)]
    naive = [timed(naive_sync, src, str(work / "naive-replica"))[0] for _ in range(5)]
    return {
        "noop_table_files": n_files,
        "noop_sync_s": round(statistics.median(ours), 4),
        "naive_noop_sync_s": round(statistics.median(naive), 4),
        "noop_speedup": round(statistics.median(naive) / statistics.median(ours), 1),
    }


CHILD = (
    "import sys; from pipelines.replication.sync import sync_table; "
    "sync_table(sys.argv[1], sys.argv[2])"
)


def rows_at(uri: str, version: int) -> pa.Table:
    table = DeltaTable(uri, version=version).to_pyarrow_table()
    return table.sort_by([("id", "ascending"), ("x", "ascending")])


def kills(work: Path, trials: int) -> dict:
    """SIGKILL a sync child at random moments, look at the replica, resume, compare."""
    src = str(work / "ksrc")
    small = 64 * 1024  # many small files: the copy takes long enough to be killed inside it
    for v in range(12):  # appends, an overwrite, a delete: every kind of commit
        if v == 6:
            write_deltalake(src, random_table(1, 100 + v), mode="overwrite", target_file_size=small)
        elif v == 9:
            DeltaTable(src).delete("id % 3 = 0")
        else:
            write_deltalake(src, random_table(1, 100 + v), mode="append", target_file_size=small)
    DeltaTable(src).create_checkpoint()
    for v in range(3):
        write_deltalake(src, random_table(1, 200 + v), mode="append", target_file_size=small)
    latest = DeltaTable(src).version()
    expected = [rows_at(src, v) for v in range(latest + 1)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start, _ = timed(
        subprocess.run, [sys.executable, "-c", "import pipelines.replication.sync"], env=env
    )
    full, _ = timed(
        subprocess.run, [sys.executable, "-c", CHILD, src, str(work / "kfull")], env=env, check=True
    )
    rng = random.Random(5)
    consistent = killed = mid = finished = 0
    attempt = 0
    while killed < trials and attempt < trials * 4:
        dst = str(work / f"k{attempt}")
        attempt += 1
        proc = subprocess.Popen([sys.executable, "-c", CHILD, src, dst], env=env)
        time.sleep(rng.uniform(start * 0.8, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = list_log(open_storage(dst)).latest
        ok = True
        if partial is not None:  # what a reader sees right after the crash is a source version
            ok &= rows_at(dst, partial).equals(expected[partial])
        sync_table(src, dst)
        ok &= DeltaTable(dst).version() == latest
        ok &= all(rows_at(dst, v).equals(expected[v]) for v in range(latest + 1))
        if proc.returncode == -signal.SIGKILL:
            killed += 1
            mid += partial is None or partial < latest
            consistent += ok
        else:  # finished before the signal: checked all the same, not counted as a trial
            finished += 1
            assert ok, "an unkilled sync left an inconsistent replica"
        shutil.rmtree(dst, ignore_errors=True)
    return {
        "kill_trials": killed,
        "kill_trials_mid_sync": mid,
        "kill_trials_consistent": consistent,
        "kill_attempts_finished_first": finished,
        "kill_source_files": len(data_bytes(src)),
        "kill_child_full_run_s": round(full, 3),
    }


def main() -> None:
    total_mb = int(os.environ.get("BENCH_SYNC_MB", "512"))
    files = int(os.environ.get("BENCH_SYNC_FILES", "5000"))
    trials = int(os.environ.get("BENCH_SYNC_KILLS", "20"))
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        out = {**throughput(work, total_mb), **noop(work, files), **kills(work, trials)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["goals_met"] = {
        "ratio_to_raw>=0.8": out["ratio_to_raw"] >= 0.8,
        "incremental_bytes_ratio<=1.05": out["incremental_bytes_ratio"] <= 1.05,
        "noop_10x_faster": out["noop_speedup"] >= 10,
        "every_kill_trial_consistent": out["kill_trials_consistent"] == out["kill_trials"],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
