"""Partitions shared by the assets: landing date x region."""

from __future__ import annotations

import os

import dagster as dg

from pipelines.config import load_config

# First day the lake holds; LAKEHOUSE_START_DATE moves it (tests and demos use recent days).
START_DATE = os.environ.get("LAKEHOUSE_START_DATE", "2026-09-01")

# end_offset=1: today's partition exists, so the hourly schedule can ingest the current day.
daily = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)
regions = dg.StaticPartitionsDefinition(load_config().region_codes)
date_region = dg.MultiPartitionsDefinition({"date": daily, "region": regions})


def date_region_key(date: str, region: str) -> dg.MultiPartitionKey:
    """The partition key of a (date, region) pair."""
    return dg.MultiPartitionKey({"date": date, "region": region})
