"""``lakehouse_health``: the platform's health and cost per region and day, with anomaly checks.

Partitioned by day like the bronze partitions' landing date: a run measures its day (that day's
bronze, quarantine and ledger partitions; the engine is pipelines/operations/health.py), adds
what only Dagster knows about that day (records landed and duplicates dropped per ingest,
compute seconds per step, when each sync ran), writes the day's rows to the Delta table, and
judges the day against a bounded window of kept rows (the anomaly baseline's weeks), never the
whole history (#28). Its metadata is the day's, per region (``quarantine_pct/us``…, rounded),
so the Plots tab draws one point per day. Its anomaly checks (pipelines/operations/anomaly.py)
fail with WARNING severity; the check alert sensor (jobs/alerts.py) sends them through the
run-failure channel.
"""

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from assets.partitions import build_partitions, date_region_of
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
# Nine weeks of kept rows: the eight weeks of baseline before the judged day, and the day.
WINDOW_DAYS = 63
DAILY_CRON = "0 1 * * *"
# The partitions automation refreshes: the newest days, whose late events, replica lag and
# freshness still move; older days are rerun by a backfill.
RECENT = dt.timedelta(days=2)
LIMIT = 10_000  # materializations of one asset read for one day, at most
# A personal-data step (health.TABLES_READ says why): it runs only where every region's data
# may be processed (compute sovereignty refuses it elsewhere before anything is opened).
HEALTH_DATA = declare(reads=health.TABLES_READ, writes=(tables.HEALTH.name,))
SIGNIFICANT = 4


def anomaly_check_name(metric: str) -> str:
    """Name of the anomaly check of one metric."""
    return f"{metric}_anomalies"


def health_condition() -> dg.AutomationCondition:
    """The newest days: daily, and after each run of their parents (each ingest and sync)."""
    # typed loosely: the union of an asset-keyed and a generic condition confuses mypy
    updated: Any = (
        dg.AutomationCondition.any_deps_updated()
        | dg.AutomationCondition.cron_tick_passed(DAILY_CRON)
    )
    return (
        updated.since_last_handled()
        & dg.AutomationCondition.in_latest_time_window(RECENT)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("the newest days: daily, and after each run of their parents")


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


def _step_materializations(instance: dg.DagsterInstance, run_id: str) -> Counter[str]:
    """How many materializations each step of the run wrote (a range run: one per partition)."""
    made: Counter[str] = Counter()
    if not run_id:  # runless events (the ingest worker's) have no steps
        return made
    cursor = None
    while True:
        page = instance.get_records_for_run(
            run_id, cursor=cursor, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=LIMIT
        )
        made.update(r.event_log_entry.step_key or "" for r in page.records)
        if not page.has_more:
            return made
        cursor = page.cursor


def _day_partitions(cfg: LakeConfig, day: dt.date) -> list[str]:
    """Every partition key naming ``day``: the date's, and the date's in each region."""
    return [day.isoformat(), *(f"{day}|{r}" for r in cfg.region_codes)]


def _midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()


def _records(
    instance: dg.DagsterInstance, cfg: LakeConfig, key: dg.AssetKey, start: dt.date, end: dt.date
) -> list[Any]:
    """The asset's materializations about ``start..end``, newest first: a bounded read.

    Those days' partitions, and the unpartitioned materializations that ran on those days.
    """
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    partitions = [k for d in days for k in _day_partitions(cfg, d)]
    found = list(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(key, asset_partitions=partitions), limit=LIMIT
        ).records
    )
    ran = dg.AssetRecordsFilter(
        key,
        after_timestamp=_midnight(start),
        before_timestamp=_midnight(end + dt.timedelta(days=1)),
    )
    found += [
        r
        for r in instance.fetch_materializations(ran, limit=LIMIT).records
        if r.asset_materialization is not None and r.asset_materialization.partition is None
    ]
    return sorted(found, key=lambda r: -r.storage_id)  # newest first


def _syncs(instance: dg.DagsterInstance, cfg: LakeConfig, start: dt.date) -> list[health.SyncRun]:
    """Each replica's syncs since ``start`` (the earliest that can carry its days)."""
    out: list[health.SyncRun] = []
    for rep in cfg.replicas():
        since = dg.AssetRecordsFilter(dg.AssetKey(rep.name), after_timestamp=_midnight(start))
        for rec in instance.fetch_materializations(since, limit=LIMIT, ascending=True).records:
            mat = rec.asset_materialization
            if mat is None or "replica_version" not in mat.metadata:
                continue
            finished = dt.datetime.fromtimestamp(rec.timestamp, dt.UTC)
            version = int(mat.metadata["replica_version"].value)  # type: ignore[arg-type]
            out.append(health.SyncRun(rep.name, finished, version))
    return out


def observe(
    instance: dg.DagsterInstance,
    cfg: LakeConfig,
    asset_keys: Sequence[dg.AssetKey],
    start: dt.date,
    end: dt.date,
) -> health.Observed:
    """What the instance recorded about ``start..end``: ingest counts, compute seconds, syncs.

    Reads the materializations of those days' partitions (and of unpartitioned assets run on
    them) only. A step's seconds are shared equally among the (asset, partition)s it
    materialized.
    """
    ingest: dict[health.Key, dict[str, int]] = {}
    by_step: dict[tuple[str, str], list[tuple[str, health.Key]]] = {}
    for key in asset_keys:
        name = key.to_user_string()
        for rec in _records(instance, cfg, key, start, end):
            mat = rec.asset_materialization
            if mat is None:
                continue
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
    return health.Observed(ingest, _compute(instance, by_step), _syncs(instance, cfg, start))


def _compute(
    instance: dg.DagsterInstance, by_step: dict[tuple[str, str], list[tuple[str, health.Key]]]
) -> dict[health.Key, dict[str, float]]:
    compute: dict[health.Key, dict[str, float]] = {}
    seconds: dict[str, dict[str, float]] = {}
    made: dict[str, Counter[str]] = {}
    for (run_id, step), done in by_step.items():
        if run_id not in seconds:
            seconds[run_id] = _step_seconds(instance, run_id)
            made[run_id] = _step_materializations(instance, run_id)
        # a range run's step is shared over all it materialized, not only the days asked for
        share = seconds[run_id].get(step, 0.0) / max(made[run_id][step], len(done))
        for name, where in done:
            per_asset = compute.setdefault(where, {})
            per_asset[name] = per_asset.get(name, 0.0) + share
    return compute


def rounded(value: float, digits: int = SIGNIFICANT) -> float:
    """``value`` to ``digits`` significant digits (metadata a person reads, and plots)."""
    return float(f"{value:.{digits}g}")


def day_metadata(records: list[dict[str, Any]], day: dt.date) -> dict[str, Any]:
    """The day's figures per region, rounded: one point per day on the Plots tab."""
    out: dict[str, Any] = {}
    for r in records:
        if r["date"] != day:
            continue
        region = r["region"]
        pct = rounded(100 * float(r["quarantine_rate"]))
        out[f"quarantine_pct/{region}"] = dg.MetadataValue.float(pct)
        out[f"events/{region}"] = dg.MetadataValue.int(int(r["ingested"]))
        out[f"quarantined/{region}"] = dg.MetadataValue.int(int(r["quarantined"]))
        out[f"egress_usd/{region}"] = dg.MetadataValue.float(rounded(float(r["egress_usd"])))
        seconds = round(float(r["compute_seconds"]), 1)
        out[f"compute_seconds/{region}"] = dg.MetadataValue.float(seconds)
        if r["replica_lag_hours"] is not None:
            lag = round(float(r["replica_lag_hours"]), 2)
            out[f"replica_lag_hours/{region}"] = dg.MetadataValue.float(lag)
    return out


def _check_results(
    cfg: LakeConfig, anomalies: list[anomaly.Anomaly], days: list[dt.date]
) -> list[dg.AssetCheckResult]:
    """One result per rule for the run's days (one day, or a backfill's range)."""
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
                    "judged_days": days[0].isoformat()
                    if len(days) == 1
                    else f"{days[0]}..{days[-1]}",
                    "anomalies": dg.MetadataValue.json(
                        [{**a.as_dict(), "command": advice.anomaly_command(cfg, a)} for a in hits]
                    ),
                    "alert": "; ".join(
                        f"{a.describe()} (`{advice.anomaly_command(cfg, a)}`)" for a in hits
                    )
                    or "none",
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

    Partitioned by day as the landing dates are; compute seconds are gathered for every asset
    in ``timed``.
    """
    suite: Suite = suites[HEALTH]
    watched = list(timed)

    @dg.asset(
        name=HEALTH,
        group_name="operations",
        deps=list(parents),
        partitions_def=build_partitions(cfg).daily,
        kinds={"delta", "python"},
        description=tables.HEALTH.description,
        tags=HEALTH_DATA.tags(),
        metadata=HEALTH_DATA.metadata(),
        automation_condition=health_condition(),
        # a backfill (or the demo) measures its range in one run, each day's figures its own
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            gx.check_spec(suite),
            *[
                dg.AssetCheckSpec(
                    anomaly_check_name(r.metric),
                    asset=HEALTH,
                    description=f"No anomaly in {r.label} on the day against the region's "
                    "weekday baseline (median and MAD of the last weeks' kept rows).",
                )
                for r in anomaly.RULES
            ],
        ],
    )
    def lakehouse_health(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Measure every region's days, keep them, judge each against the kept weeks before it.

        One day (automation), or a range of days in one run (a backfill, the demo): the range
        is measured and written at once, each day judged against the rows before it (the kept
        weeks, then the range's earlier days), and each day's partition gets its own figures.
        """
        before = bytes_read()
        cfg = lake.config()
        regions = [cfg.location_for_region(r) for r in cfg.region_codes]
        where = require_jurisdiction(context, lake, HEALTH, regions, HEALTH_DATA)
        days = sorted(dt.date.fromisoformat(k) for k in context.partition_keys)
        first, last = days[0], days[-1]
        start = first - dt.timedelta(days=WINDOW_DAYS - 1)
        home = lake.storage_options(cfg.home)
        # the baseline's weeks as earlier runs kept them: bounded, whatever the history
        kept = health.read(cfg, home, start, first - dt.timedelta(days=1))
        observed = observe(context.instance, cfg, watched, first, last)
        measured = health.measure(cfg, first, last, lake.storage_options, observed)
        version = health.write(cfg, measured, home)
        new = measured.records()
        records = [health.decoded(r) for r in kept.to_pylist()] + new
        found = anomaly.detect(records, days)
        recs = advice.recommend(cfg, measured.stored, records, found)
        for a in found:
            context.log.warning(f"anomaly: {a.describe()} ({advice.anomaly_command(cfg, a)})")
        for day in days:
            on_day = [a for a in found if a.date == day]
            context.add_asset_metadata(
                {
                    "dagster/row_count": sum(1 for r in new if r["date"] == day),
                    "anomalies": len(on_day),
                    "flagged": "; ".join(f"{a.metric} of {a.region}" for a in on_day) or "none",
                    **day_metadata(records, day),
                    "health": dg.MetadataValue.md(health.render(records, day, markdown=True)),
                },
                partition_key=day.isoformat(),
            )
        yield dg.MaterializeResult(
            metadata={
                **where,
                "table_uri": cfg.home.table_uri(HEALTH),
                "delta_version": version,
                "baseline_days_kept": len({r["date"] for r in kept.to_pylist()}),
                **bytes_read_by_location(lake, bytes_read_since(before)),
                **{
                    f"storage_usd_month/{loc}": dg.MetadataValue.float(rounded(s["usd_month"]))
                    for loc, s in measured.storage.items()
                },
                "recommendations": dg.MetadataValue.md(advice.render(recs, markdown=True)),
            }
        )
        yield gx.check(suite, measured.rows, {"expected_rows": measured.rows.num_rows})
        yield from _check_results(cfg, found, days)

    return lakehouse_health
