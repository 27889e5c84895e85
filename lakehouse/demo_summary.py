"""The demo's summary as tables a person reads at the end of ``make run``.

The same summary is written as JSON (``.lake/demo-summary.json``); the tables show what a new
user looks for first: what landed and what became of it per region, the replicas, the model.
"""

from __future__ import annotations

from typing import IO, Any

from pipelines.operations.health import usd

SUMMARY_WIDTH = 100


def _n(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def plural(count: int, noun: str) -> str:
    """``1 anomaly``, ``2 anomalies``, ``0 runs``."""
    if count == 1:
        return f"1 {noun}"
    many = noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
    return f"{count:,} {many}"


def _mb(value: Any) -> str:
    return "-" if value is None else f"{float(value) / 2**20:,.1f} MB"


def tables(summary: dict[str, Any]) -> list[Any]:
    """The summary as ``rich`` tables: regions, replicas, model, stages."""
    from rich import box
    from rich.table import Table

    def table(title: str, *columns: str) -> Table:
        # no padding at the edges: the regions' seven columns fit 80 columns, headers whole
        t = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            title_style="bold",
            pad_edge=False,
        )
        for i, c in enumerate(columns):
            t.add_column(c, justify="left" if i == 0 else "right", min_width=len(c))
        return t

    regions = table(
        f"{summary.get('days', '?')} days in {summary.get('environment', '?')}: per region",
        "region",
        "dates",
        "landed",
        "ingested",
        "quarantined",
        "duplicates",
        "gold rows",
    )
    gold = summary.get("gold_rows") or {}
    for region, b in sorted((summary.get("bronze") or {}).items()):
        regions.add_row(
            region,
            _n(b.get("partitions")),
            _n(b.get("landed")),
            _n(b.get("ingested")),
            _n(b.get("quarantined")),
            _n(b.get("duplicates_dropped")),
            _n(gold.get(region)),
        )
    replicas = table("replicas of gold in the ML home", "route", "version", "behind", "copied")
    replicas.add_column("egress", justify="right")
    for _name, r in sorted((summary.get("replicas") or {}).items()):
        replicas.add_row(
            str(r.get("route", "-")),
            _n(r.get("replica_version")),
            _n(r.get("versions_behind")),
            _mb(r.get("bytes_copied")),
            usd(float(r.get("egress_usd") or 0)),
        )
    out = [regions, replicas, _model_table(summary, table), _stages_table(summary, table)]
    if summary.get("emulated"):
        out.append(_emulated_table(summary["emulated"], table))
    return out


def _emulated_table(emulated: dict[str, Any], table: Any) -> Any:
    """What the emulators hold, and the paths they cannot serve (``make run-emulated``)."""
    t = table("on the emulators (127.0.0.1)", "", "")
    t.show_header = False
    t.columns[1].justify = "left"
    roots = emulated.get("spark_roots") or {}
    t.add_row("spark", ", ".join(f"{k} {v}" for k, v in roots.items()))
    mlflow = emulated.get("mlflow") or {}
    t.add_row(
        "mlflow",
        f"{mlflow.get('tracking_uri')}, {_n(mlflow.get('artifact_objects'))} artifact objects "
        f"in {mlflow.get('artifacts')}",
    )
    logs = emulated.get("compute_logs") or {}
    t.add_row("compute logs", f"{_n(logs.get('objects'))} objects in {logs.get('uri')}")
    for path, why in (emulated.get("not_served_by_emulators") or {}).items():
        t.add_row("not served", f"{path}: {why}")
    return t


def _model_table(summary: dict[str, Any], table: Any) -> Any:
    ml = summary.get("ml") or {}
    champion = ml.get("champion") or {}
    features = summary.get("features") or {}
    drift = summary.get("drift_injected") or {}
    model = table("features and model", "", "")
    model.show_header = False
    model.columns[1].justify = "left"
    model.add_row("features", f"{_n(features.get('rows'))} rows, {features.get('partitions')} days")
    model.add_row("drift injected", f"{drift.get('region')} from {drift.get('from')}")
    model.add_row("drift first flagged", str(ml.get("first_drift_day") or "never"))
    model.add_row(
        "retraining",
        f"{ml.get('retrain_requests', 0)} requested, "
        f"{ml.get('retrain_requests_held_back_by_cooldown', 0)} held back by the cooldown",
    )
    model.add_row(
        "champion",
        f"{champion.get('model')} v{champion.get('champion')}, promoted because: "
        f"{champion.get('why') or '-'}",
    )
    latest = champion.get("latest_challenger") or {}
    if latest:
        model.add_row(
            "latest challenger",
            f"v{latest.get('version')} {latest.get('decision') or 'not promoted'}: "
            f"{latest.get('why') or '-'}",
        )
    health = summary.get("health") or {}
    if health:
        count = int(health.get("anomalies") or 0)
        days = f"{health.get('days')} days to {health.get('as_of')}" if health.get("days") else ""
        flagged = "; ".join(health.get("flagged") or [])
        model.add_row(
            "health",
            f"{days or 'as of ' + str(health.get('as_of'))}: {plural(count, 'anomaly')} flagged"
            + (f" ({flagged})" if flagged else "")
            + ", see `lakehouse status --recommend`",
        )
    return model


def _stages_table(summary: dict[str, Any], table: Any) -> Any:
    stages = table("time", "stage", "seconds")
    for name, seconds in (summary.get("stages") or {}).items():
        stages.add_row(name, f"{seconds:.1f}")
    stages.add_row("total", f"{float(summary.get('seconds') or 0):.1f}")
    return stages


def print_summary(summary: dict[str, Any], stream: IO[str]) -> None:
    """Print the tables, the failures if any, and where the JSON is."""
    from rich.console import Console

    # a log or a pipe has no width: wide enough for the tables, which do not wrap there
    width = None if stream.isatty() else SUMMARY_WIDTH
    console = Console(file=stream, highlight=False, width=width)
    for t in tables(summary):
        console.print(t)
    failed = summary.get("ingest_failed") or []
    if failed and summary.get("ingest") == "runs":
        console.print(f"ingestion runs that failed: {', '.join(failed)} (see `make ui`, Runs)")
    elif failed:
        console.print(f"ingestion failed: {'; '.join(failed)}", markup=False)
    console.print(f"summary as JSON: {summary.get('summary_file')}", markup=False)
    if summary.get("seconds_with_emulators") is not None:
        console.print(
            f"{summary['seconds_with_emulators']:.1f} s with the emulators' start and stop",
            markup=False,
        )
