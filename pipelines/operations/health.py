"""The platform's health and cost per region and day, measured from the tables themselves.

Counts, bytes and freshness come from the Delta logs (file sizes, row counts and times of each
partition: no data file is opened but the quarantine's reasons); what only the orchestrator
knows (records landed and duplicates dropped by an ingest, compute seconds of each step, when
each sync ran) is handed in as :class:`Observed`. Prices are ``lakehouse.yaml``'s
``egress_usd_per_gb`` and ``storage_usd_per_gb_month``. Free of Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipelines.ingest.reasons import reason_kind
from pipelines.lake import delta, tables
from pipelines.lake.config import LakeConfig, LakeLocation, Replica
from pipelines.lake.schemas import HEALTH_SCHEMA, REGION_HEALTH_SCHEMA
from pipelines.operations import anomaly
from pipelines.operations.anomaly import HISTORY, WEEK

BYTES_PER_GB = 1024**3
DAYS_PER_MONTH = 30.0
TOP_REASONS = 3
# Compaction pays where a partition holds several files well below a good Parquet size.
SMALL_FILE_BYTES = 32 * 1024**2
MIN_SMALL_FILES = 4
# A route's egress "dominates" when it is more than this share of its region's estimated cost.
EGRESS_DOMINANT_SHARE = 0.5
# Delta logs read at once (each a few KB to MB; `lakehouse status` reads about thirty)
LOG_READERS = 8
# The personal-data tables the view reads in every region's location: bronze's log and the
# quarantine's reason column (reason kinds only, counted). The health asset and `lakehouse
# status` declare them, so compute sovereignty checks both the same way.
TABLES_READ = (tables.BRONZE.name, tables.QUARANTINE.name)

Key = tuple[str, dt.date]  # (region, date)
MEASUREMENTS = (tables.HEALTH.name, tables.REGION_HEALTH.name)


Options = Callable[[LakeLocation], dict[str, str]]


@dataclass(frozen=True)
class SyncRun:
    """One sync of a replica as the orchestrator recorded it: when, and the version it reached."""

    replica: str
    finished_at: dt.datetime
    replica_version: int


@dataclass(frozen=True)
class Observed:
    """What only the orchestrator knows, per (region, date): ingests, compute, syncs."""

    ingest: Mapping[Key, Mapping[str, int]] = field(default_factory=dict)
    compute: Mapping[Key, Mapping[str, float]] = field(default_factory=dict)
    syncs: Sequence[SyncRun] = ()


@dataclass
class Part:
    """One partition of one table: its files, bytes, rows and newest write (ms)."""

    files: int = 0
    bytes: int = 0
    rows: int = 0
    small_files: int = 0
    newest_ms: int = 0
    paths: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Stored:
    """One table in one location, by (region, date) partition (region None: all regions)."""

    label: str
    table: str
    location: LakeLocation
    parts: dict[tuple[str | None, dt.date], Part]


def partitions(adds: pa.Table | None, date_column: str) -> dict[tuple[str | None, dt.date], Part]:
    """A table's files folded into partitions of (region, date)."""
    out: dict[tuple[str | None, dt.date], Part] = {}
    if adds is None or adds.num_rows == 0:
        return out
    cols = adds.to_pydict()
    days = cols[f"partition.{date_column}"]
    regions = cols.get("partition.region") or [None] * len(days)
    for i, day in enumerate(days):
        if day is None:
            continue
        part = out.setdefault((regions[i], day), Part())
        size = int(cols["size_bytes"][i] or 0)
        part.files += 1
        part.paths.add(str(cols["path"][i]))
        part.bytes += size
        part.rows += int(cols["num_records"][i] or 0)
        part.small_files += size < SMALL_FILE_BYTES
        part.newest_ms = max(part.newest_ms, int(cols["modification_time"][i] or 0))
    return out


def stored_tables(
    cfg: LakeConfig,
    options: Options,
    locations: Sequence[LakeLocation] | None = None,
    home: bool = True,
) -> list[Stored]:
    """Every table the environment writes, in every location that holds it (logs only).

    ``locations``: only the region tables of these (default: every location's); ``home``: the
    ML home's own tables and the replicas too.
    """
    regional = list(cfg.locations.values()) if locations is None else list(locations)
    wanted: list[Log] = []
    for spec in tables.TABLES.values():
        where = regional if spec.role == tables.Role.REGION else [cfg.home] if home else []
        date_column = spec.partition_by[0]
        wanted += [
            Log(spec.name, spec.name, loc, loc.table_uri(spec.name), date_column) for loc in where
        ]
    if home:
        for rep in cfg.replicas():
            date_column = tables.table(rep.table).partition_by[0]
            wanted.append(Log(rep.name, rep.table, rep.target, rep.target_uri, date_column))
    return _logs(wanted, options)


@dataclass(frozen=True)
class Log:
    """One table's log to read: its label, table, location, URI and date partition column."""

    label: str
    table: str
    location: LakeLocation
    uri: str
    date_column: str


def _logs(wanted: Sequence[Log], options: Options) -> list[Stored]:
    """The tables' logs read side by side (delta-rs parses them outside the GIL), in order."""
    with ThreadPoolExecutor(max_workers=LOG_READERS) as pool:
        adds = list(pool.map(lambda w: delta.file_actions(w.uri, options(w.location)), wanted))
    return [
        Stored(w.label, w.table, w.location, partitions(a, w.date_column))
        for w, a in zip(wanted, adds, strict=True)
    ]


def _sources(cfg: LakeConfig, options: Options) -> list[Stored]:
    """The replicated tables at their sources (PII-free: their logs say what a replica lacks)."""
    return _logs(
        [
            Log(
                rep.table,
                rep.table,
                rep.source,
                rep.source_uri,
                tables.table(rep.table).partition_by[0],
            )
            for rep in cfg.replicas()
        ],
        options,
    )


def storage_by_location(cfg: LakeConfig, stored: Sequence[Stored]) -> dict[str, dict[str, Any]]:
    """Bytes at rest per location and table, and the estimated dollars a month they cost."""
    sizes: dict[str, dict[str, int]] = {}
    for s in stored:
        total = sum(p.bytes for p in s.parts.values())
        if not total:
            continue
        tables_of = sizes.setdefault(s.location.name, {})
        tables_of[s.label] = tables_of.get(s.label, 0) + total
    return _priced(cfg, sizes)


def _priced(cfg: LakeConfig, sizes: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, Any]]:
    """Per location (by name): its tables' bytes, their total and its dollars a month."""
    out: dict[str, dict[str, Any]] = {}
    for where, by_table in sorted(sizes.items()):
        total = sum(by_table.values())
        price = cfg.storage_price(cfg.location(where))
        out[where] = {
            "bytes": total,
            "usd_month": total / BYTES_PER_GB * price,
            "tables": dict(by_table),
        }
    return out


def _reasons(
    locations: Sequence[LakeLocation], options: Options, start: dt.date, end: dt.date
) -> dict[Key, Counter]:
    """Quarantined records per (region, landing date) by reason kind."""
    out: dict[Key, Counter] = {}
    for loc in locations:
        uri = loc.table_uri(tables.QUARANTINE.name)
        # only the window's partitions: a run's cost follows the window, not the history
        rows = delta.read_between(
            uri, options(loc), "landing_date", start, end, ["landing_date", "region", "reason"]
        )
        if not rows.num_rows:
            continue
        cols = rows.to_pydict()
        for day, region, reason in zip(
            cols["landing_date"], cols["region"], cols["reason"], strict=True
        ):
            if start <= day <= end:
                out.setdefault((region, day), Counter())[reason_kind(str(reason))] += 1
    return out


@dataclass(frozen=True)
class ReplicaLag:
    """How late one region-day's data reached its replica."""

    versions_behind: int | None
    hours: float | None


def _replica_lag(
    rep: Replica,
    source: Part,
    replica: Part | None,
    versions_behind: int,
    syncs: Sequence[SyncRun],
    now: dt.datetime,
) -> ReplicaLag:
    """Lag of one day's data: replicated once the replica holds every file of it.

    Hours are from the day's newest write at the source to the first sync that finished
    after it (None when no sync was recorded); a day not replicated yet lags until now.
    """
    written = source.newest_ms / 1000
    if replica is not None and source.paths <= replica.paths:
        after = [
            s.finished_at.timestamp()
            for s in syncs
            if s.replica == rep.name and s.finished_at.timestamp() >= written
        ]
        return ReplicaLag(0, (min(after) - written) / 3600 if after else None)
    return ReplicaLag(versions_behind, max(now.timestamp() - written, 0.0) / 3600)


@dataclass
class _Context:
    cfg: LakeConfig
    stored: list[Stored]
    reasons: dict[Key, Counter]
    observed: Observed
    now: dt.datetime
    lag: dict[Key, ReplicaLag]


def _lags(
    cfg: LakeConfig,
    stored: Sequence[Stored],
    options: Options,
    observed: Observed,
    now: dt.datetime,
) -> dict[Key, ReplicaLag]:
    by_label = {(s.label, s.location.name): s for s in stored}
    out: dict[Key, ReplicaLag] = {}
    for rep in cfg.replicas():
        src = by_label.get((rep.table, rep.source.name))
        if src is None or not src.parts:
            continue
        copy = by_label.get((rep.name, rep.target.name))
        source_version = delta.table_version(rep.source_uri, options(rep.source)) or 0
        replica_version = delta.table_version(rep.target_uri, options(rep.target))
        behind = source_version - (replica_version if replica_version is not None else -1)
        for (region, day), part in src.parts.items():
            if region is not None:
                replica = copy.parts.get((region, day)) if copy is not None else None
                out[(region, day)] = _replica_lag(rep, part, replica, behind, observed.syncs, now)
    return out


def _parts(ctx: _Context, region: str, day: dt.date) -> dict[tuple[str, str], Part | None]:
    # the view's own rows are not the region's data (and would grow with each measurement)
    return {
        (s.label, s.location.name): s.parts.get((region, day))
        for s in ctx.stored
        if s.table not in MEASUREMENTS
    }


def _bytes(cfg: LakeConfig, parts: Mapping[tuple[str, str], Part | None]) -> tuple[dict, float]:
    """Bytes per table of a region-day, and what they cost a month where they are."""
    by_table = {label: p.bytes for (label, _), p in parts.items() if p is not None and p.bytes}
    storage_usd = sum(
        p.bytes / BYTES_PER_GB * cfg.storage_price(cfg.location(where))
        for (_, where), p in parts.items()
        if p is not None
    )
    return by_table, storage_usd


def _egress(
    cfg: LakeConfig, loc: LakeLocation, parts: Mapping[tuple[str, str], Part | None]
) -> tuple[int, float, list[str]]:
    """Bytes of a region-day its replicas copied out, their estimated price, and the routes."""
    egress_bytes, egress_usd, routes = 0, 0.0, []
    for rep in cfg.replicas():
        if rep.source.name != loc.name:
            continue
        copied = parts.get((rep.name, rep.target.name))
        routes.append(f"{rep.source.name}->{rep.target.name}")
        if copied is not None:
            egress_bytes += copied.bytes
            egress_usd += copied.bytes / BYTES_PER_GB * cfg.egress_price(rep.source, rep.target)
    return egress_bytes, egress_usd, routes


def _row(ctx: _Context, region: str, day: dt.date) -> dict[str, Any]:
    """One health row: counts, bytes and cost, lag, egress, compute, freshness."""
    cfg = ctx.cfg
    loc = cfg.location_for_region(region)
    parts = _parts(ctx, region, day)
    bronze = parts.get((tables.BRONZE.name, loc.name)) or Part()
    quarantine = parts.get((tables.QUARANTINE.name, loc.name)) or Part()
    ingest = ctx.observed.ingest.get((region, day), {})
    by_table, storage_usd = _bytes(cfg, parts)
    egress_bytes, egress_usd, routes = _egress(cfg, loc, parts)
    compute = dict(sorted(ctx.observed.compute.get((region, day), {}).items()))
    lag = ctx.lag.get((region, day), ReplicaLag(None, None))
    landed_rows = bronze.rows + quarantine.rows
    ingested_at = (
        dt.datetime.fromtimestamp(bronze.newest_ms / 1000, dt.UTC) if bronze.newest_ms else None
    )
    reasons = ctx.reasons.get((region, day), Counter())
    return {
        "date": day,
        "region": region,
        "location": loc.name,
        "landed": ingest.get("landed"),
        "ingested": bronze.rows,
        "quarantined": quarantine.rows,
        "duplicates": ingest.get("duplicates"),
        "quarantine_rate": quarantine.rows / landed_rows if landed_rows else 0.0,
        "top_reasons": json.dumps(dict(reasons.most_common(TOP_REASONS))),
        "bytes_stored": sum(by_table.values()),
        "bytes_by_table": json.dumps(dict(sorted(by_table.items()))),
        "storage_usd_month": storage_usd,
        "replica_versions_behind": lag.versions_behind,
        "replica_lag_hours": lag.hours,
        "egress_route": ", ".join(routes),
        "egress_bytes": egress_bytes,
        "egress_usd": egress_usd,
        "compute_seconds": float(sum(compute.values())),
        "compute_by_asset": json.dumps({k: round(v, 3) for k, v in compute.items()}),
        "ingested_at": ingested_at,
        "freshness_hours": (ctx.now - ingested_at).total_seconds() / 3600 if ingested_at else None,
        "computed_at": ctx.now,
    }


def _completed(ctx: _Context, row: Mapping[str, Any]) -> dict[str, Any]:
    """A region's row with what the ML home holds of its day: replicas, egress, lag, compute."""
    cfg, region, day = ctx.cfg, str(row["region"]), row["date"]
    parts = _parts(ctx, region, day)
    by_table, storage_usd = _bytes(cfg, parts)
    egress_bytes, egress_usd, _ = _egress(cfg, cfg.location_for_region(region), parts)
    lag = ctx.lag.get((region, day), ReplicaLag(None, None))
    out = decoded(row)
    tables_bytes = {**out["bytes_by_table"]}
    for label, n in by_table.items():
        tables_bytes[label] = tables_bytes.get(label, 0) + n
    compute = {**out["compute_by_asset"]}
    for name, seconds in ctx.observed.compute.get((region, day), {}).items():
        compute[name] = compute.get(name, 0.0) + seconds
    out.update(
        bytes_stored=int(out["bytes_stored"]) + sum(by_table.values()),
        bytes_by_table=json.dumps(dict(sorted(tables_bytes.items()))),
        storage_usd_month=float(out["storage_usd_month"]) + storage_usd,
        egress_bytes=int(out["egress_bytes"]) + egress_bytes,
        egress_usd=float(out["egress_usd"]) + egress_usd,
        compute_seconds=float(sum(compute.values())),
        compute_by_asset=json.dumps({k: round(v, 3) for k, v in sorted(compute.items())}),
        top_reasons=json.dumps(out["top_reasons"]),
        computed_at=ctx.now,
    )
    if lag.versions_behind is not None:
        out.update(replica_versions_behind=lag.versions_behind, replica_lag_hours=lag.hours)
    return out


@dataclass(frozen=True)
class Health:
    """The health rows of a range of days, and the measurements behind them."""

    rows: pa.Table
    stored: list[Stored]
    storage: dict[str, dict[str, Any]]
    start: dt.date
    end: dt.date

    def records_raw(self) -> list[dict[str, Any]]:
        """The rows as stored (JSON maps as text)."""
        return delta.python_rows(self.rows)

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts (JSON maps decoded)."""
        return [decoded(r) for r in delta.python_rows(self.rows)]


def decoded(row: Mapping[str, Any]) -> dict[str, Any]:
    """A health row with its JSON text columns as mappings."""
    out = dict(row)
    for k in ("top_reasons", "bytes_by_table", "compute_by_asset", "storage_at_rest", HISTORY):
        if isinstance(out.get(k), str):
            out[k] = json.loads(out[k])
    return out


def measure_region(
    cfg: LakeConfig,
    location: LakeLocation,
    start: dt.date,
    end: dt.date,
    options: Options,
    observed: Observed | None = None,
    now: dt.datetime | None = None,
) -> Health:
    """One location's rows of ``[start, end]``, from its own tables only (its jurisdiction's).

    Counts, bytes at rest, quarantine reasons, freshness and what ``observed`` says of its
    region-days; replica lag and egress are the ML home's to add (:func:`roll_up`).
    """
    observed = observed or Observed()
    now = now or dt.datetime.now(dt.UTC)
    stored = stored_tables(cfg, options, [location], home=False)
    ctx = _Context(cfg, stored, _reasons([location], options, start, end), observed, now, {})
    keys: set[Key] = set()
    for s in stored:
        if s.table in (tables.BRONZE.name, tables.QUARANTINE.name):
            keys |= {(r, d) for (r, d) in s.parts if r is not None and start <= d <= end}
    at_rest = json.dumps(storage_by_location(cfg, stored))
    rows = [
        {**_row(ctx, region, day), "storage_at_rest": at_rest}
        for region, day in sorted(keys, key=lambda k: (k[1], k[0]))
    ]
    return _health(cfg, rows, stored, start, end, REGION_HEALTH_SCHEMA)


def roll_up(
    cfg: LakeConfig,
    regional: Sequence[Mapping[str, Any]],
    start: dt.date,
    end: dt.date,
    options: Options,
    observed: Observed | None = None,
    now: dt.datetime | None = None,
) -> Health:
    """The regions' rows completed with what only the ML home knows, as one table.

    Reads PII-free data only: the regions' rows, the ML home's tables and replicas, and the
    replicated (PII-free) tables' logs at their sources for the replica lag.
    """
    observed = observed or Observed()
    now = now or dt.datetime.now(dt.UTC)
    stored = stored_tables(cfg, options, [], home=True)
    lag = _lags(cfg, [*stored, *_sources(cfg, options)], options, observed, now)
    ctx = _Context(cfg, stored, {}, observed, now, lag)
    rows = sorted(
        (_completed(ctx, r) for r in regional if start <= r["date"] <= end),
        key=lambda r: (r["date"], r["region"]),
    )
    home = storage_by_location(cfg, stored)
    for day in {r["date"] for r in rows}:
        on_day = [r for r in rows if r["date"] == day]
        at_rest = json.dumps(_at_rest(cfg, [home, *(r.get("storage_at_rest") for r in on_day)]))
        for r in on_day:
            r["storage_at_rest"] = at_rest
    return _health(cfg, rows, stored, start, end)


def _at_rest(
    cfg: LakeConfig, parts: Sequence[Mapping[str, Any] | None]
) -> dict[str, dict[str, Any]]:
    """Storage at rest per location, as :func:`storage_by_location` gives it, from its parts.

    ``parts``: what each measurement saw (a location's region tables, the ML home's tables and
    replicas); a table measured twice counts once.
    """
    by_table: dict[str, dict[str, int]] = {}
    for part in parts:
        for where, entry in (part or {}).items():
            by_table.setdefault(where, {}).update(entry["tables"])
    return _priced(cfg, by_table)


# What a kept row holds for later runs rather than for a reader of the day's figures.
KEPT_STATE = ("storage_at_rest", HISTORY)


def kept_storage(
    cfg: LakeConfig, rows: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]] | None:
    """Storage at rest per location as a day's kept rows (decoded) measured it.

    None when they do not hold every location's: rows kept before they did, or a location
    with no row that day.
    """
    kept = [r.get("storage_at_rest") for r in rows]
    if not kept or any(k is None for k in kept):
        return None
    merged = _at_rest(cfg, kept)
    return merged if set(cfg.locations) <= set(merged) else None


def _health(
    cfg: LakeConfig,
    rows: Sequence[Mapping[str, Any]],
    stored: list[Stored],
    start: dt.date,
    end: dt.date,
    schema: pa.Schema = HEALTH_SCHEMA,
) -> Health:
    table = pa.Table.from_pylist(list(rows), schema=schema)
    return Health(table, stored, storage_by_location(cfg, stored), start, end)


def measure(
    cfg: LakeConfig,
    start: dt.date,
    end: dt.date,
    options: Options,
    observed: Observed | None = None,
    now: dt.datetime | None = None,
) -> Health:
    """Health rows of every region and day in ``[start, end]`` that has landed data.

    Each location measured as its own pool measures it, then rolled up as the ML home does.
    """
    now = now or dt.datetime.now(dt.UTC)
    regional, stored = [], []
    for loc in cfg.locations.values():
        part = measure_region(cfg, loc, start, end, options, observed, now)
        regional += delta.python_rows(part.rows)
        stored += part.stored
    syncs = Observed(syncs=observed.syncs) if observed else None  # compute counted once
    rolled = roll_up(cfg, regional, start, end, options, syncs, now)
    return _health(cfg, rolled.records_raw(), [*stored, *rolled.stored], start, end)


def latest_complete_day(cfg: LakeConfig, options: Options) -> dt.date | None:
    """The newest landing date with data that a later one follows (None before any data).

    The newest landing date any region's bronze holds is still landing (today's hourly
    objects, yesterday's late events): judged against full days it would look like a collapse
    of events, so the day shown is the newest one before it that holds data, not the calendar
    day before it (empty after a pause in landing, or on a lake of one day). A lake with one
    landing date has nothing else to show: that date.
    """
    days: set[dt.date] = set()
    for loc in cfg.locations.values():
        adds = delta.file_actions(loc.table_uri(tables.BRONZE.name), options(loc))
        days |= {d for (_, d) in partitions(adds, tables.BRONZE.partition_by[0])}
    held = sorted(days)
    return held[-2] if len(held) > 1 else (held[0] if held else None)


# The narrow table (fits 100 columns); ``wide`` adds the columns after these.
COLUMNS = (
    ("region", "region"),
    ("landed", "landed"),
    ("ingested", "ingested"),
    ("quarantined", "quarantined"),
    ("duplicates", "dups"),
    ("bytes_stored", "stored"),
    ("storage_usd_month", "$/month"),
    ("replica", "replica"),
    ("egress", "egress"),
    ("compute_seconds", "compute"),
    ("freshness_hours", "age"),
)
WIDE_COLUMNS = (("top_reasons", "top quarantine reasons"), ("egress_bytes", "egress bytes"))


def size(n: int | float | None) -> str:
    """Bytes in B, KB, MB or GB (1024-based)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def usd(x: float | None) -> str:
    """Dollars as a person reads them: ``$0``, ``<$0.01``, ``$0.12``, ``$1,234``."""
    if x is None:
        return "-"
    if not x:
        return "$0"
    if x < 0.01:
        return "<$0.01"
    return f"${x:,.2f}" if x < 1000 else f"${x:,.0f}"


def hours(h: float | None) -> str:
    """A duration in hours as minutes, hours or days."""
    if h is None:
        return "-"
    if h < 1:
        return f"{h * 60:.0f} min"
    return f"{h:.1f} h" if h < 48 else f"{h / 24:.1f} d"


def lag(versions: int | None, lag_hours: float | None, wide: bool = False) -> str:
    """A day's replica lag: ``up to date`` or ``3 versions behind`` (wide: how long it took)."""
    if versions is None:
        return "-"
    text = "up to date" if versions == 0 else f"{versions} version{'s' * (versions != 1)} behind"
    if wide and lag_hours is not None:
        text += f", {'arrived after' if versions == 0 else 'for'} {hours(lag_hours)}"
    return text


def seconds(s: float) -> str:
    """Seconds: a decimal below ten, whole above, minutes above ten minutes."""
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s" if s < 600 else f"{s / 60:.0f} min"


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _cells(r: Mapping[str, Any], wide: bool = False) -> list[str]:
    cells = [
        str(r["region"]),
        _count(r["landed"]),
        _count(r["ingested"]),
        f"{r['quarantined']:,} ({r['quarantine_rate']:.2%})",
        _count(r["duplicates"]),
        size(r["bytes_stored"]),
        usd(r["storage_usd_month"]),
        lag(r["replica_versions_behind"], r["replica_lag_hours"], wide),
        usd(r["egress_usd"]) if r["egress_route"] else "-",
        seconds(r["compute_seconds"]),
        hours(r["freshness_hours"]),
    ]
    if wide:
        reasons = r["top_reasons"] or {}
        cells += [
            ", ".join(f"{k} {v}" for k, v in reasons.items()) or "-",
            size(r["egress_bytes"]) if r["egress_route"] else "-",
        ]
    return cells


def render(
    records: Sequence[Mapping[str, Any]], day: dt.date, markdown: bool = False, wide: bool = False
) -> str:
    """The regions' rows of one day as a table: Markdown for the UI, aligned text otherwise.

    Text is narrow (under 100 columns for a few regions) unless ``wide``; Markdown is wide.
    """
    wide = wide or markdown
    head = [h for _, h in COLUMNS] + ([h for _, h in WIDE_COLUMNS] if wide else [])
    body = [_cells(r, wide) for r in records if r["date"] == day]
    title = f"Health on {day}"
    if not body:
        return f"{title}: no region has landed data for that day"
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body]
        return f"**{title}**\n\n" + "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    # numbers right-aligned, words left
    align = ["<"] + [">"] * (len(head) - 1)
    if wide:
        align[-2] = "<"
    fmt = "  ".join(f"{{:{a}{w}}}" for a, w in zip(align, widths, strict=True))
    lines = [fmt.format(*row).rstrip() for row in (head, *body)]
    return "\n".join([title, *lines])


def write(
    cfg: LakeConfig,
    health: Health,
    options: dict[str, str],
    location: LakeLocation | None = None,
) -> int:
    """Replace the range's rows of a health table; the new version.

    The roll-up's in the ML home, or (``location``) that location's own region_health.
    """
    uri = (
        location.table_uri(tables.REGION_HEALTH.name)
        if location is not None
        else cfg.home.table_uri(tables.HEALTH.name)
    )
    return delta.write_range(
        uri,
        health.rows,
        health.start,
        health.end,
        options,
        partition_by=list(tables.HEALTH.partition_by),
    )


def read_region(
    location: LakeLocation, options: dict[str, str], start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """A location's region_health rows of ``[start, end]`` (PII-free; none when never written)."""
    uri = location.table_uri(tables.REGION_HEALTH.name)
    return delta.python_rows(delta.read_between(uri, options, "date", start, end))


def read(cfg: LakeConfig, options: dict[str, str], start: dt.date, end: dt.date) -> pa.Table:
    """The stored health rows of ``[start, end]`` (empty when never written): a bounded window."""
    return delta.read_between(cfg.home.table_uri(tables.HEALTH.name), options, "date", start, end)


def kept_days(cfg: LakeConfig, options: dict[str, str]) -> list[dt.date]:
    """The days the health table holds rows for, sorted (read from its log, no data file)."""
    adds = delta.file_actions(cfg.home.table_uri(tables.HEALTH.name), options)
    if adds is None or not adds.num_rows or "partition.date" not in adds.column_names:
        return []
    return sorted({d for d in adds.column("partition.date").to_pylist() if d is not None})


# Days of kept rows read when the history they carry cannot be used (a table written before
# rows carried it, or a gap a week back): the 62 days before the first day judged (the
# baseline's eight weeks and more), as every run read before rows carried their history (#28).
WINDOW_DAYS = 63


@dataclass(frozen=True)
class Kept:
    """Kept rows read as a baseline: which days, and whether their carried history sufficed."""

    rows: list[dict[str, Any]]
    start: dt.date
    end: dt.date
    carried: bool

    def describe(self) -> str:
        """What was read, for run metadata and logs."""
        days = len({r["date"] for r in self.rows})
        how = (
            "the history the rows carry"
            if self.carried
            else f"the {WINDOW_DAYS}-day window (no row a week back carried it: rows kept "
            "before they did, a gap, or the lake's first week)"
        )
        return f"{days} kept days of {self.start}..{self.end}, by {how}"


def _read_kept(cfg: LakeConfig, options: dict[str, str], start: dt.date, end: dt.date) -> Kept:
    rows = [decoded(r) for r in delta.python_rows(read(cfg, options, start, end))]
    return Kept(rows, start, end, carried=False)


def _carry(kept: Kept, needed: set[Key]) -> Kept | None:
    """``kept`` marked as sufficient when every row in ``needed`` is there with its history."""
    have = {(str(r["region"]), r["date"]) for r in kept.rows if r.get(HISTORY)}
    return Kept(kept.rows, kept.start, kept.end, carried=True) if needed <= have else None


def baseline(
    cfg: LakeConfig, options: dict[str, str], days: Sequence[dt.date], regions: Sequence[str]
) -> Kept:
    """The kept rows ``days`` (consecutive) of ``regions`` are judged against: a week at most.

    Each day's baseline is the newest kept row of its weekday before the first day (its value
    and the history it carries); the range's own earlier days are the new rows. Falls back to
    the :data:`WINDOW_DAYS` before the first day when one of those rows is missing or carries
    no history: bounded either way, whatever the history.
    """
    first, last = min(days), max(days)
    start, end = first - WEEK, min(last - WEEK, first - dt.timedelta(days=1))
    anchors = {first - WEEK + dt.timedelta(days=(d - first).days % 7) for d in days}
    kept = _read_kept(cfg, options, start, end)
    return _carry(kept, {(r, d) for r in regions for d in anchors}) or _read_kept(
        cfg, options, first - dt.timedelta(days=WINDOW_DAYS - 1), first - dt.timedelta(days=1)
    )


def judged_rows(cfg: LakeConfig, options: dict[str, str], start: dt.date, end: dt.date) -> Kept:
    """The kept rows of ``[start, end]`` to judge those days again (``lakehouse status``).

    The days' own rows when each carries its history; else the :data:`WINDOW_DAYS` ending on
    ``end``, which hold the baseline of the first day too.
    """
    kept = _read_kept(cfg, options, start, end)
    return _carry(kept, {(str(r["region"]), r["date"]) for r in kept.rows}) or _read_kept(
        cfg, options, end - dt.timedelta(days=WINDOW_DAYS - 1), end
    )


@dataclass(frozen=True)
class Judged:
    """A measurement's days judged: its rows with their history, the anomalies, what was read."""

    health: Health
    anomalies: list[anomaly.Anomaly]
    kept: Kept

    def records(self) -> list[dict[str, Any]]:
        """The baseline's rows and the new ones (decoded), as a health view shows them."""
        return [*self.kept.rows, *self.health.records()]


def judge(
    cfg: LakeConfig, options: dict[str, str], measured: Health, days: Sequence[dt.date]
) -> Judged:
    """Judge ``days`` of ``measured`` against the kept rows before them (:func:`baseline`).

    The rows come back carrying their history (what they were judged against), so that a
    later run judges from them alone. ``options``: the ML home's.
    """
    new = measured.records()
    kept = baseline(cfg, options, days, sorted({str(r["region"]) for r in new}))
    records = [*kept.rows, *new]
    carried = anomaly.histories(records, [(str(r["region"]), r["date"]) for r in new])
    rows = [
        {**r, HISTORY: json.dumps(carried[(str(r["region"]), r["date"])])}
        for r in measured.records_raw()
    ]
    table = pa.Table.from_pylist(rows, schema=HEALTH_SCHEMA)
    return Judged(
        Health(table, measured.stored, measured.storage, measured.start, measured.end),
        anomaly.detect(records, days),
        kept,
    )
