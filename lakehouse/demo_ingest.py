"""The demo's ingestion, two ways: in-process workers reporting to Dagster, or a run per partition.

``workers`` (what ``make run`` does): each location's landed dates are ingested by the demo's
worker processes with the engine and ledger the ingest worker uses (``lakehouse ingest
--follow``), the bronze suites run in the same process (Great Expectations imported once per
worker), and each partition is reported to the demo's Dagster instance as the worker reports it:
both materializations with the asset's metadata and the three check evaluations, as runless
events (``DagsterInstance.report_runless_asset_event``). No run is launched: a run per partition
costs a process's worth of Dagster bookkeeping each (about 0.9 s of the demo's two cores).

``runs``: the landed-objects sensor's requests, each (date, region) its own ``ingest_job`` run,
tagged as the daemon tags a sensor's runs; what a deployment that wants a run per partition does.

Both ingest the partitions the sensor asks for, and both leave the same per-partition metadata
(landed, ingested, quarantined, duplicates) in the instance, which the demo's summary reads.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from lakehouse.demo_workers import INGEST_MODES, Workers, workers_state
from lakehouse.ml_demo import QUIET
from lakehouse.progress import Stage
from pipelines.lake import tables

if TYPE_CHECKING:
    import dagster as dg

    from pipelines.lake.config import LakeConfig

# Dates of one location a worker ingests per task: small enough to share the dates evenly.
CHUNK_DAYS = 4


class IngestDone(NamedTuple):
    """How a partition's ingestion ended, and the records it found landed (for progress)."""

    partition_key: str
    ok: bool
    landed: int
    error: str = ""


def ingest(
    mode: str,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    cfg: LakeConfig,
    workers: Workers,
    stage: Stage | None = None,
) -> tuple[int, list[str]]:
    """Ingest what the landed-objects sensor finds, the ``mode`` way; partitions, failures.

    Failures are ``date|region`` keys (with the error's first line for ``workers``).
    """
    if mode not in INGEST_MODES:
        raise ValueError(f"demo --ingest {mode!r}: expected one of {', '.join(INGEST_MODES)}")
    requests = _sensor_requests(defs, instance)
    if stage is not None:
        stage.total = len(requests)

    def ingested(done: IngestDone) -> None:
        if stage is not None:
            stage.advance(events=done.landed)
            if not done.ok:
                stage.note(f"{done.partition_key} failed")

    if mode == "runs":
        done = workers.map(ingest_run, requests, on_result=ingested)
    else:
        done = _by_workers(cfg, workers, requests, ingested)
    failed = [d.partition_key + (f": {d.error}" if d.error else "") for d in done if not d.ok]
    return len(requests), failed


def _sensor_requests(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[IngestRequest]:
    """The landed-objects sensor, evaluated once: a request per (date, region) with objects."""
    import dagster as dg

    sensor = defs.resolve_sensor_def("landed_objects_sensor")
    with dg.build_sensor_context(instance=instance, resources=defs.resources) as ctx:
        result = sensor(ctx)
    if not isinstance(result, dg.SensorResult):
        raise RuntimeError(f"demo: landed_objects_sensor returned {type(result).__name__}")
    return [
        IngestRequest(str(r.partition_key), r.run_key, dict(r.tags))
        for r in result.run_requests or []
    ]


@dataclass(frozen=True)
class IngestRequest:
    """What the sensor asked for: a partition, its run key and the run's tags."""

    partition_key: str
    run_key: str | None
    tags: dict[str, str]


def ingest_run(request: IngestRequest) -> IngestDone:
    """One ingestion run of a (date, region), as the daemon would launch the sensor's request.

    The request's tags (the routing tag with the partition's jurisdiction among them) are the
    run's, with those the daemon adds to a sensor's runs.
    """
    state = workers_state()
    run = state.job("ingest_job").execute_in_process(
        partition_key=request.partition_key,
        instance=state.instance,
        raise_on_error=False,
        run_config=QUIET,
        # the tags the daemon gives a sensor's runs: `make ui` afterwards sees these run
        # keys as done and does not re-ingest everything the demo ingested
        tags={
            **request.tags,
            "lakehouse/trigger": "landed_objects_sensor",
            "dagster/sensor_name": "landed_objects_sensor",
            **({"dagster/run_key": request.run_key} if request.run_key else {}),
        },
    )
    return IngestDone(request.partition_key, run.success, _landed(run))


def _landed(run: dg.ExecuteInProcessResult) -> int:
    """Records the run's bronze materialization says were landed (0 when it has no count)."""
    import dagster as dg

    total = 0
    for event in run.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        if mat.asset_key == dg.AssetKey(tables.BRONZE.name):
            value = mat.metadata.get("landed")
            total += int(value.value) if value is not None else 0  # type: ignore[arg-type]
    return total


@dataclass(frozen=True)
class IngestDays:
    """Landing dates of one location for a worker to ingest and report."""

    environment: str
    location: str
    days: tuple[dt.date, ...]


def _by_workers(
    cfg: LakeConfig, workers: Workers, requests: list[IngestRequest], on_result: Any
) -> list[IngestDone]:
    days: dict[str, list[dt.date]] = {}
    for r in requests:
        day, region = r.partition_key.split("|")
        days.setdefault(cfg.location_for_region(region).name, []).append(dt.date.fromisoformat(day))
    tasks = [
        IngestDays(cfg.environment, name, tuple(ds[i : i + CHUNK_DAYS]))
        for name, ds in ((n, sorted(d)) for n, d in sorted(days.items()))
        for i in range(0, len(ds), CHUNK_DAYS)
    ]
    # the locations' chunks interleaved: both workers busy to the end whatever the sizes
    tasks.sort(key=lambda t: t.days[0])
    out: list[IngestDone] = []

    def each(done: list[IngestDone]) -> None:
        for d in done:
            out.append(d)
            on_result(d)

    try:
        workers.map(ingest_days, tasks, on_result=each)
    finally:
        _REPORTING.clear()  # this process's instance and suites, when it ingested itself
    return out


@dataclass
class _Reporting:
    cfg: LakeConfig
    suites: Any
    rules: Any
    instance: dg.DagsterInstance
    worker: str


_REPORTING: dict[str, _Reporting] = {}


def _reporting(environment: str) -> _Reporting:
    """This process's configuration, suites and instance (built by its first task)."""
    if environment not in _REPORTING:
        import dagster as dg

        from data_quality.suites import build_suites
        from pipelines.ingest.events import record_rules
        from pipelines.ingest.stream import worker_id
        from pipelines.lake.config import load_config

        cfg = load_config(environment)
        _REPORTING[environment] = _Reporting(
            cfg, build_suites(cfg), record_rules(cfg), dg.DagsterInstance.get(), worker_id()
        )
    return _REPORTING[environment]


def ingest_days(task: IngestDays) -> list[IngestDone]:
    """Ingest the task's dates of its location, each reported as its runless events.

    Refused before a byte is read when this process may not process the location's data
    (compute sovereignty, as the asset's run is). A date that fails is one failed partition,
    named with its error; the other dates go on.
    """
    from assets.bronze import BRONZE_DATA, batch_checks
    from lakehouse.worker import partition_events
    from pipelines.ingest.batch import IngestResult, empty_result
    from pipelines.ingest.partition import ingest_partition
    from pipelines.sovereignty.compute import check_locations

    r = _reporting(task.environment)
    loc = r.cfg.location(task.location)
    (grant,) = check_locations(
        r.cfg, tables.BRONZE.name, [loc], BRONZE_DATA.reads, BRONZE_DATA.writes
    )
    events, quarantine = r.suites[tables.BRONZE.name], r.suites[tables.QUARANTINE.name]
    extra = {"reported_by": f"demo ingest worker {r.worker} (no run)"}
    out = []
    for day in task.days:
        key = f"{day.isoformat()}|{loc.region}"
        validated: list[Any] = []

        def validate(batch: IngestResult, into: list[Any] = validated) -> None:
            # each batch as it is appended: memory stays bounded by a batch
            into.append(batch_checks(batch, events, quarantine))

        try:
            started = time.perf_counter()
            done = ingest_partition(
                loc, loc.storage_options(), day, r.rules, keep_rows=False, on_batch=validate
            )
            if not validated:  # nothing new: the suites see the (empty) batch appended
                validated.append(batch_checks(empty_result(loc.region, day), events, quarantine))
            seconds = time.perf_counter() - started
            events_of = partition_events(
                done, loc.name, grant.metadata(), validated, extra, seconds=seconds
            )
            for event in events_of:
                r.instance.report_runless_asset_event(event)
        except Exception as exc:
            text = str(exc).strip()
            why = text.splitlines()[0][:300] if text else type(exc).__name__
            out.append(IngestDone(key, False, 0, why))
            continue
        out.append(IngestDone(key, True, int(done.totals["landed"])))
    return out
