"""Progress of long commands: plain lines with counts where the output is not a terminal."""

import io
import re

import pytest

from lakehouse.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_non_terminal_gets_plain_lines_with_counts_rates_and_elapsed():
    out = io.StringIO()
    progress = Progress("demo", stream=out, interval=0)
    with progress, progress.stage("ingest", total=3, unit="runs") as stage:
        for _ in range(3):
            stage.advance(events=1000)
    lines = out.getvalue().splitlines()
    assert lines[0] == "demo: ingest started"
    assert re.fullmatch(
        r"demo: ingest 1/3 runs, 1,000 events \([\d,.]+/s\), \d+\.\d s", lines[1]
    ), lines[1]
    assert len(lines) == 4  # the last count is the closing line
    assert lines[-1].startswith("demo: ingest 3/3 runs, 3,000 events") and lines[-1].endswith(
        " done"
    )
    assert "\x1b[" not in out.getvalue()  # no terminal control sequences in a log


def test_plain_lines_are_spaced_by_the_interval_first_and_last_always():
    out = io.StringIO()
    progress = Progress("backfill", stream=out, interval=3600)
    with progress, progress.stage("runs", total=500) as stage:
        for _ in range(500):
            stage.advance(bytes=2048)
    lines = out.getvalue().splitlines()
    # the start, the first count (nothing printed for an hour after it), and the end
    assert len(lines) == 3, lines
    assert lines[1].startswith("backfill: runs 1/500 partitions, 2.0 KB")
    assert lines[2].startswith("backfill: runs 500/500 partitions, 1,000.0 KB")
    assert lines[2].endswith(" done")


def test_a_stage_that_fails_says_so_and_a_total_learned_late_is_shown():
    out = io.StringIO()
    with (
        pytest.raises(RuntimeError),
        Progress("demo", stream=out, interval=0) as progress,
        progress.stage("spark") as stage,
    ):
        stage.total = 4
        stage.advance(2)
        raise RuntimeError("boom")
    assert out.getvalue().splitlines()[-1].startswith("demo: spark 2/4 partitions")
    assert out.getvalue().splitlines()[-1].endswith(" failed")


def test_a_terminal_gets_a_bar_not_lines(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTerminal()
    progress = Progress("demo", stream=out)
    assert progress.live
    with progress, progress.stage("ingest", total=2, unit="runs") as stage:
        stage.advance(events=10)
        stage.advance(events=10)
    text = out.getvalue()
    assert "demo: ingest" not in text  # no plain lines
    assert "2/2" in text and "ingest" in text


def test_a_stage_refused_before_any_work_leaves_no_bar_on_a_terminal(monkeypatch):
    """As in plain lines, the command's one error line is all a refusal shows."""
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTerminal()
    with (
        pytest.raises(RuntimeError),
        Progress("sync", stream=out) as progress,
        progress.stage("copy", unit="objects"),
    ):
        raise RuntimeError("refused")
    # what the line shows at the end: after the last carriage return (each redraw clears it)
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", last).strip() == "", repr(out.getvalue())


def test_a_dumb_terminal_gets_plain_lines(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    assert not Progress("demo", stream=FakeTerminal()).live


def test_silent_progress_prints_nothing_but_counts(capsys):
    progress = Progress.silent("demo")
    with progress, progress.stage("ingest", total=1) as stage:
        stage.advance(events=5)
        progress.message("hello")
    assert (stage.done, stage.events) == (1, 5)
    assert capsys.readouterr() == ("", "")


def test_counts_from_several_threads_add_up():
    import threading

    out = io.StringIO()
    progress = Progress("sync", stream=out, interval=0)
    with progress, progress.stage("copy", unit="objects") as stage:
        threads = [
            threading.Thread(target=lambda: [stage.advance(bytes=1) for _ in range(200)])
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert (stage.done, stage.bytes) == (800, 800)
    assert out.getvalue().splitlines()[-1].startswith("sync: copy 800 objects, 800 B")
