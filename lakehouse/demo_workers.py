"""The demo's worker processes: independent runs side by side, each an ordinary Dagster run.

``execute_in_process`` runs one run in the calling process. The demo's many small runs (one
ingestion per date and region, one forecast and drift per day) are independent, so it runs
them on a few *spawned* worker processes (deltalake panics in a forked child; Dagster's
in-process execution is not meant to be shared between threads). Each worker loads the code
location and opens the Dagster instance once, then executes the runs it is handed; the
instance's SQLite storage is shared between processes as it is between the daemon's run
workers, so afterwards the UI shows every run with its materializations, as before.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from pipelines.lake.config.environment import env

if TYPE_CHECKING:  # a worker imports Dagster for its first run, not to land simulated events
    import dagster as dg

    from pipelines.simulation.simulate import SimulationConfig

WORKERS_ENV = "LAKEHOUSE_DEMO_WORKERS"
# How the demo ingests bronze (lakehouse/demo_ingest.py): the first is the default.
INGEST_MODES = ("workers", "runs")
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class WorkerState:
    """What a worker (or the demo's own process) executes runs with."""

    defs: dg.Definitions
    instance: dg.DagsterInstance

    def job(self, name: str) -> dg.JobDefinition:
        """A job of the code location."""
        return self.defs.resolve_job_def(name)


_STATE: list[WorkerState] = []
_ENVIRONMENT: list[str] = []


def workers_state() -> WorkerState:
    """The code location and instance of this process's runs, loaded by a worker's first run."""
    if not _STATE and _ENVIRONMENT:
        import dagster as dg

        from lakehouse.definitions import build_definitions

        _STATE.append(WorkerState(build_definitions(_ENVIRONMENT[-1]), dg.DagsterInstance.get()))
    if not _STATE:
        raise RuntimeError("demo: a run was handed to a process that has no code location")
    return _STATE[-1]


def _start(environment: str) -> None:
    """A worker's start: which environment its runs are of (loaded when the first comes)."""
    # Ctrl-C goes to the demo's process group only: the demo stops the workers (SIGTERM, which
    # Dagster turns into an interrupt of the run, so the run ends as failed, not as started)
    os.setpgrp()
    # ... and SIGTERM ends a worker whatever the shell that started the demo ignores (a
    # disposition a child inherits): ignored, Pool.terminate would wait for its workers for ever
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _ENVIRONMENT.append(environment)


@dataclass(frozen=True)
class LandDays:
    """Days of the simulation to land in one location."""

    sim: SimulationConfig
    environment: str
    location: str
    days: tuple[dt.date, ...]


def land_days(task: LandDays) -> tuple[int, int]:
    """Land the task's days in its location; returns the days and the records it landed.

    Each region-day draws from its own generator, so a day lands the same whichever process
    lands it and in whichever order.
    """
    from pipelines.lake.config import load_config
    from pipelines.lake.storage import open_storage
    from pipelines.simulation.simulate import land_day

    cfg = load_config(task.environment)
    loc = cfg.location(task.location)
    storage = open_storage(loc.root_uri(), loc.storage_options())
    records = 0
    for day in task.days:
        records += land_day(task.sim, loc, storage, day, cfg.currency_of(loc.region)).records
    return len(task.days), records


def worker_count() -> int:
    """Workers to start: ``LAKEHOUSE_DEMO_WORKERS``, else the machine's cores, at most 2."""
    raw = env(WORKERS_ENV)
    if raw is None or raw == "":
        return max(1, min(2, os.cpu_count() or 1))
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"{WORKERS_ENV}={raw!r} is not a whole number of workers (1 or more)")
    return int(raw)


class Workers:
    """Worker processes started at once (they load while the caller does other work).

    ``map`` runs a function over items on the workers, or in this process when there is one
    worker or one item; the function must be importable (a module-level function).
    """

    def __init__(self, environment: str, count: int | None = None) -> None:
        self.environment = environment
        self.count = worker_count() if count is None else count
        self._pool: Any = None

    def __enter__(self) -> Workers:
        if self.count > 1:
            self._pool = multiprocessing.get_context("spawn").Pool(
                self.count, initializer=_start, initargs=(self.environment,)
            )
        return self

    def use_here(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        """The code location and instance runs use when they execute in this process."""
        _STATE.append(WorkerState(defs, instance))

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_result: Callable[[R], None] | None = None,
    ) -> list[R]:
        """``fn`` of each item, in order; items go to the next free worker one at a time.

        ``on_result`` sees each result as it is ready (for progress), in the items' order.
        """
        if self._pool is None or len(items) < 2:
            results = (fn(item) for item in items)
        else:
            results = self._pool.imap(fn, items, chunksize=1)
        out = []
        for result in results:
            out.append(result)
            if on_result is not None:
                on_result(result)
        return out

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            if kind is None:
                self._pool.close()
            else:
                _stop(self._pool)
            self._pool.join()
        _STATE.clear()


# Seconds an interrupted worker gets to end its run before it is killed.
STOP_GRACE = 5.0


def _stop(pool: Any) -> None:
    """Stop the workers of an interrupted demo: asked first, killed after a grace period.

    ``Pool.terminate`` joins its workers without a time limit: a worker stuck in a library
    call would hold the demo for ever.
    """
    processes = list(getattr(pool, "_pool", None) or [])  # multiprocessing keeps them there
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(STOP_GRACE)
        if process.is_alive():
            process.kill()
    # An idle worker waits for its next task holding the task queue's read lock; killed, it
    # never releases it, and ``Pool.terminate`` takes that lock first: it would wait for ever
    # (a failed stage after the ingest hung the demo here). The workers are gone: free it.
    lock = getattr(getattr(pool, "_inqueue", None), "_rlock", None)
    if lock is not None:
        lock.acquire(block=False)  # taken now, or still held by a killed worker
        lock.release()
    pool.terminate()  # joins the workers: they have ended by now
