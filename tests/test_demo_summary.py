"""The demo's closing summary: tables a person reads in a log, pointing at the JSON file."""

import io

from lakehouse.demo_summary import print_summary

SUMMARY = {
    "environment": "local",
    "days": 2,
    "drift_injected": {"region": "eu", "from": "2026-10-21"},
    "ingest": "runs",
    "ingest_partitions": 6,
    "ingest_runs": 6,
    "ingest_failed": ["2026-10-02|eu"],
    "bronze": {
        "us": {
            "partitions": 2,
            "landed": 6012,
            "ingested": 5990,
            "quarantined": 20,
            "duplicates_dropped": 2,
        }
    },
    "gold_rows": {"us": 4321},
    "replicas": {
        "gold_daily_demand_replica_azure_eu": {
            "route": "azure-eu (EU) -> aws-us (US)",
            "replica_version": 3,
            "versions_behind": 0,
            "bytes_copied": 3 * 2**20,
            "egress_usd": 0.00025,
        }
    },
    "features": {"partitions": 2, "rows": 999},
    "ml": {
        "first_drift_day": "2026-10-21",
        "retrain_requests": 1,
        "retrain_requests_held_back_by_cooldown": 7,
        "champion": {
            "model": "demand_forecaster",
            "champion": "1",
            "why": "beats naive",
            "latest_challenger": {"version": "2", "decision": "rejected", "why": "worse wape"},
        },
    },
    "stages": {"simulate": 1.25, "ingest": 10.0},
    "seconds": 11.3,
    "summary_file": "/lake/.lake/demo-summary.json",
}


def test_the_summary_is_tables_with_the_counts_and_says_where_the_json_is():
    out = io.StringIO()
    print_summary(SUMMARY, out)
    text = out.getvalue()
    lines = [line.rstrip() for line in text.splitlines()]
    row = next(line for line in lines if line.strip().startswith("us "))
    assert row.split() == ["us", "2", "6,012", "5,990", "20", "2", "4,321"]
    assert any("azure-eu (EU) -> aws-us (US)" in line and "3.0 MB" in line for line in lines)
    assert any("1 requested, 7 held back by the cooldown" in line for line in lines)
    assert any("demand_forecaster v1, promoted because: beats naive" in line for line in lines)
    assert any(line.split()[:4] == ["latest", "challenger", "v2", "rejected:"] for line in lines)
    assert any(line.split() == ["total", "11.3"] for line in lines)
    assert "2026-10-02|eu" in text  # a failed run is named, not hidden
    assert lines[-1] == "summary as JSON: /lake/.lake/demo-summary.json"
    assert "\x1b[" not in text  # a log gets no terminal colours
    assert max(len(line) for line in lines) <= 100


def test_run_emulated_adds_what_the_emulators_hold_and_cannot_serve():
    summary = {
        **SUMMARY,
        "emulated": {
            "spark_roots": {"aws-us": "s3a://lakehouse-aws-us"},
            "mlflow": {
                "tracking_uri": "http://127.0.0.1:5001",
                "artifacts": "s3://lakehouse-aws-us/mlflow",
                "artifact_objects": 18,
            },
            "compute_logs": {"uri": "s3://lakehouse-aws-us/dagster/compute-logs", "objects": 6},
            "not_served_by_emulators": {"azure-eu spark (abfss://)": "no DFS endpoint"},
        },
        "seconds_with_emulators": 603.04,
    }
    out = io.StringIO()
    print_summary(summary, out)
    lines = [line.strip() for line in out.getvalue().splitlines()]
    assert "compute logs 6 objects in s3://lakehouse-aws-us/dagster/compute-logs" in [
        " ".join(line.split()) for line in lines
    ]
    assert "not served azure-eu spark (abfss://): no DFS endpoint" in [
        " ".join(line.split()) for line in lines
    ]
    assert any("18 artifact objects in s3://lakehouse-aws-us/mlflow" in line for line in lines)
    assert lines[-1] == "603.0 s with the emulators' start and stop"


def test_the_health_line_counts_in_words_and_80_columns_keep_every_header():
    from rich.console import Console

    from lakehouse.demo_summary import tables

    health = {"as_of": "2026-10-28", "days": 58, "anomalies": 1}
    health["flagged"] = ["2026-10-23: quarantine_rate of apac"]
    out = io.StringIO()
    console = Console(file=out, width=80, highlight=False)
    for table in tables({**SUMMARY, "health": health}):
        console.print(table)
    text = " ".join(out.getvalue().split())
    assert "1 anomaly flagged (2026-10-23: quarantine_rate of apac)" in text
    assert "…" not in out.getvalue()  # no header cut short
    for header in ("dates", "landed", "ingested", "quarantined", "duplicates", "gold rows"):
        assert header in out.getvalue()
    out = io.StringIO()
    print_summary({**SUMMARY, "health": {**health, "anomalies": 2}}, out)
    assert "2 anomalies flagged" in " ".join(out.getvalue().split())
