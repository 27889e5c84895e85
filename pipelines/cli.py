"""The ``lakehouse`` command: every subcommand prints one JSON report, errors exit non-zero.

Engine subcommands (``info``, ``simulate``, ``ingest``, ``sync``) run without Dagster.
``demo`` and ``backfill`` drive the Dagster code location and import it only when called.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from pipelines.config import ConfigError, load_config

Handler = Callable[[argparse.Namespace], dict[str, Any]]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_drift(text: str) -> Any:
    """``REGION:YYYY-MM-DD:price=1.2,demand=0.9,mix=electronics*2`` as a Drift."""
    from pipelines.simulate import CATEGORIES, Drift

    try:
        region, start, spec = text.split(":", 2)
        kwargs: dict[str, Any] = {"region": region, "start": dt.date.fromisoformat(start)}
        mix: dict[str, float] = {}
        for part in filter(None, spec.split(",")):
            key, value = part.split("=", 1)
            if key == "price":
                kwargs["price_shift"] = float(value)
            elif key == "demand":
                kwargs["demand_shift"] = float(value)
            elif key == "mix":
                cat, weight = value.split("*")
                if cat not in CATEGORIES:
                    raise ValueError(f"unknown category {cat!r}; known: {', '.join(CATEGORIES)}")
                mix[cat] = float(weight)
            else:
                raise ValueError(f"unknown drift knob {key!r} (price, demand, mix)")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--drift {text!r}: {exc}") from None
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
    from pipelines import simulate
    from pipelines.storage import open_storage

    cfg = load_config(args.env)
    locations = [cfg.location(args.location)] if args.location else list(cfg.locations.values())
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
        {r: v.get("currency", "USD") for r, v in cfg.regions.items()},
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


def cmd_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest landing dates of one location into its bronze tables."""
    from pipelines.ingest import ingest_partition

    cfg = load_config(args.env)
    location = cfg.location(args.location)
    last = args.to or args.date
    if last < args.date:
        raise ValueError(f"--to {last} is before --date {args.date}")
    out = []
    day = args.date
    while day <= last:
        out.append(ingest_partition(location, location.storage_options(), day).report())
        day += dt.timedelta(days=1)
    return {
        "location": location.name,
        "partitions": out,
        "reconciled": all(p["reconciled"] for p in out),
    }


def cmd_sync(args: argparse.Namespace) -> dict[str, Any]:
    """Replicate a Delta table from one URI to another under the sovereignty policy."""
    from pipelines.sync import sync

    cfg = load_config(args.env)
    report = sync(
        cfg,
        args.source,
        args.target,
        table=args.table,
        allow_unchecked=args.unchecked_route,
        dry_run=args.dry_run,
        reseed=args.reseed,
        replace_unrelated=args.replace_unrelated_target,
        concurrency=args.concurrency,
    )
    return report.as_dict()


def cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate a few weeks and materialize the whole graph through Dagster."""
    from jobs.demo import run_demo

    return run_demo(start=args.start, end=args.end, events_per_day=args.events_per_day)


def cmd_backfill(args: argparse.Namespace) -> dict[str, Any]:
    """Create an asset backfill the Dagster daemon runs; optionally wait for its outcome."""
    import dagster as dg

    from jobs import backfill
    from pipelines.definitions import build_definitions

    if args.end < args.start:
        raise ValueError(f"--to {args.end} is before --from {args.start}")
    regions = [r.strip() for r in args.regions.split(",")] if args.regions else None
    defs = build_definitions(args.env)
    with dg.DagsterInstance.get() as instance:
        backfill_id = backfill.launch(
            instance, defs, args.assets, args.start, args.end, regions, args.title
        )
        if not args.wait:
            return {**backfill.report(instance, defs, backfill_id), "waited": False}
        out = backfill.wait(instance, defs, backfill_id, timeout=args.timeout, poll=args.poll)
    if out["status"] != "COMPLETED_SUCCESS":
        raise RuntimeError(f"backfill {backfill_id} ended {out['status']}: {json.dumps(out)}")
    return {**out, "waited": True}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    parser.add_argument("--env", default=None, help="environment (default: LAKEHOUSE_ENV or local)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="show the lake locations of the environment")
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("simulate", help="land simulated capture objects")
    p.add_argument("--from", dest="start", type=_date, required=True)
    p.add_argument("--to", dest="end", type=_date, required=True)
    p.add_argument("--location", help="one location (default: all)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--events-per-day", type=int, default=2000, help="per region")
    p.add_argument("--bad-rate", type=float, default=0.0, help="share of bad records")
    p.add_argument(
        "--corrupt-per-day", type=int, default=0, help="corrupt objects per day and region"
    )
    p.add_argument(
        "--drift",
        type=parse_drift,
        action="append",
        help="REGION:DATE:price=1.2,demand=0.9,mix=CAT*2",
    )
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("ingest", help="ingest landing dates into bronze Delta")
    p.add_argument("--location", required=True)
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--to", type=_date, help="last date of a range (default: --date)")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("sync", help="replicate a Delta table between locations (Delta-log aware)")
    p.add_argument("--from", dest="source", required=True, help="source table URI or folder")
    p.add_argument("--to", dest="target", required=True, help="replica URI or folder")
    p.add_argument(
        "--dry-run", action="store_true", help="report what would be copied, copy nothing"
    )
    p.add_argument(
        "--reseed",
        action="store_true",
        help="replace a diverged replica's log from the source (same table id only)",
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
    p.add_argument("--concurrency", type=int, default=16, help="files copied at once")
    p.set_defaults(handler=cmd_sync)

    p = sub.add_parser(
        "backfill",
        help="asset backfill over a date range, run by the Dagster daemon ($DAGSTER_HOME)",
    )
    p.add_argument(
        "--assets", required=True, help="Dagster asset selection, e.g. 'group:bronze' or 'key:a+'"
    )
    p.add_argument("--from", dest="start", type=_date, required=True)
    p.add_argument("--to", dest="end", type=_date, required=True)
    p.add_argument("--regions", help="comma-separated regions (default: all)")
    p.add_argument("--title", help="title shown under the UI's backfills")
    p.add_argument("--wait", action="store_true", help="wait for the outcome and report it")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait (with --wait)")
    p.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_backfill)

    p = sub.add_parser("demo", help="simulate and materialize the whole graph (make run)")
    p.add_argument("--from", dest="start", type=_date, default=dt.date(2026, 9, 1))
    p.add_argument("--to", dest="end", type=_date, default=dt.date(2026, 10, 28))
    p.add_argument("--events-per-day", type=int, default=3000)
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; print its JSON report, or a clear error and exit 1."""
    args = build_parser().parse_args(argv)
    try:
        report = args.handler(args)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError, TimeoutError) as exc:
        sys.stderr.write(f"lakehouse {args.command}: error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
