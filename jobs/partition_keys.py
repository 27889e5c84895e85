"""Partition keys of any partitioning that cover a range of dates (and optionally regions)."""

import datetime as dt
from collections.abc import Collection

import dagster as dg


def _overlaps(window: dg.TimeWindow, start: dt.date, end: dt.date) -> bool:
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return window.start < hi and window.end > lo


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
        by_dim: dict[str, list[str]] = {}
        for dim in partitions_def.partitions_defs:
            pdef = dim.partitions_def
            if isinstance(pdef, dg.TimeWindowPartitionsDefinition):
                keys = keys_between(pdef, start, end, instance=instance)
            else:
                keys = list(pdef.get_partition_keys(dynamic_partitions_store=instance))
                if regions is not None and dim.name == "region":
                    _check_regions(keys, regions)
                    keys = [k for k in keys if k in regions]
            by_dim[dim.name] = keys
        names = list(by_dim)
        combos: list[dict[str, str]] = [{}]
        for name in names:
            combos = [{**c, name: k} for c in combos for k in by_dim[name]]
        return [str(dg.MultiPartitionKey(c)) for c in combos]
    keys = list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
    if regions is not None and isinstance(partitions_def, dg.StaticPartitionsDefinition):
        _check_regions(keys, regions)
        keys = [k for k in keys if k in regions]
    return keys


def _check_regions(known: list[str], wanted: Collection[str]) -> None:
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"unknown region(s) {', '.join(unknown)}; known: {', '.join(known)}")
