"""The decorators every checked asset shares: its suite's check, its group, its kinds.

:func:`spark_asset` is the one way a Spark step's asset is declared (features; silver and gold
through :func:`region_spark_asset`):
partitioned, one run per backfill, its table's partition columns and its declared data in
the metadata. :func:`checked_asset` is what it and the ML assets build on.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from assets.keys import Keys
from assets.partitions import Partitions
from assets.sovereignty import Declaration
from assets.spark_io import RegionStep
from data_quality import gx
from data_quality.suites import Suite
from pipelines.lake.tables import TableSpec

AssetDecorator = Callable[[Callable[..., Any]], dg.AssetsDefinition]


def checked_asset(
    name: str,
    suite: Suite,
    *,
    group: str,
    kinds: set[str],
    deps: Sequence[str | dg.AssetKey] = (),
    partitions_def: dg.PartitionsDefinition | None = None,
    **more: Any,
) -> AssetDecorator:
    """``@dg.asset`` of ``name`` with its suite's Great Expectations check."""
    key = dg.AssetKey([*(more.get("key_prefix") or ()), name])
    return dg.asset(
        name=name,
        deps=list(deps),
        partitions_def=partitions_def,
        group_name=group,
        kinds=kinds,
        check_specs=[gx.check_spec(suite, key)],
        **more,
    )


def spark_asset(
    table: TableSpec,
    suite: Suite,
    partitions_def: dg.PartitionsDefinition,
    *,
    group: str,
    deps: Sequence[str | dg.AssetKey],
    data: Declaration | None = None,
    metadata: Mapping[str, Any] | None = None,
    key_prefix: Sequence[str] = (),
) -> AssetDecorator:
    """The asset of a Spark step writing ``table``: a single run per backfill, on Delta.

    ``data`` declares the personal data the step reads or writes (its tags and metadata).
    """
    return checked_asset(
        table.name,
        suite,
        group=group,
        kinds={"spark", "delta"},
        deps=deps,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        metadata={
            "partition_columns": ", ".join(table.partition_by),
            **(metadata or {}),
            **(data.metadata() if data else {}),
        },
        tags=data.tags() if data else None,
        key_prefix=list(key_prefix) or None,
    )


def region_spark_asset(
    step: RegionStep, parts: Partitions, suite: Suite, keys: Keys
) -> AssetDecorator:
    """The asset of a Spark step over (date, region), grouped by its step, after what it reads.

    Keyed as ``keys`` says; its suite's check follows the key.
    """
    key = keys.of(step.table.name)
    return spark_asset(
        step.table,
        suite,
        parts.date_region,
        group=step.name,
        deps=[keys.of(step.reads.name)],
        data=step.data,
        key_prefix=key.path[:-1],
    )
