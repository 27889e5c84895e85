"""``lakehouse ingest --follow``: the long-lived ingest worker, reporting to Dagster without runs.

The loop is the engine's (:mod:`pipelines.ingest.stream`); this module adds what Dagster needs: the
bronze suites run in this process over the committed batches (Great Expectations imported once per
worker; evaluated at most every ``--check-seconds`` per date over the batches committed since,
:class:`Checks`), and each committed partition is reported as Dagster sees a run's today: both
materializations with the asset's metadata and the three check evaluations, through Dagster's
public runless-event API. Two transports, one content:

- ``--dagster-url URL`` (or ``LAKEHOUSE_DAGSTER_URL``): the webserver's
  ``POST /report_asset_materialization/<key>`` and ``POST /report_asset_check/<key>`` endpoints
  (dagster-webserver 1.13's routes: the check's is not ``/report_asset_check_evaluation/``,
  the name its error messages use); what a worker outside the database's network uses;
- otherwise the instance every command uses (``DAGSTER_HOME``, else the project's
  ``.dagster/``) and its public ``report_runless_asset_event``: the same call the webserver's
  endpoints make. A worker whose instance folder does not exist is refused at its start.

A commit is reported after it is in the tables; the ledger batch it reported up to (and the
one its checks cover) is then recorded in the store, so a report lost to a kill is made by the
next worker, checks owed included (at least once: a kill between the report and that record
repeats the report, with the same totals).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from lakehouse.instance import ProjectInstance, open_instance, project_instance
from pipelines.lake.config.environment import env, redact

URL_ENV = "LAKEHOUSE_DAGSTER_URL"
# A worker's batches are smaller than a run's (32 MiB): with 32 MiB batches under a backlog a
# worker peaked at 2.9 GB (benchmarks/stream.py), likely the bronze suites' pandas frame of each
# batch on top of the ingest's own peak; 8 MiB is a few seconds of a region's stream.
FOLLOW_BATCH_BYTES = 8 * 1024 * 1024
# A date's bronze checks are evaluated at most this often, over the batches committed since
# (Checks): Great Expectations' cost is per evaluation, not per row.
CHECK_SECONDS = 10.0
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
        "--check-seconds",
        type=number(float, 0),
        default=CHECK_SECONDS,
        metavar="SECONDS",
        help="with --follow: evaluate a date's bronze checks at most this often, over the "
        "batches committed since, >= 0 (0: with every commit; default %(default)s)",
    )
    p.add_argument(
        "--max-idle-seconds",
        type=number(float, 0),
        default=None,
        metavar="SECONDS",
        help="exit 0 after this long with nothing waiting, >= 0; exit 1 after this long "
        "failing (an unreachable store or webserver) without progress (default: never)",
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
    """Sends runless asset events: to a webserver over HTTP, or to the instance itself.

    Without a URL, the instance is the one every other command uses (DAGSTER_HOME, else the
    project's ``.dagster/``: :func:`lakehouse.instance.project_instance`); a worker whose
    instance folder does not exist is refused here, at its start, in one line, not after its
    first commit with Dagster's own multi-line message.
    """

    def __init__(self, url: str | None, where: ProjectInstance | None = None) -> None:
        self.url = _webserver_url(url) if url else None
        self.where = None if self.url else (where or project_instance())
        self._instance: Any = None
        if self.where is not None:
            self.where.require()
            from pipelines.ingest.stream import first_line

            try:  # a dagster.yaml Dagster cannot load: refused now, not at the first report
                self._instance_of()
            except Exception as exc:
                raise ValueError(
                    f"{self.where.line()}: {first_line(exc)} (its dagster.yaml?)"
                ) from None

    def line(self) -> str:
        """Where the reports go, for the worker's first line."""
        return f"Dagster at {self.url}" if self.url else self._where().line()

    def _where(self) -> ProjectInstance:
        assert self.where is not None  # set whenever there is no URL
        return self.where

    def _instance_of(self) -> Any:
        if self._instance is None:
            self._instance = open_instance(self._where().home)
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


def _webserver_url(url: str) -> str:
    """``url`` without its trailing ``/``, refused in one line unless it is http(s)://host."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"--dagster-url (or {URL_ENV}) {redact(url)!r} is not a webserver's http(s) URL, "
            "e.g. http://127.0.0.1:3000"
        )
    return url.strip().rstrip("/")


def _plain(metadata: Any) -> dict[str, Any]:
    """Metadata as JSON the endpoints take (they build the metadata values again)."""
    out = {}
    for key, value in (metadata or {}).items():
        raw = getattr(value, "value", value)
        out[key] = raw.data if hasattr(raw, "data") else raw
    return out


@dataclass
class _Owed:
    """A date's committed batches whose checks are not evaluated yet."""

    since: float  # when the first of them was committed (monotonic)
    rows: list[Any] = field(default_factory=list)  # assets.bronze.BatchRows, one a batch
    committed: Any = None  # the last commit (stream.Committed): its totals and location


class Checks:
    """The bronze checks of a worker's commits: at most once per date every ``every`` seconds.

    Great Expectations costs about 0.1 CPU-s per evaluation whatever the rows (building each
    expectation's metric graph), and a worker commits a batch every few seconds per date. So
    each commit's materializations are reported at once, and the suites are evaluated over the
    batches committed since the last evaluation once ``every`` seconds have passed (and at
    stop): the rows each batch's suites would read (its sample, ``quality.batch_sample_rows``),
    joined, with the batches' exact row count. Each evaluation names its partition and the
    last batch it covers (``batches_through``); a failed expectation fails that partition's
    check. ``every=0``: an evaluation with every commit.
    """

    def __init__(
        self,
        suites: Any,
        where: dict[str, Any],
        worker: str,
        keys: Any,
        reporter: Reporter,
        every: float = 0.0,
        warming: threading.Thread | None = None,
    ) -> None:
        self.suites, self.where, self.worker, self.keys = suites, where, worker, keys
        self.reporter, self.every = reporter, every
        self.owed: dict[dt.date, _Owed] = {}
        self.warming = warming  # GX's warm-up (cmd_follow): an evaluation waits for it

    def _extra(self, c: Any) -> dict[str, Any]:
        return {
            **c.lag.as_dict(),
            "reported_by": f"ingest worker {self.worker} (no run)",
            "recovered_report": c.recovered,
        }

    def on_commit(self, c: Any) -> bool:
        """Report a commit; True when its checks (and those owed before) were reported too."""
        from assets.bronze import BatchRows
        from pipelines.ingest.batch import empty_result
        from pipelines.lake import tables

        events_suite, quarantine_suite = (
            self.suites[tables.BRONZE.name],
            self.suites[tables.QUARANTINE.name],
        )
        started = time.perf_counter()
        batches = c.batches or [empty_result(c.region, c.landing_date)]
        owed = self.owed.get(c.landing_date) or _Owed(time.monotonic())
        pending = _Owed(
            owed.since,
            [*owed.rows, *(BatchRows.of(b, events_suite, quarantine_suite) for b in batches)],
            c,
        )
        due = time.monotonic() - pending.since >= self.every
        checks = self._check_events(pending) if due else []
        seconds = c.seconds + time.perf_counter() - started
        events = partition_events(
            c.done, c.location, self.where, None, self._extra(c), self.keys, seconds
        )
        self.reporter.send(events + checks)  # what is owed changes only once it is sent
        if due:
            self.owed.pop(c.landing_date, None)
        else:
            self.owed[c.landing_date] = pending
        return due

    def on_flush(self, day: dt.date, final: bool) -> bool:
        """Evaluate and report the checks owed for ``day`` if ``every`` passed (or ``final``)."""
        owed = self.owed.get(day)
        if owed is None or not (final or time.monotonic() - owed.since >= self.every):
            return False
        self.reporter.send(self._check_events(owed))
        del self.owed[day]
        return True

    def _check_events(self, owed: _Owed) -> list[Any]:
        """The three check evaluations over the owed batches' rows, once."""
        from assets.bronze import BatchRows, rows_checks
        from pipelines.lake import tables

        if self.warming is not None:
            self.warming.join()
            self.warming = None
        c = owed.committed
        validated = rows_checks(
            BatchRows.joined(owed.rows),
            self.suites[tables.BRONZE.name],
            self.suites[tables.QUARANTINE.name],
        )
        return partition_events(
            c.done, c.location, self.where, [validated], self._extra(c), self.keys, checks=True
        )


def partition_events(
    done: Any,
    location: str,
    where: dict[str, Any],
    validated: list[Any] | None,
    extra: dict[str, Any],
    keys: Any = None,
    seconds: float | None = None,
    checks: bool = False,
) -> list[Any]:
    """A partition's ingest as runless events: both materializations and the three checks.

    The same results the asset yields from its run (``partition_results``), with ``extra``
    (who reported, and ``batches_through``) added to the materializations' metadata, under
    the location's asset keys (``keys``, assets/keys.py; default: the table names).
    ``validated=None``: the materializations alone; ``checks``: the check evaluations alone.
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
            if checks:
                continue
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
    sys.stderr.write(f"lakehouse ingest --follow: {redact(line)}\n")
    sys.stderr.flush()


def cmd_follow(
    args: argparse.Namespace, cfg: Any, located: list[tuple[Any, Any]]
) -> dict[str, Any]:
    """Run the worker for its locations until SIGTERM (or ``--max-idle-seconds``).

    ``located``: each location with its compute grant; the caller checked compute sovereignty
    for every one before any byte was read. Several locations are followed in turn by one
    process (:func:`pipelines.ingest.stream.follow_all`): one start, one set of suites.
    """
    from assets.keys import keys_of_jurisdiction
    from data_quality.suites import build_suites
    from pipelines.ingest import stream
    from pipelines.ingest.events import record_rules
    from pipelines.ingest.planning import BATCH_OBJECTS
    from pipelines.lake import delta
    from pipelines.spark.transforms import PII_KEY_ENV

    # the instance the reports go to exists, or the worker stops here, before a byte is read
    reporter = Reporter(args.dagster_url or env(URL_ENV))
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        _stderr(f"{signal.Signals(signum).name}: finishing the batch in flight, then stopping")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    suites = build_suites(cfg)
    worker = stream.worker_id()
    # GX imported and its context built once, beside the first batches (a restarted worker
    # ingests at once, not after GX's import: about 3 CPU-s); checks wait for it
    warming = threading.Thread(
        target=_warm_up, args=(suites, located[0][0]), name="gx-warm-up", daemon=True
    )
    warming.start()
    options = stream.FollowOptions(
        poll_seconds=args.poll_seconds,
        linger_seconds=args.linger_seconds,
        batch_objects=args.batch_objects or BATCH_OBJECTS,
        batch_bytes=args.batch_bytes or FOLLOW_BATCH_BYTES,
        max_idle_seconds=args.max_idle_seconds,
        days_back=args.days_back,
        shard=args.shard,
        cluster=delta.bronze_clustering(cfg.privacy, env(PII_KEY_ENV)),
    )
    rules = record_rules(cfg)
    followers = []
    for location, grant in located:
        keys = keys_of_jurisdiction(cfg, location.jurisdiction)  # its code location's keys
        checks = Checks(
            suites, grant.metadata(), worker, keys, reporter, args.check_seconds, warming
        )
        followers.append(_follower(location, keys, checks, reporter, worker, options, rules, stop))
    part = f", dates of shard {args.shard[0]}/{args.shard[1]}" if args.shard else ""
    names = ", ".join(f"{loc.name} ({loc.jurisdiction})" for loc, _ in located)
    # the CPU its start took (imports of Dagster and GX, the suites built): what each restart
    # costs, apart from the stream's (benchmarks/stream.py reads it)
    _stderr(
        f"worker {worker} following {names}{part}; reporting to {reporter.line()}; "
        f"start cpu {time.process_time():.2f}s"
    )
    statuses = stream.follow_all(followers, stop)
    failing = [(loc, st) for (loc, _), st in zip(located, statuses, strict=True) if st.last_error]
    if failing and not stop.is_set():  # --max-idle-seconds passed failing, not idle: exit 1
        loc, st = failing[0]
        raise RuntimeError(
            f"stopped after --max-idle-seconds {args.max_idle_seconds:g} without progress: "
            f"{loc.name}: {st.last_error} (what it committed is in the tables; a worker "
            "started later reports what is owed)"
        )
    out = [
        {"location": loc.name, "worker": asdict(st), "compute": grant.metadata()}
        for (loc, grant), st in zip(located, statuses, strict=True)
    ]
    return out[0] if len(out) == 1 else {"locations": out}


def _follower(
    location: Any,
    keys: Any,
    checks: Checks,
    reporter: Reporter,
    worker: str,
    options: Any,
    rules: Any,
    stop: threading.Event,
) -> Any:
    """One location's follower: its checks and reports under its jurisdiction's asset keys."""
    from pipelines.ingest import stream

    def on_commit(c: stream.Committed) -> bool:
        checked = checks.on_commit(c)
        t = c.done.totals
        _stderr(
            f"{c.location} {c.landing_date} committed batches {c.done.batches or '-'}"
            f"{' (recovered)' if c.recovered else ''}: landed {t['landed']}, ingested "
            f"{t['ingested']}, quarantined {t['quarantined']}, duplicates "
            f"{t['duplicates_dropped']}; lag {c.lag.as_dict()}"
            f"{'' if checked else '; checks owed'}"
        )
        return checked

    def on_flush(day: dt.date, final: bool) -> bool:
        flushed = checks.on_flush(day, final)
        if flushed:
            _stderr(f"{location.name} {day} checks reported")
        return flushed

    def on_error(exc: BaseException, retry_in: float) -> None:
        _report_failure(reporter, location.name, worker, exc, retry_in, keys.of("bronze_events"))

    return stream.Follower(
        location,
        location.storage_options(),
        rules,
        options,
        on_commit,
        stop,
        on_error=on_error,
        log=_stderr,
        on_flush=on_flush,
    )


def _warm_up(suites: Any, location: Any) -> None:
    """Import GX and build its context with a check of an empty batch (in a thread of its own).

    A failure is one line here; the first check evaluation meets it again and reports it.
    """
    import datetime as dt

    from assets.bronze import batch_checks
    from pipelines.ingest.batch import empty_result
    from pipelines.lake import tables

    try:
        empty = empty_result(location.region, dt.date.today())
        batch_checks(empty, suites[tables.BRONZE.name], suites[tables.QUARANTINE.name])
    except Exception as exc:  # the checks load GX again when due, and say what fails
        _stderr(f"Great Expectations warm-up failed: {type(exc).__name__}: {exc}".splitlines()[0])


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

    from pipelines.ingest.stream import first_line

    try:
        reporter.send(
            [
                dg.AssetObservation(
                    asset_key=bronze,
                    metadata={
                        "worker": worker,
                        "location": location,
                        "error": first_line(exc),
                        "retry_in_seconds": retry_in,
                    },
                    description="ingest worker backing off",
                )
            ]
        )
    except Exception as failed:  # Dagster may be unreachable too: the log line is enough
        _stderr(f"failure not reported to Dagster: {first_line(failed)}")


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
