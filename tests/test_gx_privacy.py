"""A failed check of a personal-data table keeps no sample values in Dagster's event log."""

from data_quality.gx import ExpectationOutcome, SuiteOutcome, check_result
from tests.helpers import suites


def _failed(asset: str) -> dict:
    outcome = SuiteOutcome(
        suite=f"{asset}_expectations",
        rows=10,
        outcomes=[
            ExpectationOutcome(
                "expect_column_values_to_match_regex",
                "customer_hash",
                False,
                unexpected_count=1,
                unexpected_percent=10.0,
                unexpected_values=["not-a-hash-but-someones-id"],
            )
        ],
    )
    result = check_result(suites()[asset], outcome)
    assert not result.passed
    return result.metadata["results"].value[0]


def test_personal_data_tables_report_counts_without_sample_values():
    for asset in ("bronze_events", "bronze_quarantine", "silver_events"):
        failed = _failed(asset)
        assert failed["unexpected_count"] == 1
        assert "unexpected_values" not in failed


def test_pii_free_tables_keep_their_samples_for_the_operator():
    assert _failed("gold_daily_demand")["unexpected_values"] == ["not-a-hash-but-someones-id"]
