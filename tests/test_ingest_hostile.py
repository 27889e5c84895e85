"""Hostile and careless input, one class at a time: quarantined with a reason, never a crash.

Each test lands its own objects in a local lake (tmp_path), runs the real partition ingest and
reads the Delta tables back with deltalake, checking every commit is strict JSON.
"""

import bz2
import dataclasses
import datetime as dt
import decimal
import functools
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cramjam
import fastavro
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from backports import zstd

from pipelines.ingest import batch, capture, parse
from pipelines.ingest import partition as ingest
from pipelines.ingest.events import BRONZE_SCHEMA, RecordRules, record_rules
from pipelines.ingest.landing import landing_listing, landing_objects
from pipelines.lake.config import load_config
from pipelines.lake.storage import ObjectInfo, open_storage
from tests.helpers import DAY, assert_readable, deflate_zeros, gzip_bomb, suites

TS = "2026-10-05T01:00:00Z"
REGION_OF = {"aws-us": "us", "azure-eu": "eu", "gcp-apac": "apac"}
CURRENCY_OF = {"aws-us": "USD", "azure-eu": "EUR", "gcp-apac": "SGD"}


def event(i: int, location: str = "aws-us", **changes: object) -> dict:
    base = {
        "event_id": f"e{i}",
        "event_ts": TS,
        "region": REGION_OF[location],
        "store_id": 1 + i % 50,
        "sku": f"SKU-{i % 7}",
        "quantity": 1 + i % 3,
        "unit_price": 2.5,
        "currency": CURRENCY_OF[location],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def put_records(location: str, records: list[bytes], n: int = 0, codec: str = "deflate") -> str:
    """Land records as one object of the location's capture format; returns its key."""
    loc = load_config().location(location)
    batch = capture.Batch(dt.datetime(2026, 10, 5, 1, n, tzinfo=dt.UTC), records)
    key = capture.object_key(loc.landing, batch, n)
    data = capture.encode(loc.landing, batch, n, codec=codec)
    open_storage(loc.root_uri()).put(key, data)
    return key


def run(location: str) -> ingest.PartitionIngest:
    loc = load_config().location(location)
    return ingest.ingest_partition(loc, loc.storage_options(), DAY)


def reasons_of(done: ingest.PartitionIngest) -> dict[str, str]:
    """Quarantine reason per event id (or per raw record when it has no readable id)."""
    out = {}
    for row in done.result.quarantine.to_pylist():
        try:
            key = json.loads(row["raw"]).get("event_id", row["raw"].decode())
        except (ValueError, AttributeError, RecursionError):
            key = row["raw"][:40]
        out[key] = row["reason"]
    return out


# --- 1. non-finite numbers (and other numbers and names Arrow refuses) ------------------------


HOSTILE_FIELDS = {
    "nan": (b'"unit_price":NaN', "non_finite_number:unit_price"),
    "inf": (b'"unit_price":Infinity', "non_finite_number:unit_price"),
    "-inf": (b'"unit_price":-Infinity', "non_finite_number:unit_price"),
    "huge": (b'"unit_price":1e999', "non_finite_number:unit_price"),
    "-huge": (b'"unit_price":-1e999', "non_finite_number:unit_price"),
    "store_nan": (b'"store_id":NaN', "non_finite_number:store_id"),
    "store_inf": (b'"store_id":Infinity', "non_finite_number:store_id"),
    "dup_price": (b'"unit_price":1,"unit_price":2', "duplicate_field:unit_price"),
    "dup_extra": (b'"x":1,"x":2', "duplicate_field:_rescued_data"),
    "qty_nan": (b'"quantity":-Infinity', "non_finite_number:quantity"),
    "qty_huge": (b'"quantity":1e400', "non_finite_number:quantity"),
    "qty_2^63": (b'"quantity":9223372036854775808', "number_out_of_range:quantity"),
    "extra_nan": (b'"discount":NaN', "non_finite_number:_rescued_data"),
    "nested_inf": (b'"meta":{"w":[1,Infinity]}', "non_finite_number:_rescued_data"),
    "extra_huge": (b'"discount":-1e999', "non_finite_number:_rescued_data"),
    "price_text": (b'"unit_price":"NaN"', "wrong_type:unit_price"),
}


@pytest.mark.parametrize("location", ["aws-us", "azure-eu", "gcp-apac"])
def test_non_finite_numbers_are_quarantined_and_both_tables_stay_strict_json(lake_home, location):
    bad = []
    for i, (kind, (fragment, _)) in enumerate(HOSTILE_FIELDS.items()):
        obj = event(1000 + i, location, event_id=kind)
        field = fragment.split(b":")[0].strip(b'"').decode()
        obj.pop(field, None)
        bad.append(line(obj)[:-1] + b"," + fragment + b"}")
    good = [line(event(i, location)) for i in range(20)]
    put_records(location, good[:10] + bad + good[10:])
    done = run(location)
    assert {k: v for k, v in reasons_of(done).items()} == {
        kind: why for kind, (_, why) in HOSTILE_FIELDS.items()
    }
    assert done.result.ingested == 20 and done.result.reconciled
    bronze = assert_readable(done.bronze_uri)
    assert pc.all(pc.is_finite(bronze["unit_price"])).as_py()
    assert assert_readable(done.quarantine_uri).num_rows == len(HOSTILE_FIELDS)
    # a later clean partition of the same table still commits and reads
    again = run(location)
    assert assert_readable(again.bronze_uri).num_rows == 20


# --- 2. the record rules and the blocking suite agree ---------------------------------------


SUITE_BREAKERS = {
    "price_zero": ({"unit_price": 0}, "non_positive_price"),
    "price_negative": ({"unit_price": -0.01}, "non_positive_price"),
    "price_null": ({"unit_price": None}, "missing_field:unit_price"),
    "price_absent": ({"unit_price": DROP}, "missing_field:unit_price"),
    "currency_unknown": ({"currency": "XXX"}, "unknown_currency"),
    "currency_lower": ({"currency": "usd"}, "unknown_currency"),
    "currency_null": ({"currency": None}, "missing_field:currency"),
    "store_zero": ({"store_id": 0}, "store_id_out_of_range"),
    "store_high": ({"store_id": 100_001}, "store_id_out_of_range"),
    "store_negative": ({"store_id": -5}, "store_id_out_of_range"),
    "store_null": ({"store_id": None}, "missing_field:store_id"),
    "region_other": ({"region": "eu"}, "wrong_region"),
    "region_unknown": ({"region": "mars"}, "wrong_region"),
    "sku_null": ({"sku": None}, "missing_field:sku"),
    "sku_blank": ({"sku": "  "}, "missing_field:sku"),
    "quantity_negative": ({"quantity": -1}, "negative_quantity"),
    "ts_null": ({"event_ts": None}, "missing_field:event_ts"),
    "ts_blank": ({"event_ts": ""}, "missing_field:event_ts"),
    "ts_spaces": ({"event_ts": "  ", "quantity": -1}, "missing_field:event_ts"),
    "region_blank": ({"region": " ", "store_id": 0}, "missing_field:region"),
    "currency_blank": ({"currency": "", "quantity": -2}, "missing_field:currency"),
    "id_and_sku_blank": ({"sku": "\t"}, "missing_field:sku"),
}


def _passes(expectation, table: pa.Table) -> bool:
    """The bronze suite's expectations, evaluated with Arrow (the suite is plain data)."""
    kw = expectation.kwargs
    kind = expectation.type
    column = table[kw["column"]] if "column" in kw else None
    if kind == "ExpectTableColumnsToMatchSet":
        return set(table.column_names) == set(kw["column_set"])
    if kind == "ExpectTableRowCountToEqual":
        return True  # the reconciliation's, checked apart
    if kind == "ExpectColumnValuesToNotBeNull":
        return column.null_count == 0
    if kind == "ExpectColumnValuesToBeUnique":
        return pc.count_distinct(column).as_py() == len(column) - column.null_count
    if kind == "ExpectColumnValuesToBeInSet":
        return pc.all(pc.is_in(column.drop_null(), pa.array(kw["value_set"]))).as_py() in (
            True,
            None,
        )
    if kind == "ExpectColumnValuesToBeBetween":
        values, ok = column.drop_null(), True
        if "min_value" in kw:
            above = pc.greater if kw.get("strict_min") else pc.greater_equal
            ok = ok and pc.all(above(values, kw["min_value"])).as_py() in (True, None)
        if "max_value" in kw:
            ok = ok and pc.all(pc.less_equal(values, kw["max_value"])).as_py() in (True, None)
        return ok
    raise AssertionError(f"the test does not know {kind}; add it")


def test_what_the_blocking_suite_rejects_is_quarantined_record_by_record(lake_home):
    records = [line(event(i)) for i in range(30)]
    for i, (kind, (changes, _)) in enumerate(SUITE_BREAKERS.items()):
        records.append(line(event(100 + i, event_id=kind, **changes)))
    put_records("aws-us", records)
    done = run("aws-us")
    assert reasons_of(done) == {kind: why for kind, (_, why) in SUITE_BREAKERS.items()}
    bronze = assert_readable(done.bronze_uri)
    assert bronze.num_rows == 30
    suite = suites()["bronze_events"]
    failed = [e.type + str(e.kwargs) for e in suite.expectations if not _passes(e, bronze)]
    assert failed == []


def test_record_rules_come_from_the_configuration():
    cfg = load_config("local")
    rules = record_rules(cfg)
    assert set(rules.regions) == {"us", "eu", "apac"}
    assert set(rules.currencies) == {"USD", "EUR", "SGD"}
    more = dataclasses.replace(cfg, regions={**cfg.regions, "latam": {"currency": "BRL"}})
    assert "BRL" in record_rules(more).currencies
    with pytest.raises(ValueError, match="every region needs a currency"):
        record_rules(dataclasses.replace(cfg, regions={"us": {"country": "US"}}))
    with pytest.raises(ValueError, match="store_id_min"):
        RecordRules(("us",), ("USD",), store_id_min=5, store_id_max=1)
    with pytest.raises(ValueError, match="blank"):
        RecordRules(("us",), ("USD", " "))


def test_rules_passed_to_the_ingest_are_the_ones_applied(lake_home):
    records = [line(event(i, store_id=500 + i)) for i in range(4)]
    put_records("aws-us", records)
    loc = load_config().location("aws-us")
    narrow = dataclasses.replace(record_rules(load_config()), store_id_max=501)
    done = ingest.ingest_partition(loc, {}, DAY, rules=narrow)
    assert done.result.ingested == 2
    assert done.result.reasons == {"store_id_out_of_range": 2}


# --- 3. timestamps Python and Arrow cannot hold ----------------------------------------------


EDGE_TIMES = [
    "0001-01-01T00:00:00+01:00",  # UTC instant in year 0
    "0001-01-01T00:30:00+00:31",
    "9999-12-31T23:59:59-14:00",  # UTC instant in year 10000
    "9999-12-31T23:59:59.999999-00:01",
    "+12345-01-01T00:00:00Z",
    "99999-12-31T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
]


@pytest.mark.parametrize("with_garbage", [False, True])  # True: Python's parser reads them all
def test_timestamps_outside_the_calendar_are_bad_timestamps(lake_home, with_garbage):
    records = [line(event(i)) for i in range(5)]
    records += [line(event(100 + i, event_ts=t)) for i, t in enumerate(EDGE_TIMES)]
    if with_garbage:
        records.append(line(event(99, event_ts="yesterday-ish")))
    put_records("aws-us", records)
    done = run("aws-us")
    assert done.result.reasons == {"bad_timestamp": len(EDGE_TIMES) + with_garbage}
    assert done.result.ingested == 5 and done.result.reconciled
    assert len(assert_readable(done.bronze_uri)["event_ts"].to_pylist()) == 5  # Python holds them


def test_the_first_and_last_instants_of_the_calendar_are_valid_times():
    rows = pa.Table.from_pylist(
        [
            event(1, event_ts="0001-01-01T00:00:00Z"),
            event(2, event_ts="0001-01-01T01:00:00+01:00"),
        ],
        schema=parse.PARSED_SCHEMA,
    )
    _, why = parse.validate(rows, "us", DAY)
    assert why.tolist() == ["", ""]


def test_a_time_without_offset_is_utc_whatever_the_machines_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        rows = pa.Table.from_pylist(
            [event(1, event_ts="2026-10-05T01:00:00"), event(2, event_ts="2026-10-05 02:30")],
            schema=parse.PARSED_SCHEMA,
        )
        parsed, why = parse.validate(rows, "us", DAY)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert why.tolist() == ["", ""]
    assert [t.isoformat() for t in parsed["event_ts"].to_pylist()] == [
        "2026-10-05T01:00:00+00:00",
        "2026-10-05T02:30:00+00:00",
    ]


# --- 4. deep nesting, and object names that are not UTF-8 -----------------------------------


DEEP = {
    "array_30k": b'{"event_id":"a","x":' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "object_5k": b'{"event_id":"b","x":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
    "known_field": b'{"event_id":' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    "depth_65": b'{"event_id":"c","x":' + b"[" * 64 + b"]" * 64 + b"}",
    "pretty": b'{\n "event_id": "d",\n "x": ' + b"[\n" * 3000 + b"]\n" * 3000 + b"}",
}


@pytest.mark.parametrize("location", ["aws-us", "azure-eu", "gcp-apac"])
def test_deeply_nested_records_are_quarantined_not_a_recursion_error(lake_home, location):
    records = [line(event(i, location)) for i in range(6)]
    deep = list(DEEP.values()) if location != "aws-us" else [DEEP[k] for k in DEEP if k != "pretty"]
    put_records(location, records[:3] + deep + records[3:])
    done = run(location)
    assert done.result.reasons == {"too_deeply_nested": len(deep)}
    assert done.result.ingested == 6 and done.result.reconciled
    assert sorted(done.result.quarantine["raw"].to_pylist()) == sorted(deep)
    assert_readable(done.quarantine_uri)


def test_depth_64_is_still_kept_with_its_field_rescued(lake_home):
    put_records("aws-us", [line(event(0))[:-1] + b',"x":' + b"[" * 63 + b"]" * 63 + b"}"])
    done = run("aws-us")
    assert done.result.ingested == 1, done.result.reasons
    assert json.loads(done.result.bronze["_rescued_data"][0].as_py())["x"] == json.loads(
        b"[" * 63 + b"]" * 63
    )


def test_an_object_named_in_bytes_that_are_not_utf8_is_quarantined_and_the_rest_ingested(
    lake_home,
):
    key = put_records("aws-us", [line(event(i)) for i in range(5)])
    loc = load_config().location("aws-us")
    folder = os.path.dirname(os.path.join(loc.root_uri(), key)).encode()
    body = gzip.compress(line(event(77)) + b"\n")
    with open(folder + b"/odd-\xff\xfe-name.gz", "wb") as fh:
        fh.write(body)
    listed = landing_objects(open_storage(loc.root_uri()), loc.landing, DAY)
    assert len(listed) == 2
    done = run("aws-us")
    assert done.result.ingested == 5 and done.result.reconciled
    (row,) = done.result.quarantine.to_pylist()
    assert row["reason"] == "invalid_object_name" and row["record_index"] == -1
    assert row["source_object"].endswith("odd-\\xff\\xfe-name.gz")
    assert row["raw"] == body
    assert_readable(done.quarantine_uri)


def test_local_storage_lists_every_name_when_one_is_not_utf8(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "fine.txt").write_bytes(b"1")
    with open(os.fsencode(tmp_path / "a") + b"/bad\xe9.txt", "wb") as fh:
        fh.write(b"22")
    store = open_storage(str(tmp_path))
    infos = list(store.list("a/"))
    assert [i.size for i in infos] == [2, 1]
    assert infos[1].path == "a/fine.txt"
    assert store.get(infos[0].path) == b"22"
    assert b"".join(store.read_chunks(infos[0].path)) == b"22"
    assert store.list_dirs("") == ["a"]


# --- 5. decompression bombs -----------------------------------------------------------------


def avro_bomb(location: str, codec: str, compressed: bytes, count: int = 10) -> bytes:
    """A capture container whose one block claims ``count`` records and inflates hugely."""
    schema = capture.EVENTHUBS_SCHEMA if location == "azure-eu" else capture.PUBSUB_SCHEMA
    buf = io.BytesIO()
    fastavro.writer(buf, schema, [], codec=codec)
    header = buf.getvalue()
    sync = header[-16:]
    return header + capture._zigzag(count) + capture._zigzag(len(compressed)) + compressed + sync


BOMB = 64 << 20  # inflated size of each test bomb; the bound is lowered to 4 MiB below
LIMIT = 4 << 20


@functools.cache
def _codec_bombs() -> dict[str, bytes]:
    zeros = bytes(BOMB)
    snappy = bytes(cramjam.snappy.compress_raw(zeros))
    return {
        "deflate": deflate_zeros(BOMB),
        "snappy": snappy + zlib.crc32(zeros).to_bytes(4, "big"),
        "bzip2": bz2.compress(zeros, 9),
        "xz": lzma.compress(zeros),
        "zstandard": zstd.compress(zeros, 19),
        "null": zeros[: LIMIT + 1],
    }


@pytest.fixture
def small_bound(monkeypatch):
    monkeypatch.setattr(capture, "MAX_OBJECT_BYTES", LIMIT)
    monkeypatch.setattr(batch, "MAX_QUARANTINE_RAW_BYTES", 64 * 1024)


def test_a_gzip_bomb_is_quarantined_whole_and_the_partitions_good_objects_ingested(
    lake_home, small_bound
):
    put_records("aws-us", [line(event(i)) for i in range(8)], n=1)
    loc = load_config().location("aws-us")
    store = open_storage(loc.root_uri())
    bomb = gzip_bomb(BOMB)
    store.put("landing/firehose/2026/10/05/02/bomb.gz", bomb)
    members = gzip.compress(bytes(1 << 20)) * 8  # many members, each small: the same bound
    store.put("landing/firehose/2026/10/05/03/members.gz", members)
    put_records("aws-us", [line(event(100 + i)) for i in range(8)], n=4)
    done = run("aws-us")
    assert done.result.ingested == 16 and done.result.reconciled
    assert done.result.reasons == {f"object_too_large:inflated>{LIMIT}": 2}
    rows = {r["source_object"]: r for r in done.result.quarantine.to_pylist()}
    assert rows["landing/firehose/2026/10/05/02/bomb.gz"]["raw"] == bomb[: 64 * 1024]
    assert rows["landing/firehose/2026/10/05/03/members.gz"]["record_index"] == -1


@pytest.mark.parametrize("location", ["azure-eu", "gcp-apac"])
@pytest.mark.parametrize("codec", ["deflate", "snappy", "bzip2", "xz", "zstandard", "null"])
def test_an_avro_bomb_in_any_codec_is_quarantined_whole(lake_home, small_bound, location, codec):
    put_records(location, [line(event(i, location)) for i in range(5)], n=1)
    loc = load_config().location(location)
    key = capture.object_key(loc.landing, capture.Batch(dt.datetime(2026, 10, 5, 2), []), 2)
    open_storage(loc.root_uri()).put(key, avro_bomb(location, codec, _codec_bombs()[codec]))
    done = run(location)
    assert done.result.ingested == 5 and done.result.reconciled
    what = "landed" if codec == "null" else "inflated"  # null blocks are as big landed
    assert done.result.reasons == {f"object_too_large:{what}>{LIMIT}": 1}


def test_an_object_over_the_bound_as_landed_is_not_read_whole(lake_home, small_bound, monkeypatch):
    loc = load_config().location("gcp-apac")
    loc = dataclasses.replace(loc, landing=dataclasses.replace(loc.landing, format="pubsub_text"))
    big = b"\n".join(line(event(i, "gcp-apac")) for i in range(40_000))
    assert len(big) > LIMIT
    store = open_storage(loc.root_uri())
    store.put("landing/pubsub/2026/10/05/01/sub_2026-10-05T01:00:00+00:00_1.json", big)
    store.put("landing/pubsub/2026/10/05/02/sub_2026-10-05T02:00:00+00:00_2.json", big[:2000])
    read: list[str] = []
    original_get = type(store).get
    monkeypatch.setattr(type(store), "get", lambda self, p: read.append(p) or original_get(self, p))
    done = ingest.ingest_partition(loc, {}, DAY)
    assert done.result.reasons[f"object_too_large:landed>{LIMIT}"] == 1
    assert done.result.ingested > 0 and done.result.reconciled
    assert [p for p in read if p.endswith("_1.json")] == []  # only its head was streamed
    (whole,) = [r for r in done.result.quarantine.to_pylist() if r["record_index"] == -1]
    assert whole["raw"] == big[: 64 * 1024]


def test_decode_stops_at_the_bound_whatever_the_header_claims():
    landing = load_config("local").location("azure-eu").landing
    zeros = bytes(LIMIT * 2)
    lying = bytes(cramjam.snappy.compress_raw(zeros))
    with pytest.raises(capture.ObjectTooLargeError, match=f"inflated>{LIMIT}"):
        capture.decode_records(landing, avro_bomb("azure-eu", "snappy", lying + b"\0" * 4), LIMIT)
    good = capture.encode(landing, capture.Batch(dt.datetime(2026, 10, 5), [b"{}"] * 3), 1)
    assert capture.decode_records(landing, good, LIMIT).to_list() == [b"{}"] * 3
    with pytest.raises(capture.ObjectTooLargeError, match="landed>10"):
        capture.decode_records(landing, good, 10)


# --- 6. Event Hubs partitions beyond the configured count ----------------------------------


def test_event_hubs_partitions_beyond_the_configured_count_are_listed_and_reported(lake_home):
    loc = load_config().location("azure-eu")
    assert loc.landing.options["partitions"] == 2
    store = open_storage(loc.root_uri())
    keys = []
    for part in (0, 1, 2, 11):
        records = [line(event(part * 10 + i, "azure-eu")) for i in range(3)]
        batch = capture.Batch(dt.datetime(2026, 10, 5, 3, tzinfo=dt.UTC), records)
        data = capture.encode(loc.landing, batch, part)
        key = f"landing/capture/lakehouse-eu/demand-events/{part}/2026/10/05/03/00/00.avro"
        store.put(key, data)
        keys.append(key)
    store.put("landing/capture/lakehouse-eu/demand-events/11/2026/10/06/03/00/00.avro", data)
    assert sorted(landing_objects(store, loc.landing, DAY)) == sorted(keys)
    assert capture.landing_date_of(loc.landing, keys[-1]) == DAY
    done = run("azure-eu")
    assert done.result.ingested == 12 and done.result.reconciled
    assert done.result.unconfigured_streams == [
        "landing/capture/lakehouse-eu/demand-events/11",
        "landing/capture/lakehouse-eu/demand-events/2",
    ]
    assert done.report()["unconfigured_streams"] == done.result.unconfigured_streams
    assert set(done.result.bronze["source_object"].to_pylist()) == set(keys)


# --- 7. empty and blank event ids -------------------------------------------------------------


@pytest.mark.parametrize("location", ["aws-us", "azure-eu"])
def test_blank_event_ids_are_quarantined_not_counted_as_duplicates(lake_home, location):
    blank = ["", " ", "  ", "\t", "\u3000"]
    records = [line(event(i, location, event_id=b, sku=f"S{i}")) for i, b in enumerate(blank)]
    records += [line(event(50, location))] * 2  # a real duplicate, for contrast
    put_records(location, records)
    done = run(location)
    assert done.result.duplicates == 1
    assert done.result.reasons == {"missing_field:event_id": len(blank)}
    assert sorted(done.result.quarantine["raw"].to_pylist()) == sorted(records[: len(blank)])
    assert done.result.ingested == 1 and done.result.reconciled


# --- 8. every Avro codec the spec names -----------------------------------------------------


@pytest.mark.parametrize("location", ["azure-eu", "gcp-apac"])
@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "bzip2", "xz", "zstandard"])
def test_capture_avro_in_every_codec_is_ingested(lake_home, location, codec):
    records = [line(event(i, location)) for i in range(300)]
    put_records(location, records, codec=codec)
    done = run(location)
    assert done.result.ingested == 300 and done.result.quarantined == 0
    assert sorted(assert_readable(done.bronze_uri)["event_id"].to_pylist()) == sorted(
        f"e{i}" for i in range(300)
    )


def test_a_codec_outside_the_spec_is_a_corrupt_object_naming_it():
    landing = load_config("local").location("gcp-apac").landing
    data = capture.encode(landing, capture.Batch(dt.datetime(2026, 10, 5), [b"{}"]), 1, "null")
    odd = data.replace(b"\x14avro.codec\x08null", b"\x14avro.codec\x06lz4", 1)
    with pytest.raises(capture.CorruptObjectError, match="codec 'lz4'"):
        capture.decode_records(landing, odd)


BODY_TYPES = [
    "long",  # a long body n was read as bytes(n): n zero bytes past every bound
    ["null", "long"],
    "string",
    {"type": "bytes", "logicalType": "decimal", "precision": 4},
    {"type": "fixed", "name": "F", "size": 4},
]


@pytest.mark.parametrize("location", ["azure-eu", "gcp-apac"])
@pytest.mark.parametrize("body", [*BODY_TYPES, None], ids=str)
def test_an_avro_file_of_another_writer_schema_is_a_corrupt_object_naming_the_field(location, body):
    landing = load_config("local").location(location).landing
    name = "Body" if landing.format == "eventhubs_capture" else "data"
    field = {"name": name if body is not None else "other", "type": body or "long"}
    value = {"long": 2**33, "string": "{}"}.get(str(body), 2**33)
    if isinstance(body, dict):
        value = b"\0\0\0\1" if body["type"] == "fixed" else decimal.Decimal(15)
    schema = fastavro.parse_schema({"type": "record", "name": "X", "fields": [field]})
    buf = io.BytesIO()
    fastavro.writer(buf, schema, [{field["name"]: value}])
    want = f"writer schema has no '{name}'" if body is None else f"'{name}' is .*, not bytes"
    with pytest.raises(capture.CorruptObjectError, match=want):
        capture.decode_records(landing, buf.getvalue())


# --- 9. unknown fields are rescued, never dropped silently ----------------------------------


@pytest.mark.parametrize("location", ["aws-us", "azure-eu", "gcp-apac"])
def test_unknown_fields_are_kept_in_rescued_data_and_counted(lake_home, location):
    records = [line(event(i, location)) for i in range(4)]
    records.append(line({**event(10, location), "phone": "+49 30 1234", "ssn": "078-05-1120"}))
    records.append(line({**event(11, location), "Customer_ID": "C-9", "customer_id": "c-9"}))
    records.append(line({**event(12, location), "meta": {"tags": ["a", None]}, "n": None}))
    put_records(location, records)
    done = run(location)
    assert done.result.ingested == 7 and done.result.reconciled
    bronze = assert_readable(done.bronze_uri).sort_by("event_id")
    assert bronze.schema.names == BRONZE_SCHEMA.names
    rescued = dict(
        zip(bronze["event_id"].to_pylist(), bronze["_rescued_data"].to_pylist(), strict=False)
    )
    assert {k: v for k, v in rescued.items() if v is not None} == {
        "e10": '{"phone":"+49 30 1234","ssn":"078-05-1120"}',
        "e11": '{"Customer_ID":"C-9"}',
        "e12": '{"meta":{"tags":["a",null]},"n":null}',
    }
    assert bronze.filter(pc.equal(bronze["event_id"], "e11"))["customer_id"].to_pylist() == ["c-9"]
    report = done.report()
    assert report["records_with_rescued_data"] == 3
    assert report["rescued_fields"] == {
        "Customer_ID": 1,
        "meta": 1,
        "n": 1,
        "phone": 1,
        "ssn": 1,
    }


# --- 10. blank lines, and floods of records that are blank or bad ---------------------------


def test_blank_ndjson_lines_are_counted_not_records_and_lines_keep_their_positions(lake_home):
    good = [line(event(i)) for i in range(3)]
    lines = [good[0], b"", b"   ", good[1], b"\r", b"{not json", b"\t \x0c", good[2], b"[1]"]
    loc = load_config().location("aws-us")
    key = "landing/firehose/2026/10/05/01/blank-lines.gz"
    open_storage(loc.root_uri()).put(key, gzip.compress(b"\n".join(lines) + b"\n"))
    done = run("aws-us")
    res = done.result
    assert res.ingested == 3 and res.landed == 5 and res.reconciled
    assert res.reasons == {"malformed_json": 1, "malformed_json: not an object": 1}
    # record_index stays the line's position in the object, blank lines counted in
    assert [(r["record_index"], r["raw"]) for r in res.quarantine.to_pylist()] == [
        (5, b"{not json"),
        (8, b"[1]"),
    ]
    report = done.report()
    assert report["blank_lines"] == 4 and report["blank_lines_by_object"] == {key: 4}
    (entry,) = done.objects  # the ledger counts records only: blank lines are none
    assert (entry.records, entry.ingested, entry.quarantined) == (5, 3, 2)


def test_an_avro_message_with_an_empty_body_is_still_an_empty_record(lake_home):
    put_records("gcp-apac", [line(event(1, "gcp-apac")), b"", b"  "])
    done = run("gcp-apac")
    assert done.result.reasons == {"empty_record": 2} and done.result.blank_lines == 0
    assert [r["record_index"] for r in done.result.quarantine.to_pylist()] == [1, 2]


def test_an_object_of_more_bad_records_than_the_bound_is_quarantined_whole(lake_home, monkeypatch):
    monkeypatch.setattr(batch, "MAX_REJECTED_RECORDS", 50)
    loc = load_config().location("aws-us")
    store = open_storage(loc.root_uri())
    put_records("aws-us", [line(event(i)) for i in range(5)], n=1)
    long = b"a" * 200  # records too long to be refused for their size alone
    floods = {  # refused: for their size, by the whole-buffer checks, by their first byte,
        "x.gz": b"x\n",  # alone, by Arrow, by a rule
        "utf8.gz": b"\xff" + long + b"\n",
        "long_x.gz": b"x" + long + b"\n",
        "spaced.gz": b" x" + long + b"\n",
        "braces.gz": b"{" + long + b"}\n",
        "rules.gz": b'{"event_id":"' + long + b'"}\n',
    }
    for name, body in floods.items():
        store.put(f"landing/firehose/2026/10/05/02/{name}", gzip.compress(body * 60))
    store.put("landing/firehose/2026/10/05/03/under.gz", gzip.compress(b"x\n" * 50))
    done = run("aws-us")
    res = done.result
    assert res.ingested == 5 and res.reconciled and done.reconciled
    assert res.reasons == {parse.TOO_MANY_REJECTED: len(floods), "malformed_json": 50}
    assert res.corrupt_objects == len(floods)
    whole = [r for r in res.quarantine.to_pylist() if r["record_index"] == -1]
    assert sorted(r["source_object"].rsplit("/", 1)[1] for r in whole) == sorted(floods)
    counts = {o.key.rsplit("/", 1)[1]: (o.records, o.quarantined, o.reason) for o in done.objects}
    assert counts["x.gz"] == (1, 1, parse.TOO_MANY_REJECTED)
    assert counts["under.gz"] == (50, 50, None)


_PEAK_RSS = """
import datetime as dt, gzip, resource, sys
from pipelines.ingest.batch import ingest_objects
from pipelines.ingest.parse import default_rules
from pipelines.lake.config import load_config
data = gzip.compress(sys.argv[1].encode().decode("unicode_escape").encode() * int(sys.argv[2]))
loc = load_config("local").location("aws-us")
rules = default_rules()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = ingest_objects(
    [("landing/firehose/2026/10/05/01/o.gz", data)], loc.landing, "us", dt.date(2026, 10, 5), rules
)
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
report = res.report()
print(grew // 1024, res.landed, res.quarantined, report.get("blank_lines"), res.reconciled)
print(len(data))
"""


@pytest.mark.parametrize(
    ("unit", "landed", "blank"),
    [("\\n", 0, 8 << 20), (" \\n", 0, 4 << 20), ("x\\n", 1, 0)],
    ids=["newlines", "blank", "bad"],
)
def test_eight_mib_of_blank_or_bad_lines_ingest_in_bounded_memory(lake_home, unit, landed, blank):
    """A few KiB of gzip inflating to millions of lines: peak memory stays far below 1 GiB."""
    count = (8 << 20) // len(unit.encode().decode("unicode_escape"))
    env = {**os.environ, "LAKEHOUSE_ENV": "local", "PYTHONPATH": str(Path.cwd())}
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, unit, str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    grew_mib, got_landed, quarantined, blank_lines, reconciled, gz = out
    assert int(gz) < 16 * 1024  # the object is a few KiB as landed
    assert int(grew_mib) < 512, f"peak RSS grew by {grew_mib} MiB"
    assert (got_landed, quarantined, blank_lines) == (str(landed), str(landed), str(blank))
    assert reconciled == "True"


# --- 11. objects listed but not readable --------------------------------------------------


def test_a_dangling_link_is_skipped_reported_and_ingested_by_the_next_run_once_fixed(lake_home):
    first = put_records("aws-us", [line(event(i)) for i in range(4)], n=1)
    last = put_records("aws-us", [line(event(10 + i)) for i in range(4)], n=3)
    loc = load_config().location("aws-us")
    link_key = "landing/firehose/2026/10/05/01/link-2.gz"
    link = Path(loc.root_uri()) / link_key
    link.symlink_to(link.parent / "nowhere.gz")
    assert link_key in landing_objects(open_storage(loc.root_uri()), loc.landing, DAY)
    done = run("aws-us")
    assert done.result.ingested == 8 and done.reconciled
    assert set(assert_readable(done.bronze_uri)["source_object"].to_pylist()) == {first, last}
    assert list(done.result.skipped_objects) == [link_key]
    assert "symbolic link" in done.report()["skipped_objects"][link_key]
    assert link_key not in {o.key for o in done.objects}  # not in the ledger
    link.unlink()
    link.write_bytes(gzip.compress(line(event(20)) + b"\n"))
    again = run("aws-us")
    assert again.result.ingested == 1 and again.result.skipped_objects == {}
    assert again.totals["ingested"] == 9 and again.reconciled
    assert link_key in {o.key for o in again.objects}


def test_an_object_gone_between_listing_and_reading_is_skipped_not_a_failure(
    lake_home, monkeypatch
):
    put_records("aws-us", [line(event(i)) for i in range(3)], n=1)
    gone = ObjectInfo("landing/firehose/2026/10/05/01/gone.gz", 40, "etag-gone")
    listing = landing_listing

    def with_gone(*args: object) -> tuple[list[ObjectInfo], list[str]]:
        return sorted([*listing(*args)[0], gone], key=lambda i: i.path), []

    monkeypatch.setattr(ingest, "landing_listing", with_gone)
    done = run("aws-us")
    assert done.result.ingested == 3 and done.reconciled
    assert done.result.skipped_objects[gone.path].startswith("not found:")
    assert gone.path not in {o.key for o in done.objects}
    # alone in its partition: no batch is committed, the run still succeeds
    monkeypatch.setattr(ingest, "landing_listing", lambda *a: ([gone], []))
    alone = run("aws-us")
    assert alone.batches == [] and list(alone.result.skipped_objects) == [gone.path]
    assert alone.totals["ingested"] == 3


def test_a_local_listing_leaves_out_a_file_removed_while_it_lists(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    for name in ("gone.gz", "kept.gz"):
        (tmp_path / "a" / name).write_bytes(b"1")
    (tmp_path / "a" / "link.gz").symlink_to(tmp_path / "a" / "nowhere.gz")
    real_scandir = os.scandir

    def racing(path):  # the folder is read, then a file is removed before its lstat
        entries = list(real_scandir(path))
        (tmp_path / "a" / "gone.gz").unlink(missing_ok=True)
        return iter(entries)

    monkeypatch.setattr("pipelines.lake.storage.obstore_backend.os.scandir", racing)
    listed = [i.path for i in open_storage(str(tmp_path)).list("a/")]
    assert listed == ["a/kept.gz", "a/link.gz"]  # the dangling link listed, not followed


# --- 12. a command that fails right after reading a table ---------------------------------


def test_a_full_reingest_refused_right_after_reading_the_ledger_exits_1_never_aborts(lake_home):
    """Reads went through pyarrow datasets over deltalake's Python filesystem: the scan could
    release a file on an Arrow thread after it returned, and a process exiting by then aborted
    (exit 134, "terminate called without an active exception") about one time in four."""
    key = put_records("aws-us", [line(event(i)) for i in range(3)])
    assert run("aws-us").result.ingested == 3
    (Path(load_config().location("aws-us").root_uri()) / key).unlink()
    argv = [sys.executable, "-c", "import sys; from lakehouse.cli import main; sys.exit(main())"]
    argv += ["ingest", "--location", "aws-us", "--date", DAY.isoformat(), "--full"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(2):  # 8 runs, 4 at a time: all passing by chance was 0.75**8 = 10 %
        procs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 1, err.decode()[-400:]
            assert b"full re-ingest refused" in err and b"terminate" not in err
            assert b"Traceback" not in err and not out
