"""Region health written and read back on moto (S3), Azurite and fake-gcs-server.

The emulated story's roll-up once failed reading apac's region_health: delta-rs's own writer
reaches fake-gcs through OpenDAL, which stored the partition folders' ``=`` percent-encoded, so
the log named files that were not there. Every location's health table goes through the lake's
own staging now; this reads each back the way the roll-up and an outside reader do.
"""

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder

from pipelines.lake import delta, tables
from pipelines.lake.config import load_config
from pipelines.lake.schemas import REGION_HEALTH_SCHEMA
from pipelines.operations import health

DAYS = [dt.date(2026, 10, 26), dt.date(2026, 10, 27), dt.date(2026, 10, 28)]


def _health(region: str, days: list[dt.date], landed: int) -> health.Health:
    rows = pa.Table.from_pylist(
        [{"date": d, "region": region, "landed": landed} for d in days], schema=REGION_HEALTH_SCHEMA
    )
    return health.Health(rows, [], {}, days[0], days[-1])


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("aws-us", marks=pytest.mark.s3),
        pytest.param("azure-eu", marks=pytest.mark.azure),
        pytest.param("gcp-apac", marks=pytest.mark.gcs),
    ],
)
def test_region_health_is_read_back_after_range_rewrites(emulated_env, name):
    cfg = load_config(emulated_env)
    loc = cfg.locations[name]
    options = loc.storage_options()
    # one day at a time (automation), then the range (a backfill), then one day again
    for day in DAYS:
        health.write(cfg, _health(loc.region, [day], 1), options, loc)
    health.write(cfg, _health(loc.region, DAYS, 2), options, loc)
    health.write(cfg, _health(loc.region, DAYS[1:2], 3), options, loc)

    got = health.read_region(loc, options, DAYS[0], DAYS[-1])
    assert sorted((r["date"], r["landed"]) for r in got) == [
        (DAYS[0], 2),
        (DAYS[1], 3),
        (DAYS[2], 2),
    ]
    # an outside reader (delta-rs's own scan of every file the log names) sees the same rows
    target, opts = delta.deltalake_target(loc.table_uri(tables.REGION_HEALTH.name), options)
    table = DeltaTable(target, storage_options=opts or None)
    reader = QueryBuilder().register("t", table).execute("SELECT date, landed FROM t")
    outside = pa.RecordBatchReader.from_stream(reader).read_all()
    assert sorted(zip(*outside.to_pydict().values(), strict=True)) == sorted(
        (r["date"], r["landed"]) for r in got
    )
