"""Helpers the tests share: small simulations landed in a lake, the code location's assets."""

import datetime as dt
import functools
import gzip
import io
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import fastavro
import pyarrow as pa
import yaml
from deltalake import DeltaTable

from assets import build_assets
from assets.partitions import build_partitions
from data_quality.suites import build_suites
from lakehouse.definitions import build_definitions
from pipelines.lake.config import PROJECT_ROOT, load_config
from pipelines.lake.schemas import GOLD_SCHEMA
from pipelines.lake.storage import open_storage
from pipelines.simulation.simulate import SimulationConfig, land_day

DAY = dt.date(2026, 10, 5)


def config_with(tmp_path: Path, monkeypatch: Any, edit: Callable[[dict], None]) -> Path:
    """A copy of lakehouse.yaml changed by ``edit(data)``, made the configuration."""
    data: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "lakehouse.yaml").read_text())
    edit(data)
    path = tmp_path / "lakehouse.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
    return path


def land(location_name: str, sim: SimulationConfig, env: str = "local") -> list:
    """Land a simulation in one location of an environment; returns the day reports."""
    cfg = load_config(env)
    loc = cfg.location(location_name)
    storage = open_storage(loc.root_uri(), loc.storage_options())
    return [land_day(sim, loc, storage, day, cfg.currency_of(loc.region)) for day in sim.days()]


@functools.cache
def definitions(env: str = "local") -> dg.Definitions:
    """The code location of an environment (built once per test session and environment)."""
    return build_definitions(env)


@functools.cache
def _assets(env: str) -> dict[str, dg.AssetsDefinition]:
    cfg = load_config(env)
    built = build_assets(cfg, build_partitions(cfg), build_suites(cfg))
    return {key.to_user_string(): a for a in built for key in a.keys}


def asset(name: str, env: str = "local") -> dg.AssetsDefinition:
    """The assets definition (no resources bound) that materializes ``name`` in an environment."""
    return _assets(env)[name]


def suites(env: str = "local") -> dict:
    """The expectation suites of an environment, by asset name."""
    return build_suites(load_config(env))


def date_partition_bytes(uri: str, days: set[dt.date]) -> int:
    """Bytes of the files a ``date``-partitioned table's log holds for ``days`` (what a read of
    those partitions opens, as the storage layer's counter counts it)."""
    from pipelines.lake import delta

    adds = delta.file_actions(uri, {})
    assert adds is not None, uri
    dates, sizes = adds.column("partition.date").to_pylist(), adds.column("size_bytes").to_pylist()
    return sum(size for day, size in zip(dates, sizes, strict=True) if day in days)


def gold_rows(day: dt.date, n: int = 20) -> pa.Table:
    """``n`` rows of gold for one day of region eu."""
    cols = {
        "date": [day] * n,
        "region": ["eu"] * n,
        "store_id": [i % 5 + 1 for i in range(n)],
        "sku": [f"sku-{i}" for i in range(n)],
        "category": ["food"] * n,
        "currency": ["EUR"] * n,
        "quantity": [i for i in range(n)],
        "revenue": [i * 2.5 for i in range(n)],
        "avg_price": [2.5] * n,
        "min_price": [2.0] * n,
        "max_price": [3.0] * n,
        "promo_share": [0.1] * n,
        "online_share": [0.2] * n,
        "events": [1] * n,
        "customers": [1] * n,
    }
    return pa.Table.from_pydict(cols, schema=GOLD_SCHEMA)


def landed_records(fmt: str, data: bytes) -> list[bytes]:
    """An object's records read as a user of the capture format would, not by the ingest.

    Firehose: gzip NDJSON; Pub/Sub text: NDJSON; Event Hubs Capture: Avro ``Body``; Pub/Sub
    Avro: Avro ``data``. Blank lines are no records.
    """
    if fmt in ("firehose", "pubsub_text"):
        text = gzip.decompress(data) if fmt == "firehose" else data
        return [line for line in text.split(b"\n") if line.strip()]
    field = "Body" if fmt == "eventhubs_capture" else "data"
    return [rec[field] for rec in fastavro.reader(io.BytesIO(data))]  # type: ignore[index]


def strict_json(text: str) -> object:
    def refuse(token: str) -> object:
        raise ValueError(f"non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def assert_readable(uri: str) -> pa.Table:
    """The table reads back with deltalake, and every commit (statistics too) is strict JSON."""
    for path in sorted((Path(uri) / "_delta_log").glob("*.json")):
        for text in path.read_text().splitlines():
            action = strict_json(text)
            if stats := action.get("add", {}).get("stats"):  # type: ignore[union-attr]
                strict_json(stats)
    return DeltaTable(uri).to_pyarrow_table()


def deflate_zeros(total: int) -> bytes:
    """A raw deflate stream inflating to ``total`` zero bytes, built without holding them."""
    step = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(bytes(step)) + c.flush(zlib.Z_FULL_FLUSH)  # the same bytes each time
    return piece * (total // step) + c.flush(zlib.Z_FINISH)


def gzip_bomb(total: int) -> bytes:
    """A gzip member of ``total`` zero bytes (valid CRC and size), built without holding them."""
    crc = 0
    for _ in range(total >> 20):
        crc = zlib.crc32(bytes(1 << 20), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = crc.to_bytes(4, "little") + (total & 0xFFFFFFFF).to_bytes(4, "little")
    return header + deflate_zeros(total) + trailer


def in_processes(fn: Callable[..., Any], jobs: list[tuple[Any, ...]]) -> list[Any]:
    """``fn(*job)`` for each job, each in its own spawned process at once; their results.

    Spawned, not forked: delta-rs (tokio) must not be forked. The pool is closed and joined,
    never terminated: ``Pool.terminate`` waits for ever on an idle worker holding the task
    queue's lock when SIGTERM does not reach it (a shell that ignores SIGTERM passes that on).
    """
    import multiprocessing as mp

    pool = mp.get_context("spawn").Pool(len(jobs))
    try:
        return pool.starmap(fn, jobs)
    finally:
        pool.close()
        pool.join()
