"""Progress of long commands a person can follow: stage, done / total, rate, elapsed.

On a terminal a live bar (``rich``) on stderr; anywhere else (CI, logs, a pipe) plain lines,
at most one every ``interval`` seconds per stage plus its first and last, so a log of a long
run stays short and every line says where the work is. Stdout is left to the command's report.

    with Progress("demo") as progress:
        with progress.stage("ingest", total=177) as stage:
            for report in runs:
                stage.advance(events=report.landed)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from pipelines.lake.config.environment import env

# Plain lines of one stage at most this often (seconds); its first and last always.
PLAIN_INTERVAL = 10.0


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.3g}"


def _bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"  # unreachable: the loop returns at GB


@dataclass
class Stage:
    """One stage's counts; ``advance`` as work completes, ``note`` for a word of status."""

    name: str
    total: int | None
    unit: str
    owner: Progress
    done: int = 0
    events: int = 0
    bytes: int = 0
    status: str = ""
    started: float = field(default_factory=time.perf_counter)
    _task: Any = None
    _printed: float = float("-inf")  # the first line prints whatever the clock reads
    _announced: bool = False

    @property
    def elapsed(self) -> float:
        """Seconds since the stage started."""
        return time.perf_counter() - self.started

    def advance(
        self, done: int = 1, *, events: int = 0, bytes: int = 0, status: str | None = None
    ) -> None:
        """Count ``done`` more units of work, with the events and bytes they carried.

        ``status`` says what was just done. Safe from several threads (a sync's copies report
        from their own).
        """
        with self.owner.lock:
            self.done += done
            self.events += events
            self.bytes += bytes
            self.status = self.status if status is None else status
            self.owner._update(self)

    def set(self, done: int) -> None:
        """Set the units done (a count read back from somewhere else)."""
        with self.owner.lock:
            self.done = done
            self.owner._update(self)

    def tick(self) -> None:
        """Nothing new: a plain line with the elapsed time when one is due (a long step)."""
        with self.owner.lock:
            self.owner._update(self)

    def note(self, status: str) -> None:
        """Say what the stage is doing now (shown next to its counts)."""
        with self.owner.lock:
            self.status = status
            self.owner._update(self)

    def describe(self) -> str:
        """``12/177 partitions, 36,000 events (3,000 events/s), 4.1 MB, 12.0 s``."""
        parts = [
            f"{self.done}/{self.total} {self.unit}"
            if self.total is not None
            else f"{self.done} {self.unit}"
        ]
        seconds = max(self.elapsed, 1e-9)
        if self.events:
            parts.append(f"{_number(self.events)} events ({_number(self.events / seconds)}/s)")
        if self.bytes:
            parts.append(f"{_bytes(self.bytes)} ({_bytes(self.bytes / seconds)}/s)")
        if self.status:
            parts.append(self.status)
        parts.append(f"{self.elapsed:.1f} s")
        return ", ".join(parts)

    def rate(self) -> str:
        """The rate column of the bar: events per second, else bytes per second."""
        seconds = max(self.elapsed, 1e-9)
        if self.events:
            return f"{_number(self.events / seconds)} events/s"
        if self.bytes:
            return f"{_bytes(self.bytes / seconds)}/s"
        return ""


class Progress:
    """The progress display of one command: a bar on a terminal, plain lines elsewhere.

    ``live`` forces one or the other (default: whether ``stream`` is a terminal and
    ``TERM`` is not ``dumb``); ``interval`` is the plain lines' minimum spacing per stage.
    """

    def __init__(
        self,
        command: str,
        stream: IO[str] | None = None,
        live: bool | None = None,
        interval: float = PLAIN_INTERVAL,
    ) -> None:
        self.command = command
        self.stream = stream if stream is not None else sys.stderr
        self.live = _is_terminal(self.stream) if live is None else live
        self.interval = interval
        self.enabled = True
        self.lock = threading.RLock()
        self._bar: Any = None
        self._tty: IO[str] | None = None

    @classmethod
    def silent(cls, command: str) -> Progress:
        """A progress that shows nothing (a caller that did not ask for progress)."""
        quiet = cls(command, live=False)
        quiet.enabled = False
        return quiet

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("[bold]{task.description:<9}"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("[dim]{task.fields[status]}"),
                console=Console(file=self._terminal()),
                # the bar stays above what the libraries print while it runs
                redirect_stdout=False,
                redirect_stderr=True,
            )
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._tty is not None:
            self._tty.close()
            self._tty = None

    def _terminal(self) -> IO[str]:
        """The terminal itself, not whatever its file descriptor points at later.

        Dagster captures a step's stdout and stderr by pointing descriptors 1 and 2 at files
        (and tails them back): the bar would stop refreshing (rich draws only on a terminal)
        for as long as a step runs. A copy of the descriptor keeps the terminal.
        """
        try:
            self._tty = os.fdopen(os.dup(self.stream.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # no descriptor: a test's stream
            return self.stream
        return self._tty

    @contextmanager
    def stage(
        self, name: str, total: int | None = None, unit: str = "partitions"
    ) -> Iterator[Stage]:
        """A stage of the command; its last line (or the bar's last state) stays on screen."""
        stage = Stage(name, total, unit, self)
        if self._bar is not None:
            stage._task = self._bar.add_task(name, total=total, unit=unit, rate="", status="")
        # plain lines: "started" comes with the first count, so a command refused on its
        # input says so in its one error line, after no progress line at all
        ok = False
        try:
            yield stage
            ok = True
        finally:
            self._end(stage, ok)

    def _update(self, stage: Stage) -> None:
        if self._bar is not None and stage._task is not None:
            self._bar.update(
                stage._task,
                total=stage.total,
                completed=stage.done,
                rate=stage.rate(),
                status=stage.status,
            )
            return
        if not stage._announced:
            stage._announced = True
            self._write(f"{stage.name} started")
        if stage.done != stage.total and time.perf_counter() - stage._printed >= self.interval:
            self._line(stage)  # the last count is the stage's closing line

    def _end(self, stage: Stage, ok: bool) -> None:
        if self._bar is not None and stage._task is not None and not ok and not stage.done:
            # failed before any work (a refused sync): the error line alone says so, as in
            # plain lines; an empty bar marked failed would only push it down
            self._bar.remove_task(stage._task)
            return
        if self._bar is not None and stage._task is not None:
            status = stage.status if ok else "failed"
            total = stage.total if stage.total is not None else stage.done
            self._bar.update(
                stage._task, total=total, completed=stage.done, rate=stage.rate(), status=status
            )
            self._bar.stop_task(stage._task)
        elif ok or stage._announced:
            self._line(stage, "done" if ok else "failed")

    def _line(self, stage: Stage, end: str = "") -> None:
        stage._printed = time.perf_counter()
        tail = f" {end}" if end else ""
        self._write(f"{stage.name} {stage.describe()}{tail}")

    def _write(self, text: str) -> None:
        if not self.enabled:
            return
        self.stream.write(f"{self.command}: {text}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (above the bar on a terminal)."""
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            self._write(text)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty() and (env("TERM") or "") != "dumb"
    except (AttributeError, ValueError):  # a closed or file-like stream without a tty
        return False
