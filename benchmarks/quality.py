"""Cost of the Great Expectations checks: validating a 1,000,000-row bronze partition.

Prints one JSON object as its last line: rows, seconds, rows_per_s, plus the floor of the
same checks written by hand with pyarrow.compute (what a user could do without GX).
"""

import datetime as dt
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc

from data_quality import gx
from data_quality.suites import build_suites
from pipelines import capture
from pipelines.config import load_config
from pipelines.events import BRONZE_SCHEMA
from pipelines.ingest import ingest_objects
from pipelines.simulate import SimulationConfig, generate_day, to_records

DAY = dt.date(2026, 10, 5)


def _bronze(rows: int) -> pa.Table:
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=int(rows * 1.2), stores=200, skus=500)
    records = to_records(generate_day(sim, "us", DAY, "USD"))
    landing = load_config("local").location("aws-us").landing
    batch = capture.Batch(dt.datetime(2026, 10, 5, tzinfo=dt.UTC), records)
    return ingest_objects([("k.gz", capture.encode(landing, batch, 0))], landing, "us", DAY).bronze


def _by_hand(t: pa.Table) -> bool:
    ok = [
        set(t.column_names) == set(BRONZE_SCHEMA.names),
        t["event_id"].null_count == 0,
        pc.count_distinct(t["event_id"]).as_py() == t.num_rows,
        t["event_ts"].null_count == 0
        and t["sku"].null_count == 0
        and t["unit_price"].null_count == 0,
        pc.all(pc.is_in(t["region"], pa.array(["us", "eu", "apac"]))).as_py(),
        pc.all(pc.is_in(t["currency"], pa.array(["USD", "EUR", "SGD"]))).as_py(),
        pc.min(t["store_id"]).as_py() >= 1 and pc.max(t["store_id"]).as_py() <= 100_000,
        pc.min(t["quantity"]).as_py() >= 0,
        pc.min(t["unit_price"]).as_py() > 0,
    ]
    return all(ok)


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    table = _bronze(rows)
    suite = build_suites(load_config("local"))["bronze_events"]
    t = time.perf_counter()
    gx.validate(suite, table.slice(0, 1000), {"expected_rows": 1000})
    warmup_s = time.perf_counter() - t
    t = time.perf_counter()
    outcome = gx.validate(suite, table, {"expected_rows": table.num_rows})
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    hand_ok = _by_hand(table)
    hand_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "rows": table.num_rows,
                "expectations": len(outcome.outcomes),
                "passed": outcome.success,
                "seconds": round(seconds, 3),
                "rows_per_s": round(table.num_rows / seconds),
                "first_call_s": round(warmup_s, 2),
                "by_hand_pyarrow_s": round(hand_s, 3),
                "by_hand_passed": hand_ok,
                "gx_overhead_x": round(seconds / hand_s, 1),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
