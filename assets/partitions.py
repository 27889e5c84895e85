"""Partitions of one environment (landing date x region), and key helpers over them.

Built from the environment's configuration by :func:`build_partitions`, never at import: the
regions are the environment's locations' regions, the first day its ``start_date``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

import dagster as dg

from pipelines.lake.config import LakeConfig


@dataclass(frozen=True)
class Partitions:
    """The partitionings the assets share."""

    daily: dg.DailyPartitionsDefinition
    regions: dg.StaticPartitionsDefinition
    date_region: dg.MultiPartitionsDefinition


def build_partitions(cfg: LakeConfig, regions: Collection[str] | None = None) -> Partitions:
    """Daily partitions from ``cfg.start_date`` (today included) and one per region.

    ``regions``: the regions a code location's region assets hold (default: every region).
    """
    # end_offset=1: today's partition exists, so the hourly schedule can ingest the current day.
    daily = dg.DailyPartitionsDefinition(start_date=cfg.start_date.isoformat(), end_offset=1)
    codes = [r for r in cfg.region_codes if regions is None or r in regions]
    by_region = dg.StaticPartitionsDefinition(codes)
    return Partitions(
        daily, by_region, dg.MultiPartitionsDefinition({"date": daily, "region": by_region})
    )


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


def date_region_of(key: str | dg.MultiPartitionKey) -> dict[str, str]:
    """``{"date": …, "region": …}`` of a (date, region) key, given as a key or its string.

    A run launched with only the ``dagster/partition`` tag (the GraphQL API, a job backfill)
    hands the asset the string ``date|region`` (dimensions sorted by name).
    """
    if isinstance(key, dg.MultiPartitionKey):
        return dict(key.keys_by_dimension)
    parts = str(key).split("|")
    if len(parts) != 2:
        raise ValueError(f"partition key {key!r} is not date|region")
    return dict(zip(("date", "region"), parts, strict=True))


def date_ranges_by_region(keys: list[str]) -> dict[str, list[tuple[dt.date, dt.date]]]:
    """The (date, region) keys of a run as consecutive date ranges per region.

    A single-run backfill hands an asset every key of the range at once; each region's days
    become as few Spark writes as there are gaps (one for a plain range).
    """
    days: dict[str, list[dt.date]] = {}
    for key in keys:
        dims = date_region_of(key)
        days.setdefault(dims["region"], []).append(dt.date.fromisoformat(dims["date"]))
    return {region: contiguous_ranges(d) for region, d in sorted(days.items())}


def _overlaps(window: dg.TimeWindow, start: dt.date, end: dt.date) -> bool:
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return window.start < hi and window.end > lo


def _multi_keys(
    partitions_def: dg.MultiPartitionsDefinition,
    start: dt.date,
    end: dt.date,
    regions: Collection[str] | None,
    instance: dg.DagsterInstance | None,
) -> list[str]:
    by_dim: dict[str, list[str]] = {}
    for dim in partitions_def.partitions_defs:
        pdef = dim.partitions_def
        if isinstance(pdef, dg.TimeWindowPartitionsDefinition):
            keys = keys_between(pdef, start, end, instance=instance)
        else:
            keys = list(pdef.get_partition_keys(dynamic_partitions_store=instance))
            if regions is not None and dim.name == "region":
                keys = _only_regions(keys, regions)
        by_dim[dim.name] = keys
    combos: list[dict[str, str]] = [{}]
    for name, keys in by_dim.items():
        combos = [{**c, name: k} for c in combos for k in keys]
    return [str(dg.MultiPartitionKey(c)) for c in combos]


def keys_between(
    partitions_def: dg.PartitionsDefinition,
    start: dt.date,
    end: dt.date,
    regions: Collection[str] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> list[str]:
    """Keys whose time window overlaps ``start..end`` (inclusive), in every (or the given) region.

    Time-window partitions select by date; a multi-partitioning with a time dimension selects by
    date and takes every key of its other dimension (only ``regions`` where that dimension is
    named ``region``); partitions without time take every key (filtered by region the same way).
    """
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return [
            k
            for k in partitions_def.get_partition_keys(dynamic_partitions_store=instance)
            if _overlaps(partitions_def.time_window_for_partition_key(k), start, end)
        ]
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return _multi_keys(partitions_def, start, end, regions, instance)
    keys = list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
    if regions is not None and isinstance(partitions_def, dg.StaticPartitionsDefinition):
        keys = _only_regions(keys, regions)
    return keys


def _only_regions(known: list[str], wanted: Collection[str]) -> list[str]:
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"unknown region(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [k for k in known if k in wanted]
