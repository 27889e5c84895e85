"""Table upkeep: reads before and after compaction, the floor a lagging replica sets, bytes back.

A gold-like table (date, region, store_id, sku, units) of BENCH_MAINT_FILES small files (default
5,000, in hourly-sized commits over BENCH_MAINT_DAYS days), with its configured replica synced
and then left a few versions behind. Measured, medians of BENCH_MAINT_REPEAT reads:

* ``read_s_before`` / ``read_s_after``: a day's partition read and a filtered read (one store
  and SKU over every day), before and after ``lakehouse maintain`` (compaction, Z-order by the
  configured columns, VACUUM under the floor, checkpoint, log cleanup);
* ``compact_s``, ``retention_floor_version`` and who set it (the lagging replica), and
  ``bytes_reclaimed`` once the replica has synced past the compaction (second upkeep, source and
  replica), ``replicas_consistent_after`` (source and replica equal at every version the
  replica holds);
* side by side, what a user would otherwise do on a copy of the same table and replica:
  delta-rs ``optimize.compact`` then ``vacuum`` with its default retention (7 days: nothing
  comes back), or with ``retention_hours=0`` (bytes come back, the replica's next sync fails),
  and the other compaction than the configured one (plain, or Z-order by store and SKU: does
  Z-order pay?).

Upkeep runs with ``retention_hours`` and ``log_retention_hours`` 0 here (the configured defaults
are 168 and 720: the benchmark cannot wait a week). Prints one JSON object as its last line.
"""

import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.transaction import AddAction

from pipelines.lake.config import LakeConfig, load_config
from pipelines.lake.delta import file_stats, stats_json
from pipelines.lake.schemas import GOLD_SCHEMA
from pipelines.operations import maintenance
from pipelines.replication.deltalog import SyncError
from pipelines.replication.options import SyncOptions
from pipelines.replication.sync import sync, sync_table
from pipelines.replication.verify import table_fingerprint

TABLE = "gold_daily_demand"
SCHEMA = GOLD_SCHEMA
START = dt.date(2026, 9, 1)
Z_ORDER = ("store_id", "sku")  # what the filtered read filters on


def build_table(
    uri: str, files: int, days: int, rows: int, per_commit: int, offset: int = 0
) -> None:
    """``files`` small Parquet files over ``days`` partitions, ``per_commit`` files a commit.

    The table is created first unless ``offset`` (files already written) is given.
    """
    rng = np.random.default_rng(7 + offset)
    if not offset:
        DeltaTable.create(uri, SCHEMA, partition_by=["date", "region"])
    root = Path(uri)
    adds: list[AddAction] = []
    for i in range(offset, offset + files):
        day = START + dt.timedelta(days=i % days)
        folder = f"date={day.isoformat()}/region=eu"
        part = gold_rows(rng, rows)
        path = f"{folder}/part-{i:05d}-{uuid.uuid4()}.snappy.parquet"
        (root / folder).mkdir(parents=True, exist_ok=True)
        pq.write_table(part, root / path, compression="snappy")
        adds.append(
            AddAction(
                path=path,
                size=(root / path).stat().st_size,
                partition_values={"date": day.isoformat(), "region": "eu"},
                modification_time=int(time.time() * 1000),
                data_change=True,
                stats=stats_json(file_stats(part)),
            )
        )
        if len(adds) == per_commit or i == offset + files - 1:
            DeltaTable(uri).create_write_transaction(
                adds, mode="append", schema=SCHEMA, partition_by=["date", "region"]
            )
            adds = []


def gold_rows(rng: np.random.Generator, rows: int) -> pa.Table:
    """Rows of gold_daily_demand's data columns (partition columns live in the path)."""
    columns: dict[str, Any] = {
        "store_id": rng.integers(0, 200, rows),
        "sku": [f"sku-{n:04d}" for n in rng.integers(0, 500, rows)],
        "category": [f"cat-{n}" for n in rng.integers(0, 8, rows)],
        "currency": ["EUR"] * rows,
    }
    for field in SCHEMA:
        if field.name in columns or field.name in ("date", "region"):
            continue
        if pa.types.is_integer(field.type):
            columns[field.name] = rng.integers(0, 50, rows)
        else:
            columns[field.name] = rng.random(rows) * 10
    return pa.table(columns).cast(pa.schema([f for f in SCHEMA if f.name in columns]))


def reads(uri: str, repeat: int) -> dict[str, float]:
    """Median seconds of a day's partition read and of a filtered read (one store and SKU)."""
    day = START + dt.timedelta(days=3)

    def day_read() -> int:
        return DeltaTable(uri).to_pyarrow_table(filters=[("date", "=", day)]).num_rows

    def filtered() -> int:
        where = (ds.field("store_id") == 17) & (ds.field("sku") == "sku-0042")
        return DeltaTable(uri).to_pyarrow_dataset().to_table(filter=where).num_rows

    return {"day": median_s(day_read, repeat), "filtered": median_s(filtered, repeat)}


def median_s(fn: Callable[[], int], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4)


def table_bytes(uri: str) -> int:
    return sum(
        p.stat().st_size for p in Path(uri).rglob("*.parquet") if "_delta_log" not in p.parts
    )


def equal_where_held(src: str, dst: str) -> bool:
    """The replica's every held version reads as the source's same version."""
    log = Path(dst, "_delta_log")
    versions = {int(p.name[:20]) for p in log.iterdir() if p.name[:20].isdigit()}
    return all(
        table_fingerprint(dst, {}, v) == table_fingerprint(src, {}, v)
        for v in range(min(versions), max(versions) + 1)
    )


def ours(cfg: LakeConfig, repeat: int) -> dict[str, Any]:
    rep = next(r for r in cfg.replicas() if r.source.name == "azure-eu" and r.table == TABLE)
    src, dst = rep.source_uri, rep.target_uri
    before = reads(src, repeat)
    files_before = len(DeltaTable(src).file_uris())
    bytes_before = table_bytes(src)
    first = maintenance.maintain(cfg, TABLE, "azure-eu")
    sync(cfg, src, dst, SyncOptions(table=TABLE))  # the replica catches up past the compaction
    second = maintenance.maintain(cfg, TABLE, "azure-eu")
    replica = maintenance.maintain(cfg, rep.name, "aws-us")
    after = reads(src, repeat)
    return {
        "files_before": files_before,
        "files_after": len(DeltaTable(src).file_uris()),
        "read_s_before": before,
        "read_s_after": after,
        "filtered_read_speedup": round(before["filtered"] / after["filtered"], 1),
        "day_read_speedup": round(before["day"] / after["day"], 1),
        "compact_s": first.compaction.get("seconds"),
        "compaction": first.compaction,
        "retention_floor_version": first.retention_floor_version,
        "floor_set_by": first.floor_set_by,
        "kept_for_floor_first_run": first.vacuum["kept_for_floor"],
        "bytes_reclaimed": first.vacuum["bytes_reclaimed"] + second.vacuum["bytes_reclaimed"],
        "bytes_before": bytes_before,
        "replica_bytes_reclaimed": replica.vacuum["bytes_reclaimed"],
        "log_entries_deleted": second.log_cleanup.get("entries_deleted"),
        "replicas_consistent_after": equal_where_held(src, dst)
        and sync(cfg, src, dst, SyncOptions(table=TABLE)).versions_behind_after == 0,
    }


def naive(src: str, dst: str, retention_hours: int, z_order: tuple[str, ...] = ()) -> dict:
    """What a user would otherwise run on the source: delta-rs optimize, then vacuum."""
    table = DeltaTable(src)
    t0 = time.perf_counter()
    if z_order:
        table.optimize.z_order(list(z_order))
    else:
        table.optimize.compact()
    compact_s = time.perf_counter() - t0
    bytes_before = table_bytes(src)
    deleted = table.vacuum(
        retention_hours=retention_hours, enforce_retention_duration=False, dry_run=False
    )
    table.create_checkpoint()
    try:
        sync_table(src, dst)
        replica = "synced"
    except SyncError as exc:
        replica = f"sync failed: {exc}"
    return {
        "compact_s": round(compact_s, 3),
        "files_deleted": len(deleted),
        "bytes_reclaimed": bytes_before - table_bytes(src),
        "replica_next_sync": replica,
    }


def main() -> None:
    files = int(os.environ.get("BENCH_MAINT_FILES", "5000"))
    days = int(os.environ.get("BENCH_MAINT_DAYS", "20"))
    rows = int(os.environ.get("BENCH_MAINT_ROWS", "200"))
    repeat = int(os.environ.get("BENCH_MAINT_REPEAT", "3"))
    work = Path(tempfile.mkdtemp(prefix="bench-maint-"))
    os.environ["LAKEHOUSE_HOME"] = str(work)
    try:
        base = load_config("local")
        cfg = dataclasses.replace(
            base,
            maintenance=base.maintenance.model_copy(
                update={"retention_hours": 0, "log_retention_hours": 0}
            ),
        )
        rep = next(r for r in cfg.replicas() if r.source.name == "azure-eu" and r.table == TABLE)
        t0 = time.perf_counter()
        build_table(rep.source_uri, files, days, rows, per_commit=max(1, files // 100))
        build_s = time.perf_counter() - t0
        sync(cfg, rep.source_uri, rep.target_uri, SyncOptions(table=TABLE))
        # The replica is left behind by the last hours' appends: it lags when upkeep runs.
        lag_files = files // 50
        build_table(rep.source_uri, lag_files, days, rows, max(1, lag_files // 4), offset=files)
        copies = {
            name: copy_pair(rep.source_uri, rep.target_uri, work / name)
            for name in ("default_retention", "zero_retention", "other_mode")
        }
        out: dict[str, Any] = {
            "table_rows": files * rows + lag_files * rows,
            "build_s": round(build_s, 1),
            "replica_lag_versions": DeltaTable(rep.source_uri).version()
            - DeltaTable(rep.target_uri).version(),
        }
        out.update(ours(cfg, repeat))
        src, dst = copies["default_retention"]
        out["naive_vacuum_default_retention"] = naive(src, dst, 168)
        src, dst = copies["zero_retention"]
        out["naive_vacuum_zero_retention"] = naive(src, dst, 0)
        # The other compaction than the configured one: does Z-order pay here?
        src, dst = copies["other_mode"]
        configured = cfg.maintenance.z_order.get(TABLE, ())
        other = () if configured else Z_ORDER
        before = reads(src, repeat)
        plain = naive(src, dst, 168, other)
        out["other_compaction"] = {
            "mode": f"z_order {list(other)}" if other else "compact",
            "compact_s": plain["compact_s"],
            "read_s_before": before,
            "read_s_after": reads(src, repeat),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["goals_met"] = {
        "files>=5000": out["files_before"] >= 5000,
        "filtered_read_5x_faster": out["filtered_read_speedup"] >= 5,
        "replicas_consistent_after": out["replicas_consistent_after"],
    }
    print(json.dumps(out))


def copy_pair(src: str, dst: str, where: Path) -> tuple[str, str]:
    """A copy of the source and its replica, for the side-by-side runs."""
    a, b = where / "src", where / "dst"
    shutil.copytree(src, a)
    shutil.copytree(dst, b)
    return str(a), str(b)


if __name__ == "__main__":
    main()
