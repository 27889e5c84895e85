"""Ingestion throughput: 1M+ Firehose NDJSON events into bronze Delta, against plain Spark.

Prints one JSON object as its last line: events, seconds, events_per_s, spark_events_per_s,
speedup_vs_spark, reconciled. Spark's figure excludes its session start (reported apart).
"""

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pipelines.config import load_config
from pipelines.ingest import ingest_partition
from pipelines.simulate import SimulationConfig, land_day
from pipelines.storage import open_storage

DAY = dt.date(2026, 10, 5)


def main() -> None:
    events = int(os.environ.get("BENCH_EVENTS", "1000000"))
    home = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    os.environ["LAKEHOUSE_HOME"] = str(home)
    try:
        loc = load_config("local").location("aws-us")
        sim = SimulationConfig(
            start=DAY,
            end=DAY,
            events_per_day=int(events * 1.2),
            objects_per_day=48,
            late_share=0.0,
            bad_rate=0.0005,
            stores=200,
            skus=500,
        )
        t = time.perf_counter()
        report = land_day(sim, loc, open_storage(loc.root_uri()), DAY, "USD")
        gen_s = time.perf_counter() - t
        landed_mb = sum(o.size for o in open_storage(loc.root_uri()).list("landing/")) / 1e6

        t = time.perf_counter()
        done = ingest_partition(loc, {}, DAY)
        ours_s = time.perf_counter() - t
        res = done.result

        from pipelines.spark import build_session

        t = time.perf_counter()
        spark = build_session("local[2]", app_name="bench-ingest")
        spark_start_s = time.perf_counter() - t
        src = str(home / ".lake/aws-us/landing/firehose/2026/10/05/*/*.gz")
        t = time.perf_counter()
        df = spark.read.json(src)
        df.write.format("delta").mode("overwrite").save(str(home / "spark_bronze"))
        spark_s = time.perf_counter() - t
        spark_rows = spark.read.format("delta").load(str(home / "spark_bronze")).count()
        spark.stop()

        out = {
            "events": report.records,
            "landed_mb_gzip": round(landed_mb, 1),
            "objects": report.objects,
            "seconds": round(ours_s, 3),
            "events_per_s": round(report.records / ours_s),
            "ingested": res.ingested,
            "quarantined": res.quarantined,
            "duplicates_dropped": res.duplicates,
            "reconciled": res.reconciled,
            "spark_seconds": round(spark_s, 3),
            "spark_start_s": round(spark_start_s, 1),
            "spark_rows_written": spark_rows,
            "spark_events_per_s": round(report.records / spark_s),
            "speedup_vs_spark": round(spark_s / ours_s, 2),
            "generate_s": round(gen_s, 1),
            "note": "spark: plain spark.read.json (schema inferred) then a Delta write; "
            "no validation, dedupe or quarantine",
        }
        print(json.dumps(out))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
