"""The loop silver and gold share: each region's date ranges built, written, read back."""

import datetime as dt
from collections.abc import Callable
from typing import Any

import dagster as dg

from assets.partitions import date_ranges_by_region
from pipelines import spark_jobs, tables
from pipelines.config import LakeLocation
from resources.lake import LakeResource

# (session, location, storage options, first day, last day) -> Spark DataFrame of those days
Build = Callable[[Any, LakeLocation, dict[str, str], dt.date, dt.date], Any]


def write_region_ranges(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    session: Any,
    table: tables.TableSpec,
    build: Build,
) -> tuple[Any, dict[str, int]]:
    """Build and replace every (region, date range) of the run; the rows written, versions.

    One Spark write per consecutive range of a region, so a single-run backfill of a month is
    one job per region. The rows come back read from the table (cached by the caller's use).
    """
    written, versions = [], {}
    for region, ranges in date_ranges_by_region(context.partition_keys).items():
        loc = lake.location_for_region(region)
        opts = lake.storage_options(loc)
        for start, end in ranges:
            df = build(session, loc, opts, start, end)
            versions[loc.name] = lake.spark_write_range(
                df, loc, table.name, start, end, region, list(table.partition_by)
            )
            where = spark_jobs.date_range_predicate(start, end, region)
            uri = loc.table_uri(table.name)
            written.append(spark_jobs.read_delta(session, uri, opts, where, table.name))
            context.log.info(f"{table.name} {loc.name} {start}..{end} -> {uri}")
    return spark_jobs.union_all(written).cache(), versions
