"""The ``lakehouse`` command: every subcommand prints one JSON report, errors exit non-zero.

``demo`` prints its summary as tables (``--json``: as JSON) and writes it to
``.lake/demo-summary.json``. Long commands (``demo``, ``ingest``, ``sync``, ``backfill
--wait``) show their progress on stderr: a bar on a terminal, plain lines otherwise.

Engine subcommands (``info``, ``policy``, ``simulate``, ``ingest``, ``sync``,
``maintain``, ``scan``) run without Dagster; ``demo`` and ``backfill`` build the Dagster code
location for ``--env`` when called.

A subcommand that processes a location's personal data declares what it touches
(:class:`Touches`); :func:`require_compute` checks it against the worker's
``LAKEHOUSE_COMPUTE_JURISDICTION`` before the subcommand runs, so a refused one reads nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.instance import project_instance
from lakehouse.progress import Progress
from pipelines.lake.config import ConfigError, LakeConfig, LakeLocation, load_config

if TYPE_CHECKING:
    from pipelines.replication.deltalog import Hook
    from pipelines.replication.options import SyncOptions

MAX_DAYS = 3660  # ten years: a range longer than that is a typo, not a backfill


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _number(kind: type, low: float | None = None, high: float | None = None) -> Any:
    """An argparse type: a finite ``kind`` within ``[low, high]``, else what it must be.

    argparse puts the option before the message (``argument --seed: '-1' is not a
    non-negative integer``), so every bound an option has belongs here: a value an engine
    refuses later is reported without the option's name.
    """
    noun = "an integer" if kind is int else "a number"
    if low is not None and high is not None:
        wanted = f"{noun} in [{low}, {high}]"
    elif low == 0:
        wanted = f"a non-negative {noun.split()[-1]}"
    elif low == 1 and kind is int:
        wanted = "a positive integer"
    elif low is not None:
        wanted = f"{noun} >= {low}"
    elif high is not None:
        wanted = f"{noun} <= {high}"
    else:
        wanted = noun if kind is int else "a finite number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        finite = value == value and value not in (float("inf"), float("-inf"))
        if not finite or (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def days_between(first: dt.date, last: dt.date, what: str) -> list[dt.date]:
    """Every day of ``first..last``; a one-line error when reversed, too long or off-calendar."""
    if last < first:
        raise ValueError(f"{what}: the last day {last} is before the first {first}")
    count = (last - first).days + 1
    if count > MAX_DAYS:
        raise ValueError(f"{what}: {count} days is more than {MAX_DAYS}; split the range")
    return [first + dt.timedelta(days=i) for i in range(count)]


@dataclass(frozen=True)
class Touches:
    """What a subcommand processes: locations, and the registry tables it reads and writes there.

    Built from the parsed arguments and the configuration alone (no store is opened), so the
    check can run before the subcommand reads a byte.
    """

    cfg: LakeConfig
    locations: tuple[LakeLocation, ...]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


def require_compute(args: argparse.Namespace) -> list[Any]:
    """Refuse the subcommand unless this worker may process what it touches; its grants.

    The check of every Dagster step (:func:`pipelines.sovereignty.compute.check_locations`): a
    personal-data table needs a worker allowed to process its location's jurisdiction, a PII-free
    one a worker ``policy.allowed_routes`` lets its data go to. Raises ``ComputeSovereigntyError``
    naming the location, the worker's jurisdiction and the rule. A subcommand without ``touches``
    (see ``tests/test_cli_sovereignty.py`` for why each is exempt) is not checked.
    """
    from pipelines.sovereignty import compute

    touches: Callable[[argparse.Namespace], Touches] | None = getattr(args, "touches", None)
    if touches is None:
        return []
    what = touches(args)
    try:
        return compute.check_locations(
            what.cfg, f"lakehouse {args.command}", what.locations, what.reads, what.writes
        )
    except compute.ComputeSovereigntyError as exc:
        # the engine's message speaks of steps and run tags; a command is run elsewhere
        raise compute.ComputeSovereigntyError(
            f"refused on this worker: location {exc.location} holds {exc.data} of jurisdiction "
            f"{exc.data_jurisdiction}, and the worker declares jurisdiction {exc.worker}; "
            f"rule: {exc.rule}; run it on a worker of {exc.data_jurisdiction}"
        ) from exc


def _factor(text: str, what: str) -> float:
    value = float(text)
    if not 0 < value < 1000:  # also false for NaN
        raise ValueError(f"{what} factor {text!r} must be a finite number above 0")
    return value


def parse_drift(text: str) -> Any:
    """``REGION:YYYY-MM-DD:price=1.2,demand=0.9,mix=electronics*2`` as a Drift."""
    from pipelines.simulation.simulate import CATEGORIES, Drift

    try:
        region, start, spec = text.split(":", 2)
        kwargs: dict[str, Any] = {"region": region, "start": dt.date.fromisoformat(start)}
        mix: dict[str, float] = {}
        for part in filter(None, spec.split(",")):
            key, value = part.split("=", 1)
            if key == "price":
                kwargs["price_shift"] = _factor(value, key)
            elif key == "demand":
                kwargs["demand_shift"] = _factor(value, key)
            elif key == "mix":
                cat, weight = value.split("*")
                if cat not in CATEGORIES:
                    raise ValueError(f"unknown category {cat!r}; known: {', '.join(CATEGORIES)}")
                mix[cat] = _factor(weight, f"mix {cat}")
            else:
                raise ValueError(f"unknown drift knob {key!r} (price, demand, mix)")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None  # after "--drift: "
    return Drift(category_mix=mix, **kwargs)


def cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    """Where each location lives in the environment."""
    cfg = load_config(args.env)
    return {
        "environment": cfg.environment,
        "ml_home": cfg.ml_home,
        "locations": [
            {
                "name": loc.name,
                "cloud": loc.cloud,
                "region": loc.region,
                "jurisdiction": loc.jurisdiction,
                "root": loc.root,
                "landing_format": loc.landing.format,
            }
            for loc in cfg.locations.values()
        ],
    }


def cmd_simulate(args: argparse.Namespace) -> dict[str, Any]:
    """Land simulated events in every (or one) location."""
    from pipelines.lake.storage import open_storage
    from pipelines.simulation import simulate

    cfg = load_config(args.env)
    locations = [cfg.location(args.location)] if args.location else list(cfg.locations.values())
    days_between(args.start, args.end, "simulate --from/--to")
    for drift in args.drift or ():
        if drift.region not in cfg.region_codes:
            raise ValueError(
                f"--drift {drift.region}:…: unknown region {drift.region!r}; "
                f"known: {', '.join(cfg.region_codes)}"
            )
    sim = simulate.SimulationConfig(
        start=args.start,
        end=args.end,
        seed=args.seed,
        events_per_day=args.events_per_day,
        drift=tuple(args.drift or ()),
        bad_rate=args.bad_rate,
        corrupt_objects_per_day=args.corrupt_per_day,
    )
    t0 = time.perf_counter()
    reports = simulate.simulate(
        sim,
        locations,
        [open_storage(loc.root_uri(), loc.storage_options()) for loc in locations],
        {r: cfg.currency_of(r) for r in cfg.region_codes},
    )
    by_region: dict[str, dict[str, Any]] = {}
    for r in reports:
        agg = by_region.setdefault(
            r.region, {"objects": 0, "records": 0, "events": 0, "bad": {}, "corrupt_objects": 0}
        )
        agg["objects"] += r.objects
        agg["records"] += r.records
        agg["events"] += r.events
        agg["corrupt_objects"] += len(r.corrupt_objects)
        for k, v in r.bad.items():
            agg["bad"][k] = agg["bad"].get(k, 0) + v
    return {
        "days": len(sim.days()),
        "seconds": round(time.perf_counter() - t0, 3),
        "regions": by_region,
    }


def _ingest_touches(args: argparse.Namespace) -> Touches:
    from pipelines.lake import tables

    cfg = load_config(args.env)
    written = (tables.BRONZE.name, tables.QUARANTINE.name, tables.LEDGER.name)
    return Touches(cfg, (cfg.location(args.location),), writes=written)


def cmd_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest landing dates of one location into its bronze tables.

    The worker running the command must be allowed to process the location's personal data
    (``LAKEHOUSE_COMPUTE_JURISDICTION``): :func:`require_compute` checked it (``args.grants``)
    before the landing area is read.
    """
    from pipelines.ingest import engine as ingest
    from pipelines.ingest.engine import ingest_partition
    from pipelines.ingest.events import record_rules
    from pipelines.sovereignty import compute

    cfg = load_config(args.env)
    location = cfg.location(args.location)
    if not args.follow and args.date is None:
        raise ValueError("lakehouse ingest needs --date (or --follow, to run as a worker)")
    days = [] if args.follow else days_between(args.date, args.to or args.date, "ingest --date")
    worker = compute.worker_jurisdictions(cfg)
    if worker.notice:
        sys.stderr.write(f"lakehouse ingest: {worker.notice}\n")
    (grant,) = args.grants
    if args.follow:  # the long-lived worker: refused by the guard, before a byte was read
        from lakehouse.worker import cmd_follow

        return cmd_follow(args, cfg, location, grant)
    rules = record_rules(cfg)
    out = []
    with Progress("ingest") as progress, progress.stage(location.name, total=len(days)) as stage:
        for day in days:
            report = ingest_partition(
                location,
                location.storage_options(),
                day,
                rules,
                full=args.full,
                batch_objects=args.batch_objects or ingest.BATCH_OBJECTS,
                batch_bytes=args.batch_bytes or ingest.BATCH_BYTES,
                keep_rows=False,
            ).report()
            out.append(report)
            stage.advance(events=int(report["landed"]))
    return {
        "location": location.name,
        "partitions": out,
        "reconciled": all(p["partition"]["reconciled"] for p in out),
        "compute": grant.metadata(),
    }


def cmd_policy(args: argparse.Namespace) -> dict[str, Any]:
    """The effective sovereignty rules: storage (the sync) and compute (this worker)."""
    from pipelines.sovereignty.compute import compute_rules
    from pipelines.sovereignty.policy import storage_rules

    cfg = load_config(args.env)
    return {"storage": storage_rules(cfg), "compute": compute_rules(cfg)}


def _sync_options(args: argparse.Namespace, hook: Hook | None = None) -> SyncOptions:
    """The command's flags as the one object the sync engine takes."""
    from pipelines.replication.options import SyncOptions

    return SyncOptions(
        table=args.table,
        allow_unchecked=args.unchecked_route,
        dry_run=args.dry_run,
        reseed=args.reseed,
        replace_unrelated=args.replace_unrelated_target,
        concurrency=args.concurrency,
        hook=hook,
    )


def _sync_touches(args: argparse.Namespace) -> Touches:
    """The source's location and the table's names: what the replica asset checks."""
    from pipelines.replication.sync import check_table_uris, table_names
    from pipelines.sovereignty.policy import resolve_route

    cfg = load_config(args.env)
    options = _sync_options(args)
    source, _ = check_table_uris(args.source, args.target, ("--from", "--to"))
    route = resolve_route(cfg, args.source, args.target, allow_unchecked=options.allow_unchecked)
    names = table_names(options.table, args.source, source)
    at = (route.source,) if route.source else ()  # an unconfigured source has no jurisdiction
    return Touches(cfg, at, reads=names, writes=names)


def cmd_sync(args: argparse.Namespace) -> dict[str, Any]:
    """Replicate a Delta table from one URI to another under the sovereignty policy."""
    from pipelines.replication.deltalog import Remedy, SourceBehindError, SyncError
    from pipelines.replication.sync import sync

    cfg = load_config(args.env)
    try:
        with Progress("sync") as progress, progress.stage("copy", unit="objects") as stage:
            options = _sync_options(args, hook=lambda kind, path: stage.advance())
            report = sync(cfg, args.source, args.target, options)
    except SourceBehindError as exc:
        # The engine's message names both URIs twice and runs past a terminal's width and
        # MAX_MESSAGE, cutting off the way out; this line names the table, route and the flag.
        where = f"table {exc.table!r}, route {exc.route}: the source no longer holds {exc.gone}"
        if exc.remedy is not Remedy.RESEED:
            raise RuntimeError(f"{where}; nothing was committed") from exc
        raise RuntimeError(
            f"{where}, which the replica at version {exc.held_version} needs; nothing was "
            f"committed; rerun with {SYNC_FLAGS[exc.remedy]}"
        ) from exc
    except SyncError as exc:  # the engine says what would help; the flag is the CLI's to name
        if exc.remedy is None:
            raise
        raise RuntimeError(f"{one_line(exc)}; {SYNC_REMEDIES[exc.remedy]}") from exc
    return report.as_dict()


# The flag that asks for each remedy a sync error can carry (pipelines.replication.deltalog).
SYNC_FLAGS = {"reseed": "--reseed", "replace_unrelated": "--replace-unrelated-target"}
# How the CLI says each remedy.
SYNC_REMEDIES = {
    "reseed": f"rerun with {SYNC_FLAGS['reseed']} to replace the replica's log",
    "replace_unrelated": f"{SYNC_FLAGS['replace_unrelated']} replaces it (its log is destroyed)",
}


def _maintain_touches(args: argparse.Namespace) -> Touches:
    """The target's location and table, as the maintenance job checks them."""
    from pipelines.operations.maintenance import find_target

    cfg = load_config(args.env)
    target = find_target(cfg, args.table, args.location)
    return Touches(cfg, (target.location,), writes=(target.table,))


def cmd_maintain(args: argparse.Namespace) -> dict[str, Any]:
    """Upkeep of one table at one location (docs/maintenance.md); the floor in the report."""
    from pipelines.operations import maintenance

    cfg = load_config(args.env)
    tracking = maintenance.default_tracking(cfg)
    report = maintenance.maintain(
        cfg,
        args.table,
        args.location,
        model_pins_of=maintenance.registry_pins(tracking, cfg.maintenance),
        dry_run=args.dry_run,
    )
    return report.as_dict()


def _scan_target(cfg: LakeConfig, table: str, location: str) -> tuple[str, str, LakeLocation]:
    """``(name, uri, location)`` of a registered table, a replica, or any table at a location."""
    from pipelines.operations.maintenance import MaintenanceError, find_target

    try:
        target = find_target(cfg, table, location)
    except MaintenanceError:
        loc = cfg.location(location)
        return table, loc.table_uri(table), loc
    return target.table, target.uri, target.location


def _scan_touches(args: argparse.Namespace) -> Touches:
    """The location, as if every table there held personal data.

    A scan looks at values to find out whether they are personal data, so it runs only where
    that location's personal data may be processed, whatever the registry says of the table.
    """
    from pipelines.lake.tables import TABLES

    cfg = load_config(args.env)
    name, _, loc = _scan_target(cfg, args.table, args.location)
    personal = tuple(t.name for t in TABLES.values() if t.personal_data)
    return Touches(cfg, (loc,), reads=(name, *personal))


def cmd_scan(args: argparse.Namespace) -> dict[str, Any]:
    """Personal data by content in a bounded sample of a table's files (docs/privacy.md)."""
    from pipelines.privacy.detect import detectors_for
    from pipelines.privacy.sample import ContentScan, scan_delta

    cfg = load_config(args.env)
    name, uri, loc = _scan_target(cfg, args.table, args.location)
    scan = ContentScan(
        detectors_for(cfg.privacy.pattern_pairs()), args.max_files, args.rows_per_file
    )
    version, sample = scan_delta(uri, loc.storage_options(), scan, args.version)
    report = sample.as_dict()
    seconds = max(sample.seconds, 1e-9)
    return {
        "table": name,
        "location": loc.name,
        "jurisdiction": loc.jurisdiction,
        "uri": uri,
        "version": version,
        "personal_by_content": bool(sample.report.findings),
        **report,
        "mb_per_s": round(sample.bytes_read / 1e6 / seconds, 2),
    }


def _add_scan(sub: Any) -> None:
    p = sub.add_parser(
        "scan", help="find personal data by content in a table at a location (JSON, no values)"
    )
    p.add_argument("--table", required=True, help="registered table, replica name, or any table")
    p.add_argument("--location", required=True, help="the location the table lives in")
    p.add_argument("--version", type=_number(int, 0), help="time travel: scan this version")
    p.add_argument(
        "--max-files", type=_number(int, 1), default=64, help="data files sampled, at most"
    )
    p.add_argument(
        "--rows-per-file", type=_number(int, 1), default=10_000, help="rows read of each file"
    )
    p.set_defaults(handler=cmd_scan, touches=_scan_touches)


def _add_maintain(sub: Any) -> None:
    p = sub.add_parser(
        "maintain",
        help="compact, VACUUM, checkpoint and clean the log of a table at a location (JSON)",
    )
    p.add_argument("--table", required=True, help="registered table, or a replica's name")
    p.add_argument("--location", required=True, help="the location the table lives in")
    p.add_argument("--dry-run", action="store_true", help="report what would be done only")
    p.set_defaults(handler=cmd_maintain, touches=_maintain_touches)


def _whole_graph(cfg: LakeConfig) -> Touches:
    """Every location's personal-data tables: what the demo's graph reads and writes."""
    from pipelines.lake.tables import TABLES

    personal = tuple(t.name for t in TABLES.values() if t.personal_data)
    return Touches(cfg, tuple(cfg.locations.values()), reads=personal, writes=personal)


def cmd_demo(args: argparse.Namespace) -> dict[str, Any] | None:
    """Simulate a few weeks and materialize the whole graph through Dagster.

    Progress on stderr as it goes; at the end the summary as tables (or, with ``--json``, as
    JSON) on stdout, and always as JSON in ``.lake/demo-summary.json``.
    """
    from lakehouse.demo import check_demo_days, run_demo
    from lakehouse.demo_summary import print_summary
    from lakehouse.progress import Progress
    from pipelines.lake.config import load_config

    days_between(args.start, args.end, "demo --from/--to")
    check_demo_days(load_config(args.env), args.start, args.end)
    with Progress("demo") as progress:
        summary = run_demo(
            args.start, args.end, args.events_per_day, environment=args.env, progress=progress
        )
    if args.json:
        return summary
    print_summary(summary, sys.stdout)
    return None


def cmd_run_emulated(args: argparse.Namespace) -> dict[str, Any] | None:
    """The demo on moto, Azurite and fake-gcs-server started (and stopped) on 127.0.0.1.

    Progress and summary as ``demo`` prints them, plus what the emulators hold.
    """
    import shutil
    from pathlib import Path

    from lakehouse.demo import check_demo_days
    from lakehouse.demo_summary import print_summary
    from lakehouse.progress import Progress
    from lakehouse.run_emulated import ENVIRONMENT, run_emulated
    from pipelines.lake.config import lake_home, load_config

    days_between(args.start, args.end, "run-emulated --from/--to")
    check_demo_days(load_config(ENVIRONMENT), args.start, args.end, "run-emulated")
    workdir = Path(args.workdir) if args.workdir else lake_home() / ".emulated"
    # the emulators keep nothing between runs, so neither may the instance nor MLflow
    shutil.rmtree(workdir, ignore_errors=True)
    with Progress("run-emulated") as progress:
        summary = run_emulated(args.start, args.end, args.events_per_day, workdir, progress)
    if args.json:
        return summary
    print_summary(summary, sys.stdout)
    return None


def _run_emulated_touches(args: argparse.Namespace) -> Touches:
    from lakehouse.run_emulated import ENVIRONMENT

    return _whole_graph(load_config(ENVIRONMENT))


def cmd_backfill(args: argparse.Namespace) -> dict[str, Any]:
    """Create an asset backfill the Dagster daemon runs; optionally wait for its outcome."""
    from lakehouse import backfill
    from lakehouse.definitions import build_definitions

    days_between(args.start, args.end, "backfill --from/--to")
    where = project_instance()
    regions = [r.strip() for r in args.regions.split(",")] if args.regions else None
    defs = build_definitions(args.env)
    with where.open() as instance:
        backfill_id = backfill.launch(
            instance, defs, args.assets, args.start, args.end, regions, args.title, job=args.job
        )
        sys.stderr.write(f"backfill {backfill_id} stored in the {where.line()}\n")
        used = {"dagster_instance": where.describe()}
        if not args.wait:
            return {**backfill.report(instance, defs, backfill_id), **used, "waited": False}
        with Progress("backfill") as progress, progress.stage(backfill_id) as stage:

            def polled(report: dict[str, Any]) -> None:
                partitions = report["partitions"]
                stage.total = partitions["requested"]
                stage.note(f"{report['runs']['total']} runs, {report['status'].lower()}")
                stage.set(partitions["materialized"])

            out = backfill.wait(
                instance,
                defs,
                backfill_id,
                timeout=args.timeout,
                poll=args.poll,
                on_report=polled,
            )
    if out["status"] != "COMPLETED_SUCCESS":
        raise RuntimeError(f"backfill {backfill_id} ended {out['status']}: {json.dumps(out)}")
    return {**out, **used, "waited": True}


def _health_now(env: str | None) -> tuple[Any, Any, dt.date | None]:
    """The health view measured now (the engine the asset runs), with Dagster's records if any."""
    from pipelines.operations import health

    cfg = load_config(env)
    options = lambda loc: loc.storage_options()  # noqa: E731
    as_of = health.latest_complete_day(cfg, options)
    if as_of is None:
        return cfg, None, None
    start = as_of - dt.timedelta(days=62)
    observed = health.Observed()
    where = project_instance()
    if where.exists():
        from assets.health import observe
        from lakehouse.definitions import build_definitions

        keys = list(build_definitions(env).resolve_asset_graph().get_all_asset_keys())
        with where.open() as instance:
            observed = observe(instance, cfg, keys, start, as_of)
    return cfg, health.measure(cfg, start, as_of, options, observed), as_of


def _status_touches(args: argparse.Namespace) -> Touches:
    """Every region's location and the tables the health view reads there."""
    from pipelines.operations import health

    cfg = load_config(args.env)
    regions = tuple(cfg.location_for_region(r) for r in cfg.region_codes)
    return Touches(cfg, regions, reads=health.TABLES_READ)


def cmd_status(args: argparse.Namespace) -> dict[str, Any] | None:
    """Health and cost per region (newest day), storage per location, anomalies, advice."""
    from pipelines.operations import advice, anomaly, health

    cfg, measured, as_of = _health_now(args.env)
    if measured is None or as_of is None:
        raise ValueError("no region has ingested data yet: run `make run` or `lakehouse ingest`")
    where = project_instance()
    used = where.line() if where.exists() else f"no {where.line()}: run records not read"
    records = measured.records()
    week = [as_of - dt.timedelta(days=i) for i in range(6, -1, -1)]
    found = anomaly.detect(records, week)
    recs = advice.recommend(cfg, measured.stored, records) if args.recommend else []
    from lakehouse.worker import worker_status

    workers = worker_status(cfg)
    if args.json:
        return {
            "ingest_workers": workers,
            "as_of": as_of.isoformat(),
            "regions": [r for r in records if r["date"] == as_of],
            "storage_by_location": measured.storage,
            "anomalies_last_7_days": [a.as_dict() for a in found],
            **({"recommendations": [r.as_dict() for r in recs]} if args.recommend else {}),
            "dagster_instance": {**where.describe(), "read": where.exists()},
        }
    lines = [health.render(records, as_of), "", "Storage at rest per location"]
    lines += [
        f"  {loc}: {s['bytes'] / 1024**2:.1f} MB, ${s['usd_month']:.2g} a month"
        for loc, s in sorted(measured.storage.items())
    ]
    lines += ["", f"Ingest workers: {len(workers) or 'none'}"]
    lines += [
        f"  {w.get('location')} {w.get('worker', '?')}: {w.get('state')}, lag "
        f"{w.get('lag', {}).get('lag_seconds', '?')} s, backlog "
        f"{w.get('lag', {}).get('backlog_objects', '?')} objects / "
        f"{w.get('lag', {}).get('backlog_bytes', '?')} bytes, {w.get('commits', 0)} commits"
        + (f", last error: {w['last_error']}" if w.get("last_error") else "")
        for w in workers
    ]
    lines += ["", f"Anomalies {week[0]}..{as_of}: {len(found) or 'none'}"]
    lines += [f"  {a.describe()}" for a in found]
    if args.recommend:
        lines += ["", "Recommendations", advice.render(recs)]
    lines += ["", used]
    sys.stdout.write("\n".join(lines) + "\n")
    return None


def _add_status(sub: Any) -> None:
    p = sub.add_parser("status", help="health and cost per region, anomalies; --recommend")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--recommend", action="store_true", help="add optimisation recommendations")
    p.set_defaults(handler=cmd_status, touches=_status_touches)


def _add_simulate(sub: Any) -> None:
    p = sub.add_parser("simulate", help="land simulated capture objects")
    p.add_argument("--from", dest="start", type=_date, required=True)
    p.add_argument("--to", dest="end", type=_date, required=True)
    p.add_argument("--location", help="one location (default: all)")
    p.add_argument("--seed", type=_number(int, 0), default=7, help="non-negative (numpy's seeds)")
    p.add_argument("--events-per-day", type=_number(int, 0, 10_000_000), default=2000)
    p.add_argument(
        "--bad-rate", type=_number(float, 0.0, 1.0), default=0.0, help="share of bad records"
    )
    p.add_argument(
        "--corrupt-per-day",
        type=_number(int, 0, 1000),
        default=0,
        help="corrupt objects per day and region",
    )
    p.add_argument(
        "--drift", type=parse_drift, action="append", help="REGION:DATE:price=1.2,demand=0.9"
    )
    p.set_defaults(handler=cmd_simulate)


def _add_ingest_and_sync(sub: Any) -> None:
    p = sub.add_parser("ingest", help="ingest landing dates into bronze Delta")
    p.add_argument("--location", required=True)
    p.add_argument("--date", type=_date, help="landing date (required unless --follow)")
    p.add_argument("--to", type=_date, help="last date of a range (default: --date)")
    p.add_argument(
        "--full",
        action="store_true",
        help="re-ingest each partition whole (the ledger's batches again), replacing it",
    )
    p.add_argument("--batch-objects", type=_number(int, 1), help="objects per batch (default 256)")
    p.add_argument(
        "--batch-bytes", type=_number(int, 1), help="landed bytes per batch (default 32 MiB)"
    )
    from lakehouse.worker import add_follow_options

    add_follow_options(p, _number)
    p.set_defaults(handler=cmd_ingest, touches=_ingest_touches)

    p = sub.add_parser("sync", help="replicate a Delta table between locations (Delta-log aware)")
    p.add_argument("--from", dest="source", required=True, help="source table URI or folder")
    p.add_argument("--to", dest="target", required=True, help="replica URI or folder")
    p.add_argument("--dry-run", action="store_true", help="report what would be copied only")
    p.add_argument(
        "--reseed",
        action="store_true",
        help="restart a replica from the source (same table id only): a diverged one, or one "
        "the source was vacuumed or log-cleaned past",
    )
    p.add_argument(
        "--replace-unrelated-target",
        action="store_true",
        help="destroy the log of ANOTHER table found at the target and replicate over it",
    )
    p.add_argument("--table", help="table name in messages (default: last path segment)")
    p.add_argument(
        "--unchecked-route",
        action="store_true",
        help="allow a URI under no configured location; the sovereignty policy is NOT checked",
    )
    p.add_argument(
        "--concurrency", type=_number(int, 1, 256), default=16, help="files copied at once"
    )
    p.set_defaults(handler=cmd_sync, touches=_sync_touches)


def _add_dagster(sub: Any) -> None:
    p = sub.add_parser(
        "backfill", help="asset backfill over a date range, run by the Dagster daemon"
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--assets", help="asset selection, e.g. 'group:bronze'")
    what.add_argument("--job", help="a partitioned asset job's assets, e.g. features_job")
    p.add_argument("--from", dest="start", type=_date, required=True)
    p.add_argument("--to", dest="end", type=_date, required=True)
    p.add_argument("--regions", help="comma-separated regions (default: all)")
    p.add_argument("--title", help="title shown under the UI's backfills")
    p.add_argument("--wait", action="store_true", help="wait for the outcome and report it")
    p.add_argument(
        "--timeout", type=_number(float, 0.1), default=3600, help="seconds to wait (--wait)"
    )
    p.add_argument("--poll", type=_number(float, 0.05), default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_backfill)

    p = sub.add_parser("demo", help="simulate and materialize the whole graph (make run)")
    p.add_argument("--from", dest="start", type=_date, default=dt.date(2026, 9, 1))
    p.add_argument("--to", dest="end", type=_date, default=dt.date(2026, 10, 28))
    p.add_argument("--events-per-day", type=_number(int, 1, 1_000_000), default=3000)
    p.add_argument("--json", action="store_true", help="print the summary as JSON, not tables")
    p.set_defaults(handler=cmd_demo, touches=lambda args: _whole_graph(load_config(args.env)))

    p = sub.add_parser(
        "run-emulated", help="the demo on the three clouds' emulators (make run-emulated)"
    )
    p.add_argument("--from", dest="start", type=_date, default=dt.date(2026, 9, 1))
    p.add_argument("--to", dest="end", type=_date, default=dt.date(2026, 10, 28))
    p.add_argument("--events-per-day", type=_number(int, 1, 1_000_000), default=3000)
    p.add_argument(
        "--workdir", help="Dagster instance, MLflow store and server logs (default .emulated/)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON, not tables")
    p.set_defaults(handler=cmd_run_emulated, touches=_run_emulated_touches)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    parser.add_argument("--env", default=None, help="environment (default: LAKEHOUSE_ENV or local)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="show the lake locations of the environment").set_defaults(
        handler=cmd_info
    )
    sub.add_parser(
        "policy", help="the effective storage and compute sovereignty rules, as JSON"
    ).set_defaults(handler=cmd_policy)
    _add_simulate(sub)
    _add_ingest_and_sync(sub)
    _add_dagster(sub)
    _add_maintain(sub)
    _add_scan(sub)
    _add_status(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; print its JSON report, or a clear error and exit 1."""
    args = build_parser().parse_args(argv)
    try:
        args.grants = require_compute(args)  # before the subcommand reads a byte
        report = args.handler(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"lakehouse {args.command}: interrupted\n")
        return 130
    except Exception as exc:  # every failure becomes one line; LAKEHOUSE_DEBUG shows the rest
        if os.environ.get("LAKEHOUSE_DEBUG"):
            raise
        sys.stderr.write(f"lakehouse {args.command}: error: {one_line(exc)}\n")
        return 1
    if report is not None:  # None: the command printed its report itself
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    if isinstance(report, dict) and report.get("reconciled") is False:
        # counts that do not add up are a failure, never a success with a flag in the JSON
        sys.stderr.write(f"lakehouse {args.command}: error: {unreconciled(report)}\n")
        return 1
    return 0


def unreconciled(report: dict[str, Any]) -> str:
    """One line naming the partitions whose counts do not reconcile."""
    bad = [
        f"{p.get('landing_date')}|{p.get('region')}"
        for p in report.get("partitions", [])
        if isinstance(p, dict) and not p.get("partition", {}).get("reconciled", True)
    ]
    named = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    what = "counts do not reconcile (landed != ingested + quarantined + duplicates)"
    return f"{what} in {named or 'the report'}"


EXPECTED = (ConfigError, ValueError, FileNotFoundError, RuntimeError, TimeoutError)
MAX_MESSAGE = 400


def one_line(exc: BaseException) -> str:
    """The first line of an error's message, bounded; unexpected kinds are named.

    Object-store clients answer an unreachable endpoint with dozens of lines of retries and
    causes; the first line names the store and what failed.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not isinstance(exc, EXPECTED) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text + ("" if isinstance(exc, EXPECTED) else " (LAKEHOUSE_DEBUG=1 for the traceback)")


if __name__ == "__main__":
    sys.exit(main())
