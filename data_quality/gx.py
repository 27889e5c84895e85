"""The bridge from Great Expectations 1.x to Dagster asset checks.

The only module that imports ``great_expectations`` (it costs seconds to import, so it is
imported on first validation, never when the code location loads). An ephemeral context
validates the data an asset has just written, as pandas (from Arrow) or as a Spark
DataFrame, and the result is summarized into an ``AssetCheckResult`` a person can act on.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa

from data_quality.suites import Suite

_LOCK = threading.Lock()
MAX_UNEXPECTED_SHOWN = 5


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
    rows: int
    outcomes: list[ExpectationOutcome]

    @property
    def success(self) -> bool:
        """True when every expectation passed."""
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """The expectations that failed."""
        return [o for o in self.outcomes if not o.success]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value[:80].decode("utf-8", "backslashreplace")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value[:20]]
    return str(value)


@functools.cache
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def _fill(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        key = value[1:-1]
        if key not in params:
            raise KeyError(f"expectation needs parameter {key!r}, which the asset did not give")
        return params[key]
    return value


def _build_suite(gx: Any, suite: Suite, params: dict[str, Any], name: str) -> Any:
    expectations = []
    for e in suite.expectations:
        cls = getattr(gx.expectations, e.type)
        expectations.append(cls(**{k: _fill(v, params) for k, v in e.kwargs.items()}))
    return gx.ExpectationSuite(name=name, expectations=expectations)


def validate(suite: Suite, data: Any, params: dict[str, Any] | None = None) -> SuiteOutcome:
    """Validate data (Arrow table, pandas or Spark DataFrame) against an asset's suite."""
    import great_expectations as gx

    asset = suite.asset
    params = params or {}
    with _LOCK:  # the ephemeral context's stores are not thread-safe
        ctx = _context()
        is_spark = type(data).__module__.startswith("pyspark")
        if isinstance(data, pa.Table):
            data = data.to_pandas()
        kind = "spark" if is_spark else "pandas"
        source_name = f"lakehouse_{kind}"
        try:
            source = ctx.data_sources.get(source_name)
        except (KeyError, ValueError):
            source = (
                ctx.data_sources.add_spark(source_name)
                if is_spark
                else ctx.data_sources.add_pandas(source_name)
            )
        try:
            df_asset = source.get_asset(asset)
        except LookupError:
            df_asset = source.add_dataframe_asset(asset)
        try:
            batch_def = df_asset.get_batch_definition("whole")
        except KeyError:
            batch_def = df_asset.add_batch_definition_whole_dataframe("whole")
        batch = batch_def.get_batch(batch_parameters={"dataframe": data})
        gx_suite = _build_suite(gx, suite, params, f"{asset}_suite")
        result = batch.validate(
            gx_suite,
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": MAX_UNEXPECTED_SHOWN,
            },
        )
    rows = data.count() if is_spark else len(data)
    outcomes = []
    for r in result.results:
        res = r.result or {}
        outcomes.append(
            ExpectationOutcome(
                expectation=r.expectation_config.type,
                column=r.expectation_config.kwargs.get("column"),
                success=bool(r.success),
                observed_value=res.get("observed_value"),
                unexpected_count=res.get("unexpected_count"),
                unexpected_percent=res.get("unexpected_percent"),
                unexpected_values=list(res.get("partial_unexpected_list") or [])[
                    :MAX_UNEXPECTED_SHOWN
                ],
            )
        )
    return SuiteOutcome(suite=suite.check_name, rows=int(rows), outcomes=outcomes)


def check_result(suite: Suite, outcome: SuiteOutcome, **extra: Any) -> dg.AssetCheckResult:
    """A suite outcome as a Dagster asset check result, with what failed and by how much."""
    asset = suite.asset
    failed = outcome.failed
    metadata: dict[str, Any] = {
        "great_expectations_suite": f"{asset}_suite",
        "rows_validated": outcome.rows,
        "expectations": len(outcome.outcomes),
        "expectations_failed": len(failed),
        "failed_expectations": ", ".join(
            f"{o.expectation}({o.column})" if o.column else o.expectation for o in failed
        )
        or "none",
        "results": dg.MetadataValue.json([o.as_dict() for o in outcome.outcomes]),
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


def check_spec(suite: Suite) -> dg.AssetCheckSpec:
    """The asset check spec for an asset's suite (blocking where the suite says so)."""
    asset = suite.asset
    return dg.AssetCheckSpec(
        name=suite.check_name,
        asset=asset,
        blocking=suite.blocking,
        description=f"Great Expectations: {suite.description}",
        metadata={"great_expectations_suite": f"{asset}_suite"},
    )
