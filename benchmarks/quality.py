"""Cost of the Great Expectations checks against the same checks written by hand.

A 1,000,000-row bronze partition (simulated, captured and ingested as in production), with bad
values injected: negative quantities, missing and zero prices, unknown regions and currencies,
stores out of range, duplicated event ids, missing SKUs and timestamps.

- ``seconds``: the bridge (``data_quality.gx.validate``) on the Arrow table an ingest produces;
  ``floor_s``: the same facts with pyarrow.compute (per expectation: pass/fail, unexpected count
  and the first values, the column set and the row count).
- ``spark_seconds``: the bridge on a cached Spark DataFrame of the same rows; ``spark_floor_s``:
  one Spark aggregation over it computing the same pass/fail facts and counts.
- ``results_equal``: GX (on pandas and on Spark) flags exactly the rows the floor flags, for
  every expectation, and the bridge reports the floor's counts and examples.
- ``before_s`` / ``spark_before_s``: main's bridge before this change (pandas with object
  strings, a GX suite built per call, SUMMARY results, GX's per-cell batch fingerprint).

Prints one JSON object as its last line. Knobs (environment): BENCH_ROWS (default 1000000),
BENCH_ROUNDS (timed rounds, median reported; default 3), BENCH_SPARK=0 (skip Spark),
BENCH_BEFORE=0 (skip main's path). Spark needs ``make setup``'s jars (LAKEHOUSE_JARS).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_quality import gx
from data_quality.suites import Expect, Suite, build_suites
from pipelines.ingest import capture
from pipelines.ingest.batch import ingest_objects
from pipelines.lake.config import load_config
from pipelines.simulation.simulate import SimulationConfig, generate_day, to_records

DAY = dt.date(2026, 10, 5)
SHOWN = gx.MAX_UNEXPECTED_SHOWN


def _bronze(rows: int) -> pa.Table:
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=int(rows * 1.2), stores=200, skus=500)
    records = to_records(generate_day(sim, "us", DAY, "USD"))
    landing = load_config("local").location("aws-us").landing
    at = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
    # objects of 200k events, as Firehose would land them: each stays under the ingest's bound
    # on an inflated object (capture.MAX_OBJECT_BYTES), so none is quarantined whole
    objects = [
        (f"k{i}.gz", capture.encode(landing, capture.Batch(at, records[i : i + 200_000]), 0))
        for i in range(0, len(records), 200_000)
    ]
    bronze = ingest_objects(objects, landing, "us", DAY).bronze
    if bronze.num_rows < rows:
        raise RuntimeError(f"the ingest kept {bronze.num_rows} rows, fewer than {rows}")
    return bronze


def _inject(t: pa.Table) -> pa.Table:
    """Bad values at fixed positions (every n-th row), so each run flags the same rows."""
    i = np.arange(t.num_rows)

    def every(n: int, at: int) -> pa.Array:
        return pa.array(i % n == at)

    def put(name: str, n: int, at: int, value: Any) -> None:
        nonlocal t
        col = t[name]
        new = pc.if_else(every(n, at), pa.scalar(value, col.type), col)
        t = t.set_column(t.schema.get_field_index(name), name, new)

    put("quantity", 1000, 7, -1)
    put("unit_price", 2000, 13, None)
    put("unit_price", 5000, 21, 0.0)
    put("region", 20_000, 3, "xx")
    put("currency", 25_000, 5, "XXX")
    put("store_id", 30_000, 11, 0)
    put("sku", 50_000, 19, None)
    put("event_ts", 60_000, 23, None)
    ids = t["event_id"].combine_chunks()
    previous = pa.concat_arrays([ids.slice(0, 1), ids.slice(0, len(ids) - 1)])
    dup = pc.if_else(every(40_000, 17), previous, ids)
    return t.set_column(t.schema.get_field_index("event_id"), "event_id", dup)


# ---- the floor: the same facts with pyarrow.compute -------------------------------------


@dataclass
class Fact:
    """One expectation's facts: pass/fail, rows flagged, how many, the first values."""

    success: bool
    flagged: np.ndarray | None = None  # row positions, for map expectations
    count: int | None = None
    values: list[Any] | None = None
    observed: Any = None


def _mask(e: Expect, t: pa.Table) -> pa.ChunkedArray:
    """Rows an expectation flags, with GX's semantics (value checks skip nulls)."""
    col = t[e.kwargs["column"]]
    kind = e.type
    if kind == "ExpectColumnValuesToNotBeNull":
        return pc.is_null(col)
    if kind == "ExpectColumnValuesToBeUnique":
        counts = pc.value_counts(col)
        repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
        return pc.and_(pc.is_in(col, repeated), pc.is_valid(col))
    if kind == "ExpectColumnValuesToBeInSet":
        return pc.and_(pc.invert(pc.is_in(col, pa.array(e.kwargs["value_set"]))), pc.is_valid(col))
    if kind == "ExpectColumnValuesToBeBetween":
        low, high = e.kwargs.get("min_value"), e.kwargs.get("max_value")
        parts = []
        if low is not None:
            parts.append((pc.less_equal if e.kwargs.get("strict_min") else pc.less)(col, low))
        if high is not None:
            above = pc.greater_equal if e.kwargs.get("strict_max") else pc.greater
            parts.append(above(col, high))
        bad = parts[0] if len(parts) == 1 else pc.or_(parts[0], parts[1])
        return pc.fill_null(bad, False)  # a null is no value out of range
    raise NotImplementedError(kind)


def floor(suite: Suite, t: pa.Table, params: dict[str, Any], rows: bool = False) -> list[Fact]:
    """Every expectation of the suite by hand; ``rows`` also returns the flagged positions."""
    out = []
    for e in suite.expectations:
        if e.type == "ExpectTableColumnsToMatchSet":
            out.append(Fact(set(t.column_names) == set(e.kwargs["column_set"]), observed=None))
            continue
        if e.type == "ExpectTableRowCountToEqual":
            out.append(Fact(t.num_rows == params["expected_rows"], observed=t.num_rows))
            continue
        mask = _mask(e, t)
        count = pc.sum(mask).as_py() or 0
        values = pc.filter(t[e.kwargs["column"]], mask).slice(0, SHOWN).to_pylist()
        flagged = np.flatnonzero(mask.to_numpy(zero_copy_only=False)) if rows else None
        out.append(Fact(count == 0, flagged, count, values))
    return out


# ---- main's bridge, as it was before this change -----------------------------------------


def before(suite: Suite, table: pa.Table | Any, params: dict[str, Any]) -> Any:
    """Main's path: default to_pandas(), a GX suite built per call, SUMMARY, fingerprinting."""
    import great_expectations as ge
    from great_expectations.execution_engine import pandas_execution_engine as pee

    is_spark = not isinstance(table, pa.Table)
    data = table if is_spark else table.to_pandas()
    kind = "spark" if is_spark else "pandas"
    ctx = _before_context()
    try:
        source = ctx.data_sources.get(f"before_{kind}")
    except (KeyError, ValueError):
        add = ctx.data_sources.add_spark if is_spark else ctx.data_sources.add_pandas
        source = add(f"before_{kind}")
    try:
        asset = source.get_asset(suite.asset)
    except LookupError:
        asset = source.add_dataframe_asset(suite.asset)
    try:
        bd = asset.get_batch_definition("whole")
    except KeyError:
        bd = asset.add_batch_definition_whole_dataframe("whole")
    saved, pee.HASH_THRESHOLD = pee.HASH_THRESHOLD, 1e9  # GX's default
    try:
        batch = bd.get_batch(batch_parameters={"dataframe": data})
    finally:
        pee.HASH_THRESHOLD = saved
    expectations = [
        getattr(ge.expectations, e.type)(
            **{
                k: params[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v
                for k, v in e.kwargs.items()
            }
        )
        for e in suite.expectations
    ]
    result = batch.validate(
        ge.ExpectationSuite(name=f"{suite.asset}_suite", expectations=expectations),
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": SHOWN},
    )
    _ = data.count() if is_spark else len(data)
    return result


_BEFORE: dict[str, Any] = {}


def _before_context() -> Any:
    if "ctx" not in _BEFORE:
        import great_expectations as ge
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _BEFORE["ctx"] = ge.get_context(mode="ephemeral")
        _BEFORE["ctx"].variables.progress_bars = ProgressBarsConfig(globally=False)
    return _BEFORE["ctx"]


# ---- comparing -----------------------------------------------------------------------------


def _gx_flagged(suite: Suite, data: Any, params: dict[str, Any], spark: bool) -> list[Any]:
    """Rows GX flags per expectation (COMPLETE results): positions, or event ids on Spark."""
    compiled = gx._engine().compiled(suite)
    fmt: dict[str, Any] = {"result_format": "COMPLETE"}
    if spark:
        fmt["unexpected_index_column_names"] = ["event_id"]
        bd = gx._engine().batch_definition("spark", suite.asset)
        frame = data
    else:
        bd = gx._engine().batch_definition("pandas", suite.asset)
        frame = gx._pandas_frame(data)
    batch = bd.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(compiled.suite(), result_format=fmt, expectation_parameters=params)
    flagged: list[Any] = [None] * len(suite.expectations)
    for r in result.results:
        idx = (r.result or {}).get("unexpected_index_list")
        if idx is not None:
            flagged[gx._position(r)] = (
                sorted(str(d["event_id"]) for d in idx) if spark else sorted(int(i) for i in idx)
            )
    return flagged


def compare(
    suite: Suite,
    outcome: gx.SuiteOutcome,
    facts: list[Fact],
    flagged: list[Any],
    table: pa.Table,
    by_event_id: bool,
) -> list[str]:
    """Differences between GX and the floor; empty when both flag exactly the same rows.

    Rows are positions on pandas, event ids on Spark (which has no row order); the bridge's
    counts must equal the floor's and its examples be the floor's first flagged values (on
    Spark: values of rows the floor flagged).
    """
    diffs = []
    for e, o, f, rows in zip(suite.expectations, outcome.outcomes, facts, flagged, strict=True):
        name = f"{e.type}({e.kwargs.get('column', '')})"
        if o.success != f.success:
            diffs.append(f"{name}: GX success={o.success}, floor {f.success}")
        if f.flagged is None:
            continue
        positions = pa.array(f.flagged, pa.int64())
        want = (
            sorted(str(v) for v in table["event_id"].take(positions).to_pylist())
            if by_event_id
            else f.flagged.tolist()
        )
        if rows != want:
            diffs.append(f"{name}: GX flags {len(rows or [])} rows, floor {len(want)}")
        if o.unexpected_count is not None and o.unexpected_count != f.count:
            diffs.append(f"{name}: GX counts {o.unexpected_count}, floor {f.count}")
        first = [gx._jsonable(v) for v in f.values or []]
        values = [gx._jsonable(v) for v in table[e.kwargs["column"]].take(positions).to_pylist()]
        shown_ok = (
            all(v in values for v in o.unexpected_values)
            if by_event_id
            else o.unexpected_values in ([], first)
        )
        if not shown_ok:
            diffs.append(f"{name}: GX shows {o.unexpected_values}, floor {first}")
    return diffs


# ---- Spark ---------------------------------------------------------------------------------


def spark_floor(df: Any, suite: Suite) -> list[Any]:
    """One aggregation: the row count, each expectation's unexpected count, distinct ids."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("rows")]
    for i, e in enumerate(suite.expectations):
        col: Any = F.col(e.kwargs["column"]) if "column" in e.kwargs else None
        cond = None
        if e.type == "ExpectColumnValuesToNotBeNull":
            cond = col.isNull()
        elif e.type == "ExpectColumnValuesToBeUnique":
            aggs.append(F.count_distinct(col).alias(f"e{i}"))
        elif e.type == "ExpectColumnValuesToBeInSet":
            cond = ~col.isin(e.kwargs["value_set"])
        elif e.type == "ExpectColumnValuesToBeBetween":
            low, high = e.kwargs.get("min_value"), e.kwargs.get("max_value")
            parts = []
            if low is not None:
                parts.append(col <= low if e.kwargs.get("strict_min") else col < low)
            if high is not None:
                parts.append(col >= high if e.kwargs.get("strict_max") else col > high)
            cond = parts[0] if len(parts) == 1 else parts[0] | parts[1]
        if cond is not None:
            aggs.append(F.sum(F.when(cond, 1).otherwise(0)).alias(f"e{i}"))
    return list(df.agg(*aggs).collect()[0])


def _spark_jobs(spark: Any, label: str, fn: Callable[[], Any]) -> tuple[float, int, Any]:
    sc = spark.sparkContext
    sc.setJobGroup(label, label)
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    jobs = len(sc.statusTracker().getJobIdsForGroup(label))
    sc.setJobGroup("", "")
    return seconds, jobs, out


def spark_part(
    tables: dict[str, pa.Table],
    suite: Suite,
    facts: list[Fact],
    rounds: int,
    with_before: bool,
) -> dict[str, Any]:
    """GX on cached Spark DataFrames against one aggregation, and the rows each flags."""
    import pyarrow.parquet as pq

    from pipelines.spark.session import build_session

    spark = build_session(app_name="bench-quality")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        frames = {}
        for name, table in tables.items():
            pq.write_table(table, os.path.join(tmp, f"{name}.parquet"))
            frames[name] = spark.read.parquet(os.path.join(tmp, f"{name}.parquet")).cache()
            frames[name].count()
        cases: dict[str, Callable[[], Any]] = {}
        for name, df in frames.items():
            params = {"expected_rows": tables[name].num_rows}
            suffix = "" if name == "injected" else f"_{name}"
            cases[f"spark_seconds{suffix}"] = functools.partial(gx.validate, suite, df, params)
            cases[f"spark_floor_s{suffix}"] = functools.partial(spark_floor, df, suite)
            if with_before:
                cases[f"spark_before_s{suffix}"] = functools.partial(before, suite, df, params)
        medians, last, jobs = _race(cases, rounds, spark)
        out.update(medians)
        out.update(
            {k.replace("_seconds", "_jobs").replace("_s", "_jobs"): v for k, v in jobs.items()}
        )
        params = {"expected_rows": tables["injected"].num_rows}
        flagged = _gx_flagged(suite, frames["injected"], params, spark=True)
        diffs = compare(
            suite, last["spark_seconds"], facts, flagged, tables["injected"], by_event_id=True
        )
        out.update(spark_results_equal=not diffs, spark_differences=diffs)
        for df in frames.values():
            df.unpersist()
    return out


def _race(
    cases: dict[str, Callable[[], Any]], rounds: int, spark: Any = None
) -> tuple[dict[str, float], dict[str, Any], dict[str, int]]:
    """Each case once to warm up, then ``rounds`` interleaved rounds: medians, last results."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    last: dict[str, Any] = {}
    jobs: dict[str, int] = {}
    for fn in cases.values():
        fn()
    for r in range(rounds):
        for name, fn in cases.items():
            if spark is not None:
                seconds, jobs[name], last[name] = _spark_jobs(spark, f"{name}{r}", fn)
            else:
                seconds, last[name] = _timed(fn)
            times[name].append(seconds)
    return {k: round(statistics.median(v), 3) for k, v in times.items()}, last, jobs


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    """Build the partition, time both sides, compare what they flag, print the JSON last."""
    warnings.filterwarnings("ignore")
    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    with_before = os.environ.get("BENCH_BEFORE", "1") != "0"
    clean = _bronze(rows)
    tables = {"injected": _inject(clean), "clean": clean}
    table = tables["injected"]
    suite = build_suites(load_config("local"))["bronze_events"]
    first_s, _ = _timed(lambda: gx.validate(suite, table.slice(0, 1000), {"expected_rows": 1000}))
    cases: dict[str, Callable[[], Any]] = {}
    for name, t in tables.items():
        params = {"expected_rows": t.num_rows}
        suffix = "" if name == "injected" else f"_{name}"
        cases[f"seconds{suffix}"] = functools.partial(gx.validate, suite, t, params)
        cases[f"floor_s{suffix}"] = functools.partial(floor, suite, t, params)
        if with_before:
            cases[f"before_s{suffix}"] = functools.partial(before, suite, t, params)
    medians, last, _ = _race(cases, rounds)
    params = {"expected_rows": table.num_rows}
    outcome = last["seconds"]
    facts = floor(suite, table, params, rows=True)
    flagged = _gx_flagged(suite, table, params, spark=False)
    diffs = compare(suite, outcome, facts, flagged, table, by_event_id=False)
    result: dict[str, Any] = {"rows": table.num_rows, "expectations": len(suite.expectations)}
    result.update(medians)
    result.update(
        gx_overhead_x=round(medians["seconds"] / medians["floor_s"], 2),
        gx_overhead_x_clean=round(medians["seconds_clean"] / medians["floor_s_clean"], 2),
        first_call_s=round(first_s, 2),
        failed_expectations=[f"{o.expectation}({o.column or ''})" for o in outcome.failed],
        flagged_rows=sum(f.count or 0 for f in facts),
        pandas_results_equal=not diffs,
        pandas_differences=diffs,
    )
    if with_before:
        result["speedup_vs_before_x"] = round(medians["before_s"] / medians["seconds"], 1)
    if os.environ.get("BENCH_SPARK", "1") != "0":
        result.update(spark_part(tables, suite, facts, rounds, with_before))
        for suffix in ("", "_clean"):
            result[f"spark_overhead_x{suffix}"] = round(
                result[f"spark_seconds{suffix}"] / result[f"spark_floor_s{suffix}"], 2
            )
    result["results_equal"] = result["pandas_results_equal"] and result.get(
        "spark_results_equal", True
    )
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
