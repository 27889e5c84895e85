"""The demo's closing summary: tables a person reads in a log, pointing at the JSON file."""

import io

from lakehouse.demo_summary import print_summary

SUMMARY = {
    "environment": "local",
    "days": 2,
    "drift_injected": {"region": "eu", "from": "2026-10-21"},
    "ingest_runs": 6,
    "ingest_runs_failed": ["2026-10-02|eu"],
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
        "champion": {"model": "demand_forecaster", "champion": "1", "why": "beats naive"},
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
    assert any(line.split() == ["total", "11.3"] for line in lines)
    assert "2026-10-02|eu" in text  # a failed run is named, not hidden
    assert lines[-1] == "summary as JSON: /lake/.lake/demo-summary.json"
    assert "\x1b[" not in text  # a log gets no terminal colours
    assert max(len(line) for line in lines) <= 100
