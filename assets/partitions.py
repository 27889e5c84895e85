"""Partitions shared by the assets: landing date x region."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from pipelines.config import load_config

# First day the lake holds; LAKEHOUSE_START_DATE moves it (tests and demos use recent days).
START_DATE = os.environ.get("LAKEHOUSE_START_DATE", "2026-09-01")

# end_offset=1: today's partition exists, so the hourly schedule can ingest the current day.
daily = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)
regions = dg.StaticPartitionsDefinition(load_config().region_codes)
date_region = dg.MultiPartitionsDefinition({"date": daily, "region": regions})


def date_region_key(date: str, region: str) -> dg.MultiPartitionKey:
    """The partition key of a (date, region) pair."""
    return dg.MultiPartitionKey({"date": date, "region": region})


def contiguous_ranges(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted days folded into inclusive ranges of consecutive days."""
    out: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if out and day == out[-1][1] + dt.timedelta(days=1):
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def date_ranges_by_region(keys: list[str]) -> dict[str, list[tuple[dt.date, dt.date]]]:
    """The (date, region) keys of a run as consecutive date ranges per region.

    A single-run backfill hands an asset every key of the range at once; each region's days
    become as few Spark writes as there are gaps (one for a plain range).
    """
    days: dict[str, list[dt.date]] = {}
    for key in keys:
        dims = (
            key.keys_by_dimension
            if isinstance(key, dg.MultiPartitionKey)
            else dict(zip(("date", "region"), str(key).split("|"), strict=True))
        )
        days.setdefault(dims["region"], []).append(dt.date.fromisoformat(dims["date"]))
    return {region: contiguous_ranges(d) for region, d in sorted(days.items())}
