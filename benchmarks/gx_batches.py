"""The bronze suites' share of the worker's CPU: every row of each batch against a sample.

``python -m benchmarks.gx_batches [DIR] [EVENTS] [ARRIVALS]`` lands EVENTS (600,000) events of
one day, ingests them once in one call (``one_shot_cpu_s``), then again as ARRIVALS (4)
micro-batches as a worker takes them (the date's ledger kept between calls, the tables kept
open), each batch through both bronze suites reading every row and reading the configured
sample (``quality.batch_sample_rows``), and the samples of all the batches through both suites
once (``gx_window_cpu_s``: what a worker's evaluation every ``--check-seconds`` reads); all in
one process, GX warmed first as the worker does. CPU seconds, not wall (the machine is
shared). Prints one JSON object as its last line: the CPU figures and their ratios to the
one-shot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    """Land, ingest once, ingest in arrivals with both suites; print the CPU figures."""
    args = sys.argv[1:]
    base = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="bench-gx-batches-"))
    events = int(args[1]) if len(args) > 1 else 600_000
    arrivals = int(args[2]) if len(args) > 2 else 4
    one, inc = base / "one", base / "inc"
    os.environ["LAKEHOUSE_HOME"] = str(one)
    from assets.bronze import BatchRows, batch_checks, rows_checks
    from benchmarks.stream import DAY, EVENTS_PER_OBJECT, arrivals_of, land_stream
    from data_quality.suites import build_suites
    from pipelines.ingest import ledger
    from pipelines.ingest import partition as ingest
    from pipelines.ingest.batch import IngestResult, empty_result
    from pipelines.lake import delta
    from pipelines.lake.config import load_config

    out: dict[str, Any] = {"load_avg_at_start": [round(x, 1) for x in os.getloadavg()]}
    cfg = load_config("local")
    loc = cfg.location("aws-us")
    land_stream(loc, DAY, events, EVENTS_PER_OBJECT)
    held = inc / "held"
    held.mkdir(parents=True)
    shutil.copytree(one / ".lake/aws-us/landing", held, dirs_exist_ok=True, copy_function=os.link)
    open_day = dt.datetime.combine(DAY, dt.time(23), dt.UTC)  # compaction is not timed
    suites = build_suites(cfg)
    names = ("bronze_events", "bronze_quarantine")
    sampled = tuple(suites[n] for n in names)
    whole = tuple(dataclasses.replace(s, sample_rows=None) for s in sampled)
    for pair in (whole, sampled):  # GX imported and its objects built before the clock
        batch_checks(empty_result(loc.region, DAY), *pair)

    t = time.process_time()
    ingest.ingest_partition(loc, {}, DAY, keep_rows=False, now=open_day)
    one_shot = time.process_time() - t

    os.environ["LAKEHOUSE_HOME"] = str(inc)
    loc = load_config("local").location("aws-us")
    (inc / ".lake/aws-us/landing").mkdir(parents=True)
    gx_cpu = {"whole": 0.0, "sampled": 0.0, "window": 0.0}
    rows: list[list[int]] = []
    window: list[BatchRows] = []

    def on_batch(batch: IngestResult) -> None:
        for label, pair in (("whole", whole), ("sampled", sampled)):
            c = time.process_time()
            checked = batch_checks(batch, *pair)
            gx_cpu[label] += time.process_time() - c
            if not all(r.passed for r in checked):
                raise AssertionError(f"{label} suites failed: {checked[0].metadata}")
        c = time.process_time()
        window.append(BatchRows.of(batch, *sampled))  # what a worker keeps until it evaluates
        gx_cpu["window"] += time.process_time() - c
        rows.append([batch.bronze.num_rows, int(checked[0].metadata["rows_validated"].value)])

    micro, done, memo = 0.0, None, ledger.Memo()
    with delta.tables_kept_open():  # as a worker reads and writes its tables
        for _ in arrivals_of(inc, arrivals):
            t = time.process_time()
            done = ingest.ingest_partition(
                loc, {}, DAY, keep_rows=False, now=open_day, on_batch=on_batch, memo=memo
            )
            micro += time.process_time() - t
    micro -= gx_cpu["whole"] + gx_cpu["sampled"] + gx_cpu["window"]
    c = time.process_time()
    checked = rows_checks(BatchRows.joined(window), *sampled)
    gx_cpu["window"] += time.process_time() - c
    if not all(r.passed for r in checked):
        raise AssertionError(f"window suites failed: {checked[0].metadata}")
    out.update(
        events=events,
        one_shot_cpu_s=round(one_shot, 3),
        micro_batches_cpu_s=round(micro, 3),
        batch_rows_and_rows_validated=rows,
        gx_every_row_cpu_s=round(gx_cpu["whole"], 3),
        gx_sampled_cpu_s=round(gx_cpu["sampled"], 3),
        gx_window_cpu_s=round(gx_cpu["window"], 3),
        window_rows_validated=int(checked[0].metadata["rows_validated"].value),
        micro_to_one_shot=round(micro / one_shot, 3),
        with_gx_every_row_to_one_shot=round((micro + gx_cpu["whole"]) / one_shot, 3),
        with_gx_sampled_to_one_shot=round((micro + gx_cpu["sampled"]) / one_shot, 3),
        with_gx_window_to_one_shot=round((micro + gx_cpu["window"]) / one_shot, 3),
        reconciled=bool(done and done.reconciled),
        load_avg_at_end=[round(x, 1) for x in os.getloadavg()],
    )
    if not args:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
