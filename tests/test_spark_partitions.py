"""A single-run backfill's partition keys become one date range per region."""

import datetime as dt

import dagster as dg

from assets.partitions import contiguous_ranges, date_ranges_by_region
from pipelines.lake.config import load_config
from pipelines.spark import jobs as spark_jobs


def d(n: int) -> dt.date:
    return dt.date(2026, 10, n)


def test_keys_of_a_range_fold_into_one_range_per_region():
    keys = [dg.MultiPartitionKey({"date": f"2026-10-{n:02d}", "region": r})
            for n in range(1, 32) for r in ("us", "eu")]  # fmt: skip
    keys.append(dg.MultiPartitionKey({"date": "2026-10-05", "region": "apac"}))
    assert date_ranges_by_region(keys) == {
        "apac": [(d(5), d(5))],
        "eu": [(d(1), d(31))],
        "us": [(d(1), d(31))],
    }
    assert date_ranges_by_region(["2026-10-02|us", "2026-10-01|us"]) == {"us": [(d(1), d(2))]}


def test_gaps_split_ranges():
    assert contiguous_ranges([d(3), d(1), d(2), d(7), d(7)]) == [(d(1), d(3)), (d(7), d(7))]


def test_feature_inputs_are_home_table_and_replicas(lake_home):
    cfg = load_config("local")
    inputs = {i.location: i.uri for i in spark_jobs.feature_inputs(cfg)}
    home = cfg.home
    assert inputs[home.name] == home.table_uri("gold_daily_demand")
    for name in set(cfg.locations) - {home.name}:
        assert inputs[name] == home.replica_uri("gold_daily_demand", name)


def test_replace_predicate_names_exactly_the_range():
    assert spark_jobs.date_range_predicate(d(1), d(31), "eu") == (
        "date >= DATE '2026-10-01' AND date <= DATE '2026-10-31' AND region = 'eu'"
    )
