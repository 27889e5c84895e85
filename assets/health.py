"""The platform's health and cost per region and day: measured per region, rolled up, judged.

Two assets, so that no step reads personal data outside its jurisdiction:

- ``region_health`` (date x region, like bronze) measures one region's days in that region's
  own pool: its tables' logs, its quarantine's reason kinds (personal-data tables, read where
  they live) and what Dagster recorded of its partitions (records landed and duplicates dropped
  per ingest, compute seconds per step). It writes counts, sizes and reason kinds, no record's
  content, to the region's own ``region_health`` table.
- ``lakehouse_health`` (daily, the ML home) reads only those PII-free rows, the ML home's own
  tables and replicas, and the replicated tables' logs (replica lag, egress, the ML home's
  compute), judges each day against the kept row of its weekday a week before it (its value
  and the weeks of history it carries: pipelines/operations/anomaly.py), and writes the
  roll-up, each row carrying its own history, to the Delta table in the ML home. A run reads
  the day and one earlier day, whatever the history (#28).

With one code location per jurisdiction each location defines its own ``region_health``
(``eu/region_health``: assets/keys.py) and the ML home's the roll-up; on one location both run
side by side, with the same figures.

The roll-up's metadata is the day's, per region (``quarantine_pct/us``…, rounded), so the
Plots tab draws one point per day. Its anomaly checks (pipelines/operations/anomaly.py) fail
with WARNING severity; the check alert sensor (jobs/alerts.py) sends them through the
run-failure channel.
"""

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.bronze import COMPUTE_SECONDS
from assets.keys import Keys, rekeyed, table_of
from assets.partitions import Partitions, build_partitions, date_ranges_by_region, date_region_of
from assets.replicas import bytes_read_by_location
from assets.sovereignty import declare, require_jurisdiction
from data_quality import gx
from data_quality.suites import Suite, Suites
from pipelines.lake import tables
from pipelines.lake.config import PER_JURISDICTION, LakeConfig
from pipelines.lake.storage import bytes_read, bytes_read_since
from pipelines.operations import advice, anomaly, health
from resources.lake import LakeResource

HEALTH = tables.HEALTH.name
REGION_HEALTH = tables.REGION_HEALTH.name
DAILY_CRON = "0 1 * * *"
# The partitions automation refreshes: the newest days, whose late events, replica lag and
# freshness still move; older days are rerun by a backfill.
RECENT = dt.timedelta(days=2)
LIMIT = 10_000  # materializations of one asset read for one day, at most
# A region's measurement reads personal-data tables (health.TABLES_READ says why): it runs only
# in a pool that may process its region's data (refused elsewhere before anything is opened).
REGION_DATA = declare(reads=health.TABLES_READ, writes=(REGION_HEALTH,))
# The roll-up reads the regions' PII-free rows and the replicated (PII-free) tables only: it
# runs wherever policy.allowed_routes lets every region's data go (the ML home).
HEALTH_DATA = declare(reads=(REGION_HEALTH, tables.GOLD.name), writes=(HEALTH,))
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


def _day_partitions(
    cfg: LakeConfig, day: dt.date, regions: Sequence[str] | None = None
) -> list[str]:
    """Every partition key naming ``day``: the date's, and the date's in each region.

    ``regions``: only those regions' (date, region) keys.
    """
    if regions is not None:
        return [f"{day}|{r}" for r in regions]
    return [day.isoformat(), *(f"{day}|{r}" for r in cfg.region_codes)]


def _midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()


def _records(
    instance: dg.DagsterInstance,
    cfg: LakeConfig,
    key: dg.AssetKey,
    start: dt.date,
    end: dt.date,
    regions: Sequence[str] | None = None,
) -> list[Any]:
    """The asset's materializations about ``start..end``, newest first: a bounded read.

    Those days' partitions, and the unpartitioned materializations that ran on those days
    (``regions``: only those regions' partitions).
    """
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    partitions = [k for d in days for k in _day_partitions(cfg, d, regions)]
    found = list(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(key, asset_partitions=partitions), limit=LIMIT
        ).records
    )
    if regions is not None:
        return sorted(found, key=lambda r: -r.storage_id)
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
    regions: Sequence[str] | None = None,
) -> health.Observed:
    """What the instance recorded about ``start..end``: ingest counts, compute seconds, syncs.

    Reads the materializations of those days' partitions (and of unpartitioned assets run on
    them) only; ``regions``: only those regions' (date, region) partitions, and no syncs. A
    step's seconds are shared equally among the (asset, partition)s it materialized, and are
    counted by table (``eu/silver_events`` as ``silver_events``).
    """
    ingest: dict[health.Key, dict[str, int]] = {}
    by_step: dict[tuple[str, str], list[tuple[str, health.Key]]] = {}
    runless: dict[health.Key, dict[str, float]] = {}
    for key in asset_keys:
        name = table_of(key)
        for rec in _records(instance, cfg, key, start, end, regions):
            mat = rec.asset_materialization
            if mat is None:
                continue
            where = _key_of(cfg, mat.partition, dict(mat.metadata), rec.timestamp)
            if not start <= where[1] <= end:
                continue
            if not rec.run_id:  # a runless event (the ingest worker's): its own seconds
                timed = mat.metadata.get(COMPUTE_SECONDS)
                if timed is not None:
                    runless.setdefault(where, {}).setdefault(name, 0.0)
                    runless[where][name] += float(timed.value)  # type: ignore[arg-type]
            else:
                step = rec.event_log_entry.step_key or ""
                by_step.setdefault((rec.run_id, step), []).append((name, where))
            if name == tables.BRONZE.name and where not in ingest:
                ingest[where] = {
                    "landed": int(mat.metadata["landed"].value),  # type: ignore[arg-type]
                    "duplicates": int(mat.metadata["duplicates_dropped"].value),  # type: ignore[arg-type]
                }
    syncs = _syncs(instance, cfg, start) if regions is None else []
    compute = _compute(instance, by_step)
    for where, by_asset in runless.items():
        into = compute.setdefault(where, {})
        for name, seconds in by_asset.items():
            into[name] = into.get(name, 0.0) + seconds
    return health.Observed(ingest, compute, syncs)


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


def build_region_health(
    cfg: LakeConfig,
    parts: Partitions,
    suites: Suites,
    keys: Keys,
    timed: Sequence[dg.AssetKey],
) -> dg.AssetsDefinition:
    """Each region's health, measured in its own pool: one (date, region) partition per day.

    Compute seconds are gathered for every asset in ``timed`` (the region assets); on one
    code location for every jurisdiction it refreshes like the roll-up, with one per
    jurisdiction each location's chain sensor runs it after its region's parents
    (jobs/jurisdiction.py).
    """
    suite: Suite = suites[REGION_HEALTH]
    key = keys.of(REGION_HEALTH)
    watched = list(timed)
    # what it reads (health.TABLES_READ); the other tables' logs give only their sizes
    parents = [keys.of(t.name) for t in (tables.BRONZE, tables.QUARANTINE)]

    @dg.asset(
        key=key,
        group_name="operations",
        deps=parents,
        partitions_def=parts.date_region,
        kinds={"delta", "python"},
        description=tables.REGION_HEALTH.description,
        tags=REGION_DATA.tags(),
        metadata=REGION_DATA.metadata(),
        automation_condition=(
            None if cfg.compute.pools == PER_JURISDICTION else health_condition()
        ),
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[gx.check_spec(suite, key)],
    )
    def region_health(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Measure the run's regions and days from their own tables; keep them in the region."""
        cfg = lake.config()
        ranges = date_ranges_by_region(list(context.partition_keys))
        locations = [cfg.location_for_region(r) for r in ranges]
        where = require_jurisdiction(context, lake, REGION_HEALTH, locations, REGION_DATA)
        measured, versions = [], {}
        for region, spans in ranges.items():
            loc = cfg.location_for_region(region)
            for start, end in spans:
                observed = observe(context.instance, cfg, watched, start, end, [region])
                part = health.measure_region(cfg, loc, start, end, lake.storage_options, observed)
                versions[loc.name] = health.write(cfg, part, lake.storage_options(loc), loc)
                measured.append(part.rows)
        rows = pa.concat_tables(measured)
        yield dg.MaterializeResult(
            metadata={
                **where,
                "dagster/row_count": rows.num_rows,
                "delta_versions": dg.MetadataValue.json(versions),
            }
        )
        check = gx.check(suite, rows, {"expected_rows": rows.num_rows})
        yield from rekeyed([check], context.assets_def.keys)

    return region_health


def build_health(
    cfg: LakeConfig,
    suites: Suites,
    parents: Sequence[dg.AssetKey],
    timed: Sequence[dg.AssetKey],
) -> dg.AssetsDefinition:
    """The roll-up in the ML home over the regions' health (``parents``: their runs refresh it).

    ``parents``: every jurisdiction's ``region_health`` and the replicas. Partitioned by day as
    the landing dates are; compute seconds are gathered for every asset in ``timed`` (the ML
    home's).
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
        """Roll the regions' days up, judge each against the weeks before it, keep them.

        One day (automation), or a range of days in one run (a backfill, the demo): the range
        is rolled up and written at once, each day judged against the weeks before it (the
        kept row of its weekday a week before the range, with the history it carries, then the
        range's earlier days), and each day's partition gets its own figures.
        """
        before = bytes_read()
        cfg = lake.config()
        locations = list(cfg.locations.values())
        where = require_jurisdiction(context, lake, HEALTH, locations, HEALTH_DATA)
        days = sorted(dt.date.fromisoformat(k) for k in context.partition_keys)
        first, last = days[0], days[-1]
        home = lake.storage_options(cfg.home)
        regional = [
            r
            for loc in locations
            for r in health.read_region(loc, lake.storage_options(loc), first, last)
        ]
        missing = sorted(
            {cfg.location_for_region(r).region for r in cfg.region_codes}
            - {str(r["region"]) for r in regional}
        )
        if missing:
            context.log.warning(
                f"no region_health rows of {', '.join(missing)} for {first}..{last}: those "
                "regions had no landed data, or their region_health has not run yet"
            )
        observed = observe(context.instance, cfg, watched, first, last)
        rolled = health.roll_up(cfg, regional, first, last, lake.storage_options, observed)
        # the baseline as earlier runs kept it: a week back at most, whatever the history
        judged = health.judge(cfg, home, rolled, days)
        context.log.info(f"baseline: {judged.kept.describe()}")
        measured, found = judged.health, judged.anomalies
        version = health.write(cfg, measured, home)
        new = measured.records()
        records = judged.records()
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
                "baseline_days_kept": len({r["date"] for r in judged.kept.rows}),
                "baseline": judged.kept.describe(),
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
