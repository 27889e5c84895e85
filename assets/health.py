"""``lakehouse_health``: the platform's health and cost per region and day, with anomaly checks.

The engine (pipelines/operations/health.py) measures the tables; this asset adds what only
Dagster knows (records landed and duplicates dropped per ingest, compute seconds per step, when
each sync ran), writes the Delta table, and reports the newest day per region as numeric metadata
(``quarantine_rate/us``…) so the asset's Plots tab shows each region's trend over its
materializations. Its anomaly checks (pipelines/operations/anomaly.py) fail with WARNING
severity; the check alert sensor (jobs/alerts.py) sends them through the run-failure channel.
"""

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from assets.partitions import date_region_of
from assets.replicas import bytes_read_by_location
from assets.sovereignty import declare, require_jurisdiction
from data_quality import gx
from data_quality.suites import Suite, Suites
from pipelines.lake import tables
from pipelines.lake.config import LakeConfig
from pipelines.lake.storage import bytes_read, bytes_read_since
from pipelines.operations import advice, anomaly, health
from resources.lake import LakeResource

HEALTH = tables.HEALTH.name
# Nine weeks: eight weeks of baseline for the judged week's weekdays.
WINDOW_DAYS = 63
JUDGE_DAYS = 7
# Days measured afresh each run (late events, replica lag and freshness still move); the rest of
# the window is read back from the health table as earlier runs kept it (#28: a run's cost
# follows the new days, not the window's nine weeks of quarantine).
RECOMPUTE_DAYS = JUDGE_DAYS
DAILY_CRON = "0 1 * * *"
LIMIT = 10_000
# A personal-data step (health.TABLES_READ says why): it runs only where every region's data
# may be processed (compute sovereignty refuses it elsewhere before anything is opened).
HEALTH_DATA = declare(reads=health.TABLES_READ, writes=(tables.HEALTH.name,))


def anomaly_check_name(metric: str) -> str:
    """Name of the anomaly check of one metric."""
    return f"{metric}_anomalies"


class HealthConfig(dg.Config):
    """Which day the view is as of (default: the day before the newest landing date)."""

    as_of: str = Field(
        default="", description="YYYY-MM-DD; empty: the day before the newest landing date."
    )


def health_condition() -> dg.AutomationCondition:
    """Daily, and after each run of its parents (each ingest and sync of the day)."""
    # typed loosely: the union of an asset-keyed and a generic condition confuses mypy
    updated: Any = (
        dg.AutomationCondition.any_deps_updated()
        | dg.AutomationCondition.cron_tick_passed(DAILY_CRON)
    )
    return (
        updated.since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("daily, and after each run of its parents")


def _key_of(
    cfg: LakeConfig, partition: str | None, meta: dict[str, Any], when: float
) -> health.Key:
    """The (region, date) a materialization is about.

    Date x region partitions say it; date partitions (ML home) count for the home's region;
    unpartitioned assets for their source location's region (replicas) or the home's, on the
    day they ran.
    """
    if partition and "|" in partition:
        dims = date_region_of(partition)
        return dims["region"], dt.date.fromisoformat(dims["date"])
    if partition:
        return cfg.home.region, dt.date.fromisoformat(partition)
    source = meta.get("source_location")
    region = cfg.location(str(source.value)).region if source is not None else cfg.home.region
    return region, dt.datetime.fromtimestamp(when, dt.UTC).date()


def _step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    return {
        s.step_key: s.end_time - s.start_time
        for s in instance.get_run_step_stats(run_id)
        if s.start_time is not None and s.end_time is not None
    }


def observe(
    instance: dg.DagsterInstance,
    cfg: LakeConfig,
    asset_keys: Sequence[dg.AssetKey],
    start: dt.date,
    end: dt.date,
) -> health.Observed:
    """What the instance recorded: ingest counts, compute seconds per asset, sync runs.

    A step's seconds are shared equally among the (asset, partition)s it materialized.
    """
    ingest: dict[health.Key, dict[str, int]] = {}
    by_step: dict[tuple[str, str], list[tuple[str, health.Key]]] = {}
    syncs: list[health.SyncRun] = []
    replicas = {r.name for r in cfg.replicas()}
    for key in asset_keys:
        name = key.to_user_string()
        for rec in instance.fetch_materializations(key, limit=LIMIT).records:  # newest first
            mat = rec.asset_materialization
            if mat is None:
                continue
            if name in replicas and "replica_version" in mat.metadata:
                # a sync run is an event, not a day's data: every one counts for arrival times
                finished = dt.datetime.fromtimestamp(rec.timestamp, dt.UTC)
                version = int(mat.metadata["replica_version"].value)  # type: ignore[arg-type]
                syncs.append(health.SyncRun(name, finished, version))
            where = _key_of(cfg, mat.partition, dict(mat.metadata), rec.timestamp)
            if not start <= where[1] <= end:
                continue
            step = rec.event_log_entry.step_key or ""
            by_step.setdefault((rec.run_id, step), []).append((name, where))
            if name == tables.BRONZE.name and where not in ingest:
                ingest[where] = {
                    "landed": int(mat.metadata["landed"].value),  # type: ignore[arg-type]
                    "duplicates": int(mat.metadata["duplicates_dropped"].value),  # type: ignore[arg-type]
                }
    return health.Observed(ingest, _compute(instance, by_step), syncs)


def _compute(
    instance: dg.DagsterInstance, by_step: dict[tuple[str, str], list[tuple[str, health.Key]]]
) -> dict[health.Key, dict[str, float]]:
    compute: dict[health.Key, dict[str, float]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for (run_id, step), done in by_step.items():
        if run_id not in seconds:
            seconds[run_id] = _step_seconds(instance, run_id)
        share = seconds[run_id].get(step, 0.0) / len(done)
        for name, where in done:
            per_asset = compute.setdefault(where, {})
            per_asset[name] = per_asset.get(name, 0.0) + share
    return compute


def _previous_as_of(instance: dg.DagsterInstance) -> dt.date | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(HEALTH))
    mat = event.asset_materialization if event is not None else None
    if mat is None or "as_of" not in mat.metadata:
        return None
    return dt.date.fromisoformat(str(mat.metadata["as_of"].value))


def judged_days(as_of: dt.date, previous: dt.date | None) -> list[dt.date]:
    """Days whose anomalies this run reports: those since the previous view (at most a week).

    A run on the same day as the previous one judges that day again: the check's state is
    today's state.
    """
    first = as_of - dt.timedelta(days=JUDGE_DAYS - 1)
    if previous is not None and previous >= first:
        first = min(previous + dt.timedelta(days=1), as_of)
    return [first + dt.timedelta(days=i) for i in range((as_of - first).days + 1)]


def _plots(records: list[dict[str, Any]], as_of: dt.date) -> dict[str, Any]:
    """Numeric metadata of the newest day per region: the Plots tab draws one line each."""
    out: dict[str, Any] = {}
    for r in records:
        if r["date"] != as_of:
            continue
        region = r["region"]
        out[f"quarantine_rate/{region}"] = dg.MetadataValue.float(float(r["quarantine_rate"]))
        out[f"events/{region}"] = dg.MetadataValue.int(int(r["ingested"]))
        out[f"egress_usd/{region}"] = dg.MetadataValue.float(float(r["egress_usd"]))
        out[f"compute_seconds/{region}"] = dg.MetadataValue.float(float(r["compute_seconds"]))
        if r["replica_lag_hours"] is not None:
            lag = float(r["replica_lag_hours"])
            out[f"replica_lag_hours/{region}"] = dg.MetadataValue.float(lag)
    return out


def _check_results(
    anomalies: list[anomaly.Anomaly], judged: list[dt.date]
) -> list[dg.AssetCheckResult]:
    days = f"{judged[0]}..{judged[-1]}" if judged else "none"
    out = []
    for rule in anomaly.RULES:
        hits = [a for a in anomalies if a.metric == rule.metric]
        out.append(
            dg.AssetCheckResult(
                asset_key=HEALTH,
                check_name=anomaly_check_name(rule.metric),
                passed=not hits,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "judged_days": days,
                    "anomalies": dg.MetadataValue.json([a.as_dict() for a in hits]),
                    "alert": "; ".join(a.describe() for a in hits) or "none",
                },
            )
        )
    return out


def build_health(
    cfg: LakeConfig,
    suites: Suites,
    parents: Sequence[dg.AssetKey],
    timed: Sequence[dg.AssetKey],
) -> dg.AssetsDefinition:
    """The health asset over the tables it measures (``parents``: their runs refresh it).

    Compute seconds are gathered for every asset in ``timed``.
    """
    suite: Suite = suites[HEALTH]
    watched = list(timed)

    @dg.asset(
        name=HEALTH,
        group_name="operations",
        deps=list(parents),
        kinds={"delta", "python"},
        description=tables.HEALTH.description,
        tags=HEALTH_DATA.tags(),
        metadata=HEALTH_DATA.metadata(),
        automation_condition=health_condition(),
        check_specs=[
            gx.check_spec(suite),
            *[
                dg.AssetCheckSpec(
                    anomaly_check_name(r.metric),
                    asset=HEALTH,
                    description=f"No anomaly in {r.label} against the region's weekday "
                    "baseline (median and MAD of the last weeks).",
                )
                for r in anomaly.RULES
            ],
        ],
    )
    def lakehouse_health(
        context: dg.AssetExecutionContext, lake: LakeResource, config: HealthConfig
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Measure every region's recent days, store them, judge the newest against baselines."""
        before = bytes_read()
        cfg = lake.config()
        regions = [cfg.location_for_region(r) for r in cfg.region_codes]
        where = require_jurisdiction(context, lake, HEALTH, regions, HEALTH_DATA)
        as_of = _as_of(cfg, lake, config)
        start = as_of - dt.timedelta(days=WINDOW_DAYS - 1)
        fresh = as_of - dt.timedelta(days=RECOMPUTE_DAYS - 1)
        home = lake.storage_options(cfg.home)
        # the baseline's older days as earlier runs kept them; measured afresh only when none is
        kept = health.read(cfg, home, start, fresh - dt.timedelta(days=1))
        if not kept.num_rows:
            fresh = start
        observed = observe(context.instance, cfg, watched, fresh, as_of)
        measured = health.measure(cfg, fresh, as_of, lake.storage_options, observed)
        version = health.write(cfg, measured, home)
        records = [health.decoded(r) for r in kept.to_pylist()] + measured.records()
        judged = judged_days(as_of, _previous_as_of(context.instance))
        found = anomaly.detect(records, judged)
        recs = advice.recommend(cfg, measured.stored, records)
        for a in found:
            context.log.warning(f"anomaly: {a.describe()}")
        yield dg.MaterializeResult(
            metadata={
                **where,
                "as_of": as_of.isoformat(),
                "table_uri": cfg.home.table_uri(HEALTH),
                "delta_version": version,
                "dagster/row_count": measured.rows.num_rows,
                "measured_from": fresh.isoformat(),
                "baseline_rows_kept": kept.num_rows,
                **bytes_read_by_location(lake, bytes_read_since(before)),
                "anomalies": len(found),
                **_plots(records, as_of),
                **{
                    f"storage_usd_month/{loc}": dg.MetadataValue.float(float(s["usd_month"]))
                    for loc, s in measured.storage.items()
                },
                "health": dg.MetadataValue.md(health.render(records, as_of, markdown=True)),
                "recommendations": dg.MetadataValue.md(advice.render(recs, markdown=True)),
            }
        )
        yield gx.check(suite, measured.rows, {"expected_rows": measured.rows.num_rows})
        yield from _check_results(found, judged)

    return lakehouse_health


def _as_of(cfg: LakeConfig, lake: LakeResource, config: HealthConfig) -> dt.date:
    if config.as_of:
        try:
            return dt.date.fromisoformat(config.as_of)
        except ValueError:
            raise dg.Failure(
                f"lakehouse_health: as_of {config.as_of!r} is not YYYY-MM-DD"
            ) from None
    newest = health.latest_complete_day(cfg, lake.storage_options)
    return newest or dt.datetime.now(dt.UTC).date()
