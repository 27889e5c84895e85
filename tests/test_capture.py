"""Capture formats: what a simulator writes, the ingest reads back byte for byte."""

import datetime as dt

import pytest

from pipelines.ingest import capture
from pipelines.lake.config import load_config

RECORDS = [b'{"a":1}', b'{"b":"\xc3\xa9"}', b"not json at all"]


@pytest.mark.parametrize("name", ["aws-us", "azure-eu", "gcp-apac"])
def test_roundtrip(name):
    landing = load_config("local").location(name).landing
    batch = capture.Batch(dt.datetime(2026, 10, 5, 13, 15, tzinfo=dt.UTC), RECORDS)
    assert capture.decode(landing, capture.encode(landing, batch, 3)) == RECORDS


@pytest.mark.parametrize("name", ["aws-us", "azure-eu", "gcp-apac"])
def test_truncated_object_is_corrupt(name):
    landing = load_config("local").location(name).landing
    batch = capture.Batch(dt.datetime(2026, 10, 5, 13, tzinfo=dt.UTC), RECORDS * 50)
    data = capture.encode(landing, batch, 1)
    with pytest.raises(capture.CorruptObjectError):
        capture.decode(landing, data[: len(data) // 2])


def test_object_keys_follow_each_service_layout():
    cfg = load_config("local")
    t = dt.datetime(2026, 10, 5, 13, 15, 0, tzinfo=dt.UTC)
    fh = capture.object_key(cfg.location("aws-us").landing, capture.Batch(t, []), 7)
    eh = capture.object_key(cfg.location("azure-eu").landing, capture.Batch(t, [], partition=1), 7)
    ps = capture.object_key(cfg.location("gcp-apac").landing, capture.Batch(t, []), 7)
    assert fh == "landing/firehose/2026/10/05/13/demand-events-1-2026-10-05-13-15-00-00000007.gz"
    assert eh == "landing/capture/lakehouse-eu/demand-events/1/2026/10/05/13/15/00.avro"
    assert (
        ps
        == "landing/pubsub/2026/10/05/13/demand-events-sub_2026-10-05T13:15:00+00:00_00000007.avro"
    )
    for loc, key in (("aws-us", fh), ("azure-eu", eh), ("gcp-apac", ps)):
        assert capture.landing_date_of(cfg.location(loc).landing, key) == dt.date(2026, 10, 5)
