"""The bridge from Great Expectations 1.x to Dagster asset checks.

The only module that imports ``great_expectations`` (it costs seconds to import, so it is
imported on first validation, never when the code location loads). An ephemeral context
validates the data an asset has just written, as pandas (from Arrow) or as a Spark
DataFrame, and the result is summarized into an ``AssetCheckResult`` a person can act on.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa

from data_quality.suites import Suite
from pipelines.lake import tables

# GX's ephemeral context and its stores are not thread-safe: one validation at a time.
_LOCK = threading.RLock()
MAX_UNEXPECTED_SHOWN = 5
# Counts, percentages and a few unexpected values: all the check's metadata shows. SUMMARY
# adds per-expectation lists of the unexpected rows' positions, which nothing here reads.
BASIC = "BASIC"
# Each GX expectation carries its position in the suite, to report results in the suite's order.
POSITION = "lakehouse_position"
# Expectations that read the table's column names only, never a value.
SCHEMA_ONLY = frozenset(
    {
        "ExpectTableColumnsToMatchSet",
        "ExpectTableColumnsToMatchOrderedList",
        "ExpectTableColumnCountToEqual",
        "ExpectTableColumnCountToBeBetween",
        "ExpectColumnToExist",
    }
)
# Expectations on the table's row count: they read no value either.
ROW_COUNT = "ExpectTableRowCount"


@dataclass
class ExpectationOutcome:
    """One expectation's result, summarized."""

    expectation: str
    column: str | None
    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_values: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, without empty fields."""
        out = {
            "expectation": self.expectation,
            "column": self.column,
            "success": self.success,
            "observed_value": _jsonable(self.observed_value),
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": None
            if self.unexpected_percent is None
            else round(self.unexpected_percent, 4),
            "unexpected_values": [_jsonable(v) for v in self.unexpected_values],
        }
        return {k: v for k, v in out.items() if v not in (None, [])}


@dataclass
class SuiteOutcome:
    """A suite's result over one batch."""

    suite: str
    rows: int  # the rows the value expectations read
    outcomes: list[ExpectationOutcome]
    rows_in_batch: int | None = None  # the batch's rows, when a sample of them was read

    @property
    def sampled(self) -> bool:
        """True when the value expectations read a sample of the batch, not every row."""
        return self.rows_in_batch is not None and self.rows_in_batch > self.rows

    @property
    def success(self) -> bool:
        """True when every expectation passed."""
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """The expectations that failed."""
        return [o for o in self.outcomes if not o.success]


def _jsonable(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, bytes):
        return value[:80].decode("utf-8", "backslashreplace")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value[:20]]
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None  # None, NaN, NaT or NA: a missing value reads the same whatever its dtype
    if isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "item"):
        return _jsonable(value.item())  # a NumPy scalar
    return str(value)


@dataclass(frozen=True)
class _Compiled:
    """An asset's suite as Great Expectations objects, built once per process."""

    name: str
    expectations: tuple[Any, ...]  # GX expectation objects, in the suite's order
    parameters: frozenset[str]
    # columns whose values the suite reads; None when an expectation reads the whole table
    columns: frozenset[str] | None
    # positions of the expectations that read only the table's column names
    schema_only: frozenset[int]
    # positions of the expectations on the table's row count
    row_count: frozenset[int]
    _subsets: dict[tuple[int, ...], Any] = field(default_factory=dict, compare=False)

    def suite(self, positions: Sequence[int] | None = None) -> Any:
        """The GX suite of the expectations at ``positions`` (all by default), built once."""
        key = tuple(range(len(self.expectations)) if positions is None else positions)
        if key not in self._subsets:
            gx = _engine().gx
            self._subsets[key] = gx.ExpectationSuite(
                name=self.name, expectations=[copy.copy(self.expectations[i]) for i in key]
            )
        return self._subsets[key]


class _Engine:
    """The ephemeral context with one data source per engine, built once per process."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints a pandas batch by hashing every cell unless the frame is larger
        # than this: a batch marker nothing here reads, which cost more than the validation.
        # tests/test_gx.py fails if an upgrade moves it.
        pandas_execution_engine.HASH_THRESHOLD = 0
        self.gx = gx
        self.context: Any = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._batch_definitions: dict[tuple[str, str], Any] = {}
        self._suites: dict[str, _Compiled] = {}

    def batch_definition(self, kind: str, asset: str) -> Any:
        """The whole-dataframe batch definition of ``asset`` on the ``kind`` data source."""
        key = (kind, asset)
        if key not in self._batch_definitions:
            sources: Any = self.context.data_sources
            name = f"lakehouse_{kind}"
            try:
                source = sources.get(name)
            except (KeyError, ValueError):
                # persist=False: the bridge validates a cached DataFrame already (_validate_spark);
                # GX's own persist() of it only made Spark warn "already cached" on every check
                source = (
                    sources.add_spark(name, persist=False)
                    if kind == "spark"
                    else sources.add_pandas(name)
                )
            self._batch_definitions[key] = source.add_dataframe_asset(
                asset
            ).add_batch_definition_whole_dataframe("whole")
        return self._batch_definitions[key]

    def compiled(self, suite: Suite) -> _Compiled:
        """The suite's GX objects: ``{placeholders}`` become GX expectation parameters."""
        key = json.dumps(
            [suite.asset, [(e.type, e.kwargs) for e in suite.expectations]],
            sort_keys=True,
            default=str,
        )
        if key not in self._suites:
            self._suites[key] = _compile(self.gx, suite)
        return self._suites[key]


@functools.cache
def _engine() -> _Engine:
    return _Engine()


def _placeholder(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return value[1:-1]
    return None


def _compile(gx: Any, suite: Suite) -> _Compiled:
    expectations, parameters = [], set()
    columns: set[str] | None = set()
    for position, e in enumerate(suite.expectations):
        kwargs: dict[str, Any] = {"meta": {POSITION: position}}
        for k, v in e.kwargs.items():
            name = _placeholder(v)
            kwargs[k] = v if name is None else {"$PARAMETER": name}
            parameters.update([name] if name else [])
        expectations.append(getattr(gx.expectations, e.type)(**kwargs))
        read = _columns_read(e.type, e.kwargs)
        columns = None if read is None or columns is None else columns | read
    return _Compiled(
        name=f"{suite.asset}_suite",
        expectations=tuple(expectations),
        parameters=frozenset(parameters),
        columns=None if columns is None else frozenset(columns),
        schema_only=frozenset(i for i, e in enumerate(suite.expectations) if e.type in SCHEMA_ONLY),
        row_count=frozenset(
            i for i, e in enumerate(suite.expectations) if e.type.startswith(ROW_COUNT)
        ),
    )


def _columns_read(kind: str, kwargs: dict[str, Any]) -> set[str] | None:
    """Columns whose values an expectation reads: none for the table-level facts."""
    if kind in SCHEMA_ONLY or kind.startswith(ROW_COUNT):
        return set()
    named = {kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs}
    named.update(kwargs.get("column_list") or ())
    return named or None


def _pandas_frame(table: pa.Table) -> Any:
    """The rows as pandas over the same Arrow memory where GX allows it.

    Strings, binaries, dates and booleans stay Arrow-backed (no copy, no Python objects).
    Numbers and timestamps become NumPy: GX computes range checks vectorized on NumPy dtypes
    only (on an Arrow dtype it calls Python once per value).
    """
    import pandas as pd

    def dtype(t: pa.DataType) -> Any:
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t)
        return None if numeric else pd.ArrowDtype(t)

    return table.to_pandas(types_mapper=dtype)


def _result_format(shown: int) -> dict[str, Any]:
    return {"result_format": BASIC, "partial_unexpected_count": shown}


def _validate_batch(
    batch: Any, suite: Any, params: dict[str, Any], shown: int = MAX_UNEXPECTED_SHOWN
) -> list[Any]:
    result = batch.validate(
        suite, result_format=_result_format(shown), expectation_parameters=params
    )
    return list(result.results)


def _run(batch_definition: Any, frame: Any, suite: Any, params: dict[str, Any]) -> list[Any]:
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    return _validate_batch(batch, suite, params)


def sample(table: pa.Table, limit: int | None) -> pa.Table:
    """At most ``limit`` rows of ``table``, evenly spaced from its first: the same on every run.

    Every stretch of the batch is represented (its landing objects are appended in order), and
    a re-run validates the same rows. A table of ``limit`` rows or fewer is returned whole.
    """
    if limit is None or table.num_rows <= limit:
        return table
    return table.take(pa.array(np.arange(limit, dtype=np.int64) * table.num_rows // limit))


@dataclass(frozen=True)
class Sampled:
    """Rows as the suites read them: a sample of each batch (or every row), the exact count.

    ``values``: each batch's rows as :func:`sample` takes them, one after the other; ``rows``:
    how many rows the batches hold. What the ingest worker keeps of the batches it commits
    between two evaluations of the suites, so one evaluation reads the same rows a suite per
    batch would (and a batch's full rows are not held).
    """

    values: pa.Table
    rows: int

    @staticmethod
    def of(table: pa.Table, limit: int | None) -> Sampled:
        """A batch's rows as a suite with ``sample_rows=limit`` reads them."""
        return Sampled(sample(table, limit), table.num_rows)

    @staticmethod
    def joined(parts: Sequence[Sampled]) -> Sampled:
        """Several batches' samples as one: their values in order, their rows summed."""
        values = pa.concat_tables([p.values for p in parts], promote_options="default")
        return Sampled(values, sum(p.rows for p in parts))


def _shape_frame(schema: pa.Schema, rows: int | None) -> Any:
    """The column names with no values: of ``rows`` rows (an exact row count), or of none.

    Null columns over Arrow (a validity bitmap each): the row-count expectations count the
    batch's rows exactly, from Arrow, without reading or converting a value.
    """
    import pandas as pd

    empty = schema.empty_table()
    if rows is not None:
        empty = pa.table([pa.nulls(rows, f.type) for f in schema], schema=schema)
    return empty.to_pandas(types_mapper=pd.ArrowDtype)


def _validate_arrow(
    engine: _Engine,
    compiled: _Compiled,
    asset: str,
    data: Sampled,
    params: dict[str, Any],
) -> tuple[list[Any], int]:
    """The value expectations on the columns they read, of the batches or samples of them.

    The column-name expectations run on a frame without values, with the row-count ones when
    the values are sampled (so the count stays the batches', exact). Narrow pays: for each
    column expectation GX filters the whole frame (every column) to the rows where that column
    is not null.
    """
    values, schema = data.values, data.values.schema
    sampled = values.num_rows < data.rows
    shape = compiled.schema_only | (compiled.row_count if sampled else frozenset())
    if not shape:  # nothing to split off: one run over every column
        frame = _pandas_frame(values)
        with _LOCK:
            bd = engine.batch_definition("pandas", asset)
            results = _run(bd, frame, compiled.suite(), params)
        return sorted(results, key=_position), values.num_rows
    if compiled.columns is not None:
        values = values.select([c for c in values.column_names if c in compiled.columns])
    frame = _pandas_frame(values)
    counted = bool(shape & compiled.row_count)
    with _LOCK:
        bd = engine.batch_definition("pandas", asset)
        results = _run(
            bd,
            _shape_frame(schema, data.rows if counted else None),
            compiled.suite(sorted(shape)),
            params if counted else {},
        )
        rest = [i for i in range(len(compiled.expectations)) if i not in shape]
        if rest:
            results += _run(bd, frame, compiled.suite(rest), params)
    return sorted(results, key=_position), values.num_rows


def _validate_spark(
    engine: _Engine, compiled: _Compiled, asset: str, df: Any, params: dict[str, Any]
) -> tuple[list[Any], int]:
    """Every expectation's verdict and counts first; examples only for the failures.

    GX computes the counts in a few bundled aggregations over the cached rows; each example
    list costs one or two Spark jobs more per expectation, passed or not (for a passing one,
    a scan of every partition for a value it never finds). So the suite runs without
    examples, and GX's own example metric then runs for the failed expectations alone.
    """
    owned = getattr(df, "is_cached", True) is False
    if owned:
        df = df.cache()  # every expectation reads the same rows: compute them once
    try:
        with _LOCK:
            batch = engine.batch_definition("spark", asset).get_batch(
                batch_parameters={"dataframe": df}
            )
            results = _validate_batch(batch, compiled.suite(), params, shown=0)
            _add_examples(engine, batch, compiled, [r for r in results if not r.success])
        rows = _element_count(results)
        return sorted(results, key=_position), int(df.count()) if rows is None else rows
    finally:
        if owned:
            df.unpersist()


def _add_examples(engine: _Engine, batch: Any, compiled: _Compiled, failed: list[Any]) -> None:
    """Put GX's first unexpected values into the results of failed value expectations."""
    from great_expectations.expectations.registry import get_metric_kwargs
    from great_expectations.validator.metric_configuration import MetricConfiguration

    wanted: dict[int, tuple[Any, Any]] = {}
    for r in failed:
        map_metric = getattr(compiled.expectations[_position(r)], "map_metric", None)
        if map_metric is None or r.exception_info.get("raised_exception"):
            continue  # a table-level fact has no values to show; an error has its message
        name = f"{map_metric}.unexpected_values"
        kwargs = get_metric_kwargs(
            name,
            configuration=r.expectation_config,
            runtime_configuration={"result_format": _result_format(MAX_UNEXPECTED_SHOWN)},
        )
        metric = MetricConfiguration(
            name, kwargs["metric_domain_kwargs"], kwargs["metric_value_kwargs"]
        )
        wanted[_position(r)] = (r, metric)
    if not wanted:
        return
    validator = engine.context.get_validator(batch=batch)
    values, _aborted = validator.compute_metrics([m for _, m in wanted.values()])
    for r, metric in wanted.values():
        if metric.id in values and r.result is not None:
            r.result["partial_unexpected_list"] = list(values[metric.id])[:MAX_UNEXPECTED_SHOWN]


def _element_count(results: list[Any]) -> int | None:
    """The batch's row count as GX reported it with a column's or the table's results."""
    for r in results:
        res = r.result or {}
        if "element_count" in res:
            return int(res["element_count"])
        if (
            r.expectation_config.type.startswith("expect_table_row_count")
            and "observed_value" in res
        ):
            return int(res["observed_value"])
    return None


def _position(result: Any) -> int:
    """Where a result's expectation sits in the suite (GX may order results its own way)."""
    return int(result.expectation_config.meta[POSITION])


def validate(suite: Suite, data: Any, params: dict[str, Any] | None = None) -> SuiteOutcome:
    """Validate data (Arrow table, :class:`Sampled`, pandas or Spark) against an asset's suite.

    Great Expectations computes every result, from the cheapest faithful input: an Arrow
    table becomes pandas over the same memory with only the columns the suite reads (the
    column-name expectations see a frame of the whole schema without values); for a suite with
    ``sample_rows``, of at most that many rows, evenly spaced (``sample``), the row count then
    seen exact on that valueless frame. A Spark DataFrame is validated from one cached copy.
    The context, data sources and GX suites are built once per process.
    """
    params = params or {}
    batch: int | None = None  # known without a count for Arrow only
    with _LOCK:
        engine = _engine()
        compiled = engine.compiled(suite)
    missing = sorted(compiled.parameters - set(params))
    if missing:
        raise KeyError(f"expectation needs parameter {missing[0]!r}, which the asset did not give")
    if type(data).__module__.startswith("pyspark"):
        results, rows = _validate_spark(engine, compiled, suite.asset, data, params)
    elif isinstance(data, (pa.Table, Sampled)):
        rows_of = data if isinstance(data, Sampled) else Sampled.of(data, suite.sample_rows)
        results, rows = _validate_arrow(engine, compiled, suite.asset, rows_of, params)
        batch = rows_of.rows
    else:  # pandas, as the caller built it
        with _LOCK:
            bd = engine.batch_definition("pandas", suite.asset)
            results = sorted(_run(bd, data, compiled.suite(), params), key=_position)
        rows = len(data)
    return SuiteOutcome(
        suite=suite.check_name,
        rows=rows,
        outcomes=[_outcome(r) for r in results],
        rows_in_batch=batch,
    )


def _outcome(r: Any) -> ExpectationOutcome:
    res = r.result or {}
    return ExpectationOutcome(
        expectation=r.expectation_config.type,
        column=r.expectation_config.kwargs.get("column"),
        success=bool(r.success),
        observed_value=res.get("observed_value"),
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        unexpected_values=[
            _jsonable(v)
            for v in list(res.get("partial_unexpected_list") or [])[:MAX_UNEXPECTED_SHOWN]
        ],
    )


def check_result(suite: Suite, outcome: SuiteOutcome, **extra: Any) -> dg.AssetCheckResult:
    """A suite outcome as a Dagster asset check result, with what failed and by how much."""
    asset = suite.asset
    failed = outcome.failed
    results = [o.as_dict() for o in outcome.outcomes]
    if tables.holds_personal_data(asset):
        # Dagster's event log is central, outside the data's jurisdiction: keep no sample values
        # of a personal-data table there, only counts (the rows stay in their region's tables).
        results = [{k: v for k, v in r.items() if k != "unexpected_values"} for r in results]
    metadata: dict[str, Any] = {
        "great_expectations_suite": f"{asset}_suite",
        "rows_validated": outcome.rows,
        **(
            {}
            if outcome.rows_in_batch is None
            else {"rows_in_batch": outcome.rows_in_batch, "sampled": outcome.sampled}
        ),
        "expectations": len(outcome.outcomes),
        "expectations_failed": len(failed),
        "failed_expectations": ", ".join(
            f"{o.expectation}({o.column})" if o.column else o.expectation for o in failed
        )
        or "none",
        "results": dg.MetadataValue.json(results),
        **extra,
    }
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(asset),
        check_name=suite.check_name,
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR if suite.blocking else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=suite.description,
    )


def check(suite: Suite, data: Any, params: dict[str, Any] | None = None) -> dg.AssetCheckResult:
    """Validate ``data`` against ``suite`` and report it as the suite's asset check result."""
    return check_result(suite, validate(suite, data, params))


def check_spec(suite: Suite, key: dg.AssetKey | None = None) -> dg.AssetCheckSpec:
    """The asset check spec for an asset's suite (blocking where the suite says so).

    ``key``: the asset's key when it is not the suite's name (a jurisdiction's prefix).
    """
    asset = suite.asset
    return dg.AssetCheckSpec(
        name=suite.check_name,
        asset=key or asset,
        blocking=suite.blocking,
        description=f"Great Expectations: {suite.description}",
        metadata={"great_expectations_suite": f"{asset}_suite"},
    )
