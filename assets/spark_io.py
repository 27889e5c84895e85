"""The loop silver, gold and features share: each date range run as a Spark step, read back.

Where a step runs is the ``spark`` resource's business (a local session or a Databricks job,
:class:`resources.spark.SparkStepRunner`); the rows come back as a Spark DataFrame or an Arrow
table, and both are counted and validated the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.partitions import date_ranges_by_region
from assets.sovereignty import Declaration, declare, require_jurisdiction
from data_quality import gx
from data_quality.suites import Suite
from pipelines.lake.config import LakeLocation
from pipelines.lake.tables import TableSpec
from pipelines.spark import jobs as spark_jobs
from pipelines.spark.jobs import PiiKey, StepRequest
from resources.lake import LakeResource
from resources.spark import SparkStepRunner


@dataclass(frozen=True)
class RegionStep:
    """A Spark step run per (date, region), silver or gold: its name, what it reads, writes.

    The name is also its asset group and what the compute-sovereignty check calls it.
    """

    name: str
    table: TableSpec
    reads: TableSpec

    @property
    def data(self) -> Declaration:
        """The tables it declares (their personal data decides where it may run)."""
        return declare(reads=(self.reads.name,), writes=(self.table.name,))


@dataclass(frozen=True)
class StepRange:
    """One step of a run: consecutive days of a region's table, or of all regions (None)."""

    location: LakeLocation
    region: str | None
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class Written:
    """What a run's steps wrote: the rows read back, table versions, and each step's report."""

    rows: Any  # a cached Spark DataFrame, or an Arrow table
    versions: dict[str, int]
    steps: list[dict[str, str]]

    def count(self, flag: str | None = None) -> int:
        """Rows read back; only those where the boolean column ``flag`` is true if given."""
        if isinstance(self.rows, pa.Table):
            if flag is None:
                return self.rows.num_rows
            return int(pc.sum(pc.fill_null(self.rows[flag], False)).as_py() or 0)
        return int(self.rows.count() if flag is None else self.rows.where(flag).count())

    def release(self) -> None:
        """Drop the Spark cache of the rows (Arrow rows are plain memory)."""
        if not isinstance(self.rows, pa.Table):
            self.rows.unpersist()


def region_ranges(context: dg.AssetExecutionContext, lake: LakeResource) -> list[StepRange]:
    """The run's (date, region) keys as one range per run of consecutive days of a region.

    A single-run backfill of a month is then one step (one Spark job) per region.
    """
    return [
        StepRange(lake.location_for_region(region), region, start, end)
        for region, ranges in date_ranges_by_region(context.partition_keys).items()
        for start, end in ranges
    ]


def run_region_steps(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    spark: SparkStepRunner,
    step: RegionStep,
    pii_key: PiiKey | None = None,
) -> tuple[dict[str, Any], Written]:
    """A (date, region) run's steps, each region's refused unless this worker may process it.

    The compute check comes before any step is submitted: the runner reads the data wherever
    it runs. Returns the check's metadata and what the steps wrote.
    """
    ranges = region_ranges(context, lake)
    where = require_jurisdiction(context, lake, step.name, [r.location for r in ranges], step.data)
    return where, run_steps(context, lake, spark, step.name, ranges, pii_key)


def step_results(
    suite: Suite, written: Written, metadata: dict[str, Any]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """A Spark asset's materialization (rows, steps) and its suite's check of the rows."""
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "dagster/row_count": written.count(),
            "spark_steps": dg.MetadataValue.json(written.steps),
        }
    )
    yield gx.check(suite, written.rows)
    written.release()


# Steps of one run submitted at once (one per region, usually: each writes its own table).
MAX_PARALLEL_STEPS = 4


def run_steps(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    spark: SparkStepRunner,
    step: str,
    ranges: list[StepRange],
    pii_key: PiiKey | None = None,
) -> Written:
    """Run ``step`` for every range, then read each range back from the table it reported.

    The ranges' steps run side by side: each region's step writes its own location's table,
    and a local Spark session spends much of a small step planning on one core (Delta's log
    bookkeeping, query compilation) while the other core could run another region's tasks.
    """
    cfg = lake.config()
    options_of = lake.storage_options_of()

    def one(r: StepRange) -> tuple[Any, str, int, dict[str, str]]:
        # A range of every region is the ML home's features, not a step of one location.
        request = StepRequest(
            step=step,
            start=r.start,
            end=r.end,
            location=r.location.name if r.region is not None else None,
            cfg=cfg,
            storage_options=options_of,
            pii_key=pii_key,
        )
        report = spark.run_step(context, request)
        written = lake.location(report["location"])
        uri = report["table_uri"]
        frame = spark.read_range(written, uri, options_of[written.name], r.start, r.end, r.region)
        table = spark_jobs.STEP_TABLES[step].name
        version = lake.table_version(written, table)
        if version is None:
            raise RuntimeError(f"{step} {r.start}..{r.end} left no Delta table at {uri}")
        context.log.info(f"{table} {written.name} {r.start}..{r.end} -> {uri}")
        return frame, written.name, version, report

    if len(ranges) > 1:
        # one session for all: the first step to ask starts it (pipelines.spark.session locks that)
        with ThreadPoolExecutor(min(len(ranges), MAX_PARALLEL_STEPS), "spark-step") as pool:
            done = list(pool.map(one, ranges))
    else:
        done = [one(r) for r in ranges]
    versions: dict[str, int] = {}
    for _, name, version, _ in done:
        versions[name] = max(version, versions.get(name, version))
    return Written(_union([d[0] for d in done]), versions, [d[3] for d in done])


def _union(frames: list[Any]) -> Any:
    """One dataset of the ranges read back: Arrow concatenated, Spark unioned and cached."""
    if frames and all(isinstance(f, pa.Table) for f in frames):
        return pa.concat_tables(frames)
    return spark_jobs.union_all(frames).cache()
