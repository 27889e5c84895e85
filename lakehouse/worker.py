"""``lakehouse ingest --follow``: the long-lived ingest worker, reporting to Dagster without runs.

The loop is the engine's (:mod:`pipelines.ingest.stream`); this module adds what Dagster needs: the
bronze suites run in this process on each committed batch (Great Expectations imported once per
worker), and each committed partition is reported as Dagster sees a run's today: both
materializations with the asset's metadata and the three check evaluations, through Dagster's
public runless-event API. Two transports, one content:

- ``--dagster-url URL`` (or ``LAKEHOUSE_DAGSTER_URL``): the webserver's
  ``POST /report_asset_materialization/<key>`` and ``POST /report_asset_check/<key>`` endpoints
  (dagster-webserver 1.13's routes: the check's is not ``/report_asset_check_evaluation/``,
  the name its error messages use); what a worker outside the database's network uses;
- otherwise ``DagsterInstance.get()`` (``DAGSTER_HOME``) and its public
  ``report_runless_asset_event``: the same call the webserver's endpoints make.

A commit is reported after it is in the tables; the ledger batch it reported up to is then
recorded in the store, so a report lost to a kill is made by the next worker (at least once:
a kill between the report and that record repeats the report, with the same totals).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from typing import Any

from pipelines.lake.config.environment import env

URL_ENV = "LAKEHOUSE_DAGSTER_URL"
# A worker's batches are smaller than a run's (32 MiB): with 32 MiB batches under a backlog a
# worker peaked at 2.9 GB (benchmarks/stream.py), likely the bronze suites' pandas frame of each
# batch on top of the ingest's own peak; 8 MiB is a few seconds of a region's stream.
FOLLOW_BATCH_BYTES = 8 * 1024 * 1024
# A report that fails (webserver restarting) is tried again this many times before the commit
# counts as unreported; the next cycle then reports it (the ledger is the truth).
REPORT_ATTEMPTS = 4


def add_follow_options(p: argparse.ArgumentParser, number: Any) -> None:
    """The ``ingest`` options of the worker (``--follow`` and what tunes it).

    ``number`` is the CLI's bounded number type (a refused value names its option).
    """
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep running: ingest what lands as it lands and report it to Dagster (no runs)",
    )
    p.add_argument(
        "--poll-seconds",
        type=number(float, 0.01),
        default=1.0,
        metavar="SECONDS",
        help="with --follow: seconds between listings, >= 0.01 (default %(default)s)",
    )
    p.add_argument(
        "--linger-seconds",
        type=number(float, 0),
        default=4.0,
        metavar="SECONDS",
        help="ingest a date once its oldest waiting object is this old, or a batch is full, "
        ">= 0 (default %(default)s)",
    )
    p.add_argument(
        "--max-idle-seconds",
        type=number(float, 0),
        default=None,
        metavar="SECONDS",
        help="exit 0 after this long with nothing waiting, >= 0 (default: never)",
    )
    p.add_argument(
        "--days-back",
        type=number(int, 0, 3660),
        default=2,
        metavar="DAYS",
        help="with --follow: landing dates caught up at start, 0..3660 (default %(default)s); "
        "older dates' objects not ingested yet are found a few dates per listing",
    )
    p.add_argument(
        "--shard",
        type=shard,
        default=None,
        metavar="K/N",
        help="with --follow: worker K of N on this location (0 <= K < N): it takes the landing "
        "dates whose day number is K modulo N (default: every date)",
    )
    p.add_argument(
        "--dagster-url",
        default=None,
        metavar="URL",
        help=f"report through this webserver, e.g. http://127.0.0.1:3000 (default: {URL_ENV}, "
        "else DAGSTER_HOME's instance)",
    )


def shard(text: str) -> tuple[int, int]:
    """``K/N`` as ``(K, N)``; an argparse type (a refused value is named with its option)."""
    k, _, n = text.partition("/")
    if not (k.strip().isdigit() and n.strip().isdigit()) or not 0 <= int(k) < int(n):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not K/N with whole numbers 0 <= K < N (e.g. 0/2 and 1/2 for two workers)"
        )
    return int(k), int(n)


class Reporter:
    """Sends runless asset events: to a webserver over HTTP, or to the instance itself."""

    def __init__(self, url: str | None) -> None:
        self.url = url.rstrip("/") if url else None
        self._instance: Any = None

    def _instance_of(self) -> Any:
        if self._instance is None:
            import dagster as dg

            self._instance = dg.DagsterInstance.get()
        return self._instance

    def send(self, events: list[Any]) -> None:
        """Report each event (AssetMaterialization, AssetCheckEvaluation, AssetObservation)."""
        for event in events:
            for attempt in range(REPORT_ATTEMPTS):
                try:
                    self._send(event)
                    break
                except (OSError, urllib.error.URLError):
                    if attempt == REPORT_ATTEMPTS - 1:
                        raise
                    time.sleep(0.5 * 2**attempt)

    def _send(self, event: Any) -> None:
        if self.url is None:
            self._instance_of().report_runless_asset_event(event)
            return
        import dagster as dg

        if isinstance(event, dg.AssetCheckEvaluation):
            route = "report_asset_check"  # 1.13's route; its messages call it ..._evaluation
            body: dict[str, Any] = {
                "asset_key": event.asset_key.path,
                "check_name": event.check_name,
                "passed": event.passed,
                "severity": event.severity.value,
                "metadata": _plain(event.metadata),
                "partition": event.partition,
            }
        else:
            route = (
                "report_asset_materialization"
                if isinstance(event, dg.AssetMaterialization)
                else "report_asset_observation"
            )
            body = {
                "asset_key": event.asset_key.path,
                "metadata": _plain(event.metadata),
                "partition": event.partition,
                "description": event.description,
            }
        path = "/".join(urllib.parse.quote(p, safe="") for p in event.asset_key.path)
        request = urllib.request.Request(
            f"{self.url}/{route}/{path}",
            data=json.dumps(body, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            if resp.status != 200:
                raise OSError(f"{route}: HTTP {resp.status}: {resp.read()[:200]!r}")


def _plain(metadata: Any) -> dict[str, Any]:
    """Metadata as JSON the endpoints take (they build the metadata values again)."""
    out = {}
    for key, value in (metadata or {}).items():
        raw = getattr(value, "value", value)
        out[key] = raw.data if hasattr(raw, "data") else raw
    return out


def commit_events(
    committed: Any, suites: Any, where: dict[str, Any], worker: str, keys: Any = None
) -> list[Any]:
    """A worker's commit as Dagster events: what the asset's run yields, as runless events.

    ``keys``: the location's asset keys (assets/keys.py; default: the table names).
    """
    from assets.bronze import batch_checks
    from pipelines.ingest.batch import empty_result
    from pipelines.lake import tables

    events_suite, quarantine_suite = suites[tables.BRONZE.name], suites[tables.QUARANTINE.name]
    batches = committed.batches or [empty_result(committed.region, committed.landing_date)]
    started = time.perf_counter()
    validated = [batch_checks(b, events_suite, quarantine_suite) for b in batches]
    seconds = committed.seconds + time.perf_counter() - started
    extra = {
        **committed.lag.as_dict(),
        "reported_by": f"ingest worker {worker} (no run)",
        "recovered_report": committed.recovered,
    }
    return partition_events(
        committed.done, committed.location, where, validated, extra, keys, seconds
    )


def partition_events(
    done: Any,
    location: str,
    where: dict[str, Any],
    validated: list[Any],
    extra: dict[str, Any],
    keys: Any = None,
    seconds: float | None = None,
) -> list[Any]:
    """A partition's ingest as runless events: both materializations and the three checks.

    The same results the asset yields from its run (``partition_results``), with ``extra``
    (who reported, and ``batches_through``) added to the materializations' metadata, under
    the location's asset keys (``keys``, assets/keys.py; default: the table names).
    ``seconds``: the reporter's time on this commit (ingest and checks), on the bronze
    materialization as ``compute_seconds``: a runless event has no run steps to time, and the
    health view counts it there (once: not on the quarantine's).
    """
    import dagster as dg

    from assets.bronze import COMPUTE_SECONDS, partition_results
    from assets.keys import UNPREFIXED, rekeyed, table_of
    from assets.partitions import date_region_key
    from pipelines.lake import tables

    day, region = done.result.landing_date, done.result.region
    partition = str(date_region_key(day.isoformat(), region))
    extra = {"batches_through": max((o.batch for o in done.objects), default=0), **extra}
    out: list[Any] = []
    keys = keys or UNPREFIXED
    owned = [keys.of(tables.BRONZE.name), keys.of(tables.QUARANTINE.name)]
    owned_bronze = tables.BRONZE.name
    for r in rekeyed(partition_results(done, location, where, validated), owned):
        if isinstance(r, dg.MaterializeResult):
            timed = (
                {COMPUTE_SECONDS: round(seconds, 3)}
                if seconds is not None and r.asset_key and table_of(r.asset_key) == owned_bronze
                else {}
            )
            out.append(
                dg.AssetMaterialization(
                    asset_key=r.asset_key or tables.BRONZE.name,
                    partition=partition,
                    metadata={**(r.metadata or {}), **extra, **timed},
                )
            )
        else:
            # No ``partition=``: Dagster 1.13 keeps one row per (asset, check, run id,
            # partition) in asset_check_executions (idx_asset_check_executions_unique) and every
            # runless event has run id "", so a partition's second runless evaluation fails
            # (IntegrityError; a 500 from the webserver). The partition is in the metadata
            # (partition_results puts it there); each batch's evaluation is then kept in the
            # check's history.
            out.append(
                dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey(r.asset_key.path if r.asset_key else tables.BRONZE.name),
                    check_name=str(r.check_name),
                    passed=r.passed,
                    metadata={
                        **(r.metadata or {}),
                        "batches_through": extra["batches_through"],
                        "reported_by": extra["reported_by"],
                    },
                    severity=r.severity,
                    description=r.description,
                )
            )
    return out


def _stderr(line: str) -> None:
    sys.stderr.write(f"lakehouse ingest --follow: {line}\n")
    sys.stderr.flush()


def cmd_follow(args: argparse.Namespace, cfg: Any, location: Any, grant: Any) -> dict[str, Any]:
    """Run the worker for one location until SIGTERM (or ``--max-idle-seconds``); exit 0.

    The caller checked compute sovereignty (``grant``) before any byte was read.
    """
    from data_quality.suites import build_suites
    from pipelines.ingest import stream
    from pipelines.ingest.events import record_rules
    from pipelines.ingest.planning import BATCH_OBJECTS
    from pipelines.lake import delta
    from pipelines.spark.transforms import PII_KEY_ENV

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        _stderr(f"{signal.Signals(signum).name}: finishing the batch in flight, then stopping")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    from assets.keys import keys_of_jurisdiction

    suites = build_suites(cfg)
    keys = keys_of_jurisdiction(cfg, location.jurisdiction)  # the keys its code location defines
    reporter = Reporter(args.dagster_url or env(URL_ENV))
    where = grant.metadata()
    worker = stream.worker_id()
    _warm_up(suites, location)  # GX imported and its context built once, before the stream

    def on_commit(c: stream.Committed) -> None:
        reporter.send(commit_events(c, suites, where, worker, keys))
        t = c.done.totals
        _stderr(
            f"{c.location} {c.landing_date} committed batches {c.done.batches or '-'}"
            f"{' (recovered)' if c.recovered else ''}: landed {t['landed']}, ingested "
            f"{t['ingested']}, quarantined {t['quarantined']}, duplicates "
            f"{t['duplicates_dropped']}; lag {c.lag.as_dict()}"
        )

    def on_error(exc: BaseException, retry_in: float) -> None:
        _report_failure(reporter, location.name, worker, exc, retry_in, keys.of("bronze_events"))

    follower = stream.Follower(
        location,
        location.storage_options(),
        record_rules(cfg),
        stream.FollowOptions(
            poll_seconds=args.poll_seconds,
            linger_seconds=args.linger_seconds,
            batch_objects=args.batch_objects or BATCH_OBJECTS,
            batch_bytes=args.batch_bytes or FOLLOW_BATCH_BYTES,
            max_idle_seconds=args.max_idle_seconds,
            days_back=args.days_back,
            shard=args.shard,
            cluster=delta.bronze_clustering(cfg.privacy, env(PII_KEY_ENV)),
        ),
        on_commit,
        stop,
        on_error=on_error,
        log=_stderr,
    )
    part = f", dates of shard {args.shard[0]}/{args.shard[1]}" if args.shard else ""
    _stderr(f"worker {worker} following {location.name} ({location.jurisdiction}){part}")
    status = follower.run()
    return {"location": location.name, "worker": asdict(status), "compute": where}


def _warm_up(suites: Any, location: Any) -> None:
    import datetime as dt

    from assets.bronze import batch_checks
    from pipelines.ingest.batch import empty_result
    from pipelines.lake import tables

    empty = empty_result(location.region, dt.date.today())
    batch_checks(empty, suites[tables.BRONZE.name], suites[tables.QUARANTINE.name])


def _report_failure(
    reporter: Reporter,
    location: str,
    worker: str,
    exc: BaseException,
    retry_in: float,
    bronze: Any = "bronze_events",
) -> None:
    """An observation on bronze_events (``bronze``: its key) saying the worker is backing off."""
    import dagster as dg

    try:
        reporter.send(
            [
                dg.AssetObservation(
                    asset_key=bronze,
                    metadata={
                        "worker": worker,
                        "location": location,
                        "error": str(exc).strip().splitlines()[0][:400] if str(exc) else "",
                        "retry_in_seconds": retry_in,
                    },
                    description="ingest worker backing off",
                )
            ]
        )
    except Exception as failed:  # Dagster may be unreachable too: the log line is enough
        _stderr(f"failure not reported to Dagster: {failed}")


def worker_status(
    cfg: Any, stale_after: float = 60.0, forget_stopped_after: float = 86_400.0
) -> list[dict[str, Any]]:
    """Every worker's last published status, per location (what ``lakehouse status`` shows)."""
    import datetime as dt

    from pipelines.ingest.state import STATE_PREFIX  # not the engine: status stays quick
    from pipelines.lake.storage import open_storage

    out = []
    now = dt.datetime.now(dt.UTC)
    for loc in cfg.locations.values():
        try:
            storage = open_storage(loc.root_uri(), loc.storage_options())
            infos = list(storage.list(f"{STATE_PREFIX}/status/"))
            for info in infos:
                item = json.loads(storage.get(info.path))
                age = (now - dt.datetime.fromisoformat(item["updated_at"])).total_seconds()
                item["seconds_since_update"] = round(age)
                if item["state"] == "stopped" and age > forget_stopped_after:
                    continue  # a worker long gone (each start is a new host-pid)
                if item["state"] != "stopped" and age > stale_after:
                    item["state"] = f"silent ({item['state']} {round(age)}s ago)"
                out.append(item)
        except Exception as exc:  # one unreachable store does not hide the others
            out.append({"location": loc.name, "state": "unknown", "last_error": str(exc)[:200]})
    return out
