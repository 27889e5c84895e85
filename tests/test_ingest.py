"""Ingestion engine: every bad record kind lands in quarantine with its reason; counts reconcile."""

import datetime as dt
import gzip
import json
import math
import random
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from pipelines.ingest import capture, parse
from pipelines.ingest import partition as ingest
from pipelines.ingest.events import MAX_EVENT_BYTES, MAX_JSON_DEPTH, WIRE_SCHEMA
from pipelines.ingest.landing import landing_objects
from pipelines.lake.config import load_config
from pipelines.lake.delta import read_partition
from pipelines.lake.storage import open_storage, stable_etag
from pipelines.simulation.simulate import BAD_KINDS, EXPECTED_REASON, SimulationConfig
from tests.helpers import DAY, in_processes, land

LOCATIONS = ["aws-us", "azure-eu", "gcp-apac"]


def _ingest(name: str, day: dt.date = DAY) -> ingest.PartitionIngest:
    loc = load_config().location(name)
    return ingest.ingest_partition(loc, loc.storage_options(), day)


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("kind", [k for k in BAD_KINDS if k != "duplicate_event_id"])
def test_each_bad_kind_is_quarantined_with_its_reason(lake_home, location, kind):
    sim = SimulationConfig(
        start=DAY, end=DAY, events_per_day=300, late_share=0.0, bad_rate=0.02, bad_kinds=(kind,)
    )
    (report,) = land(location, sim)
    done = _ingest(location)
    res = done.result
    assert report.bad[kind] >= 3
    assert res.reasons == {EXPECTED_REASON[kind]: report.bad[kind]}
    assert res.landed == report.records
    assert res.reconciled
    assert res.ingested == report.records - report.bad[kind]
    quarantine = read_partition(done.quarantine_uri, {}, {"region": res.region})
    assert quarantine.num_rows == report.bad[kind]
    assert set(quarantine["reason"].to_pylist()) == {EXPECTED_REASON[kind]}
    assert all(q for q in quarantine["raw"].to_pylist())  # raw bytes kept, nothing lost


@pytest.mark.parametrize("location", LOCATIONS)
def test_duplicates_are_dropped_and_counted(lake_home, location):
    sim = SimulationConfig(
        start=DAY,
        end=DAY,
        events_per_day=300,
        late_share=0.0,
        bad_rate=0.02,
        bad_kinds=("duplicate_event_id",),
    )
    (report,) = land(location, sim)
    res = _ingest(location).result
    assert res.duplicates == report.bad["duplicate_event_id"] > 0
    assert res.quarantined == 0
    assert res.ingested == report.events
    assert pc.count_distinct(res.bronze["event_id"]).as_py() == res.ingested
    assert res.reconciled


@pytest.mark.parametrize("location", LOCATIONS)
def test_corrupt_object_is_quarantined_whole_and_partition_succeeds(lake_home, location):
    sim = SimulationConfig(
        start=DAY, end=DAY, events_per_day=300, late_share=0.0, corrupt_objects_per_day=2
    )
    (report,) = land(location, sim)
    res = _ingest(location).result
    assert res.corrupt_objects == 2
    corrupt = [r for r in res.quarantine.to_pylist() if r["reason"].startswith("corrupt_object")]
    assert sorted(r["source_object"] for r in corrupt) == sorted(report.corrupt_objects)
    assert all(r["record_index"] == -1 and len(r["raw"]) > 0 for r in corrupt)
    assert res.ingested > 0
    assert res.reconciled


def test_all_kinds_together_reconcile_and_bronze_is_clean(lake_home):
    sim = SimulationConfig(
        start=DAY,
        end=DAY + dt.timedelta(days=1),
        events_per_day=800,
        bad_rate=0.03,
        corrupt_objects_per_day=1,
    )
    land("aws-us", sim)
    for day in sim.days():
        res = _ingest("aws-us", day).result
        assert res.reconciled, res.report()
        assert pc.min(res.bronze["quantity"]).as_py() >= 0
        assert res.bronze["event_id"].null_count == 0


def test_late_events_land_in_the_next_days_partition(lake_home):
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=1000, late_share=0.05)
    land("aws-us", sim)
    nxt = _ingest("aws-us", DAY + dt.timedelta(days=1)).result
    assert nxt.ingested > 20
    event_days = {ts.date() for ts in nxt.bronze["event_ts"].to_pylist()}
    assert event_days == {DAY}
    assert set(nxt.bronze["landing_date"].to_pylist()) == {DAY + dt.timedelta(days=1)}


def test_rerun_ingests_nothing_twice(lake_home):
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=500, bad_rate=0.02)
    land("azure-eu", sim)
    first = _ingest("azure-eu")
    second = _ingest("azure-eu")
    rows = read_partition(first.bronze_uri, {})
    assert rows.num_rows == first.result.ingested == second.totals["ingested"]
    assert second.result.ingested == 0 and second.batches == []
    assert second.bronze_version == first.bronze_version
    q = read_partition(first.quarantine_uri, {})
    assert q.num_rows == first.result.quarantined


def test_a_lake_copied_away_and_back_ingests_nothing_twice(lake_home):
    """A copy keeps each file's time and size, never its inode: no object looks rewritten."""
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=400, bad_rate=0.02)
    land("azure-eu", sim)
    first = _ingest("azure-eu")
    lake, copy = lake_home / ".lake", lake_home / "copy"
    shutil.copytree(lake, copy)  # copy2: modification times kept, new inodes
    shutil.rmtree(lake)
    shutil.copytree(copy, lake)
    again = _ingest("azure-eu")
    assert again.batches == [] and again.totals == first.totals and again.reconciled
    reasons = read_partition(first.quarantine_uri, {}, columns=["reason"])["reason"].to_pylist()
    assert not [r for r in reasons if r.startswith("object_rewritten")]


@pytest.mark.parametrize(
    ("etag", "kept"),
    [
        ('"a58042-66214c2be87a3-3"', "66214c2be87a3-3"),  # object_store's local HEAD
        ("a58042-66214c2be87a3-3", "66214c2be87a3-3"),  # an earlier listing's
        ("66214c2be87a3-3", "66214c2be87a3-3"),  # already without its inode
        ('"d41d8cd98f00b204e9800998ecf8427e"', '"d41d8cd98f00b204e9800998ecf8427e"'),  # S3
        ("d41d8cd98f00b204e9800998ecf8427e-2", "d41d8cd98f00b204e9800998ecf8427e-2"),  # multipart
        ("0x8DC1234ABCD", "0x8DC1234ABCD"),  # Azure
        ("CKih16GjsOkCEAE=", "CKih16GjsOkCEAE="),  # GCS
        (None, None),
    ],
)
def test_only_a_local_files_etag_loses_its_inode(etag, kept):
    assert stable_etag(etag) == kept


def test_a_ledger_written_with_local_inodes_in_its_etags_still_knows_its_objects(lake_home):
    """Ledgers of earlier versions hold object_store's ``inode-mtime-size`` etags."""
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=300, bad_rate=0.0)
    land("aws-us", sim)
    first = _ingest("aws-us")
    DeltaTable(first.ledger_uri).update(
        updates={"etag": "concat('1f2e3d-', etag)"}, predicate="kind = 'object'"
    )
    assert all(
        e.count("-") == 2
        for e in read_partition(first.ledger_uri, {}, columns=["etag"])["etag"].to_pylist()
        if e
    )
    again = _ingest("aws-us")
    assert again.batches == [] and again.totals == first.totals and again.reconciled


def _ingest_in_child(home: str, name: str, day: str) -> None:
    import os

    os.environ["LAKEHOUSE_HOME"] = home
    _ingest(name, dt.date.fromisoformat(day))


def test_concurrent_runs_of_the_same_and_other_partitions_lose_and_duplicate_nothing(lake_home):
    days = [DAY, DAY + dt.timedelta(days=1)]
    sim = SimulationConfig(start=days[0], end=days[1], events_per_day=500, late_share=0.0)
    reports = land("gcp-apac", sim)
    jobs = [(str(lake_home), "gcp-apac", d.isoformat()) for d in days for _ in range(2)]
    in_processes(_ingest_in_child, jobs)
    loc = load_config().location("gcp-apac")
    rows = read_partition(loc.table_uri("bronze_events"), {})
    assert rows.num_rows == sum(r.records for r in reports)
    assert pc.count_distinct(rows["event_id"]).as_py() == rows.num_rows


def test_malformed_lines_in_firehose_objects_do_not_hide_good_ones(lake_home):
    loc = load_config().location("aws-us")
    storage = open_storage(loc.root_uri())
    good = json.dumps(
        {
            "event_id": "e1",
            "event_ts": "2026-10-05T01:00:00Z",
            "region": "us",
            "store_id": 1,
            "sku": "SKU-1",
            "quantity": 2,
            "unit_price": 3.5,
            "currency": "USD",
        }
    ).encode()
    lines = [good, b"{not json", b"", b"[1,2]", good.replace(b'"e1"', b'"e2"'), b'{"event_id": 5}']
    storage.put("landing/firehose/2026/10/05/01/x-1.gz", gzip.compress(b"\n".join(lines) + b"\n"))
    res = _ingest("aws-us").result
    assert res.ingested == 2
    assert res.reasons == {  # the blank line is no record: counted, not quarantined
        "malformed_json": 1,
        "malformed_json: not an object": 1,
        "wrong_type:event_id": 1,
    }
    assert res.blank_lines == 1 and res.landed == 5
    assert res.reconciled


def test_capture_listing_reads_only_its_date(lake_home):
    sim = SimulationConfig(
        start=DAY, end=DAY + dt.timedelta(days=2), events_per_day=100, late_share=0.0
    )
    land("azure-eu", sim)
    loc = load_config().location("azure-eu")
    keys = landing_objects(open_storage(loc.root_uri()), loc.landing, DAY)
    assert keys and all(capture.landing_date_of(loc.landing, k) == DAY for k in keys)


GOOD = (
    b'{"event_id":"e%d","event_ts":"2026-10-05T01:00:00Z","region":"us","store_id":1,'
    b'"sku":"SKU-1","quantity":2,"unit_price":3.5,"currency":"USD"}'
)
BAD = [
    b"{not json",
    b'{"event_id":"x","quantity":"three"}',  # Arrow names the row
    b'{"event_id":"x","quantity":2.5}',  # Arrow names no row: the range is halved
    b'{"event_id":"x"} {"event_id":"y"}',  # two objects on one line
    b'{"event_id":"x"} trailing',  # Arrow names the row after this one
    b"[1,2]",
    b"",
    b"   ",
    b"\r",
    b'{"event_id":"\xff\xfe"}',
    b'{"event_id":"' + b"x" * (64 * 1024) + b'"}',
    b'{"event_id":"' + b"\xff" * (64 * 1024) + b'"}',  # oversized wins over invalid UTF-8
    b'{"event_id":5}',
    # not bad, but not one '{...}' either: each is parsed alone
    b'{"event_id":"n","meta":{"a":1}}',  # a nested object
    b'{"event_id":"}{"}',  # braces in a string
    b' {"event_id":"w"}',
    b"null",
    b" null",
    b'{"event_id":"x"}null',
    # fields outside the schema: kept in _rescued_data, or the record refused
    b'{"event_id":"r1","phone":"+1 555 0100"}',
    b'{"event_id":"r2","Customer_ID":"c-1","ssn":null}',
    b'{"event_id":"r3","x":NaN}',  # NaN has no JSON spelling: refused
    b'{"event_id":"r4","x":' + b"[" * 100 + b"]" * 100 + b"}",  # deeper than 64 levels
    b'{"event_id":"r5","x":' + b"[" * 5000 + b"]" * 5000 + b"}",  # deeper than Python's json
    b'{"event_id":"r6","x":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",  # nested, 41 deep: kept
    b'{"event_id":"r7","email":"a","email":"b"}',
    b'{"event_id":"r7","pets":{"a":1,"a":2}}',
    b'{"event_id":"r8","unit_price":1e400}',
    b'{"event_id":"r9","quantity":9223372036854775808}',
    b'{"event_id":"r10","store_id":NaN}',
]


# The oracle below reads each record with Python's json, as a user of the feed would, and applies
# the documented rules (docs/ingest.md) itself: it calls nothing of the parser under test.
_WIRE = {f.name: f.type for f in WIRE_SCHEMA}
_JSON_TYPES = {"string": (str,), "int64": (int,), "double": (int, float), "bool": (bool,)}


class _Repeated(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _no_repeats(pairs: list) -> dict:
    names = [k for k, _ in pairs]
    for k in names:
        if names.count(k) > 1:
            raise _Repeated(k)
    return dict(pairs)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_non_finite, value.values()))
    if isinstance(value, list):
        return any(map(_non_finite, value))
    return False


def _reason_of(name: str) -> str:
    """A field as a reason names it: its own name in the schema, else the rescued column."""
    return name if name in _WIRE else "_rescued_data"


def _wrong_type(obj: dict) -> str | None:
    for name, typ in _WIRE.items():
        value = obj.get(name)
        allowed = _JSON_TYPES[str(typ)]
        if value is not None and (
            not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
        ):
            return name
    return None


def _expected_alone(rec: bytes) -> tuple[str | None, dict | None]:
    """(reason, the record as decoded) for one record, from the rules, not from the engine."""
    if len(rec) > MAX_EVENT_BYTES:
        return "oversized_payload", None
    if not rec.strip():
        return "empty_record", None
    try:
        text = rec.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", None
    try:
        obj = json.loads(text, object_pairs_hook=_no_repeats)
    except _Repeated as repeated:
        return f"duplicate_field:{_reason_of(repeated.name)}", None
    except RecursionError:
        return "too_deeply_nested", None
    except ValueError:  # not JSON, or more than one value on the line
        return "malformed_json", None
    if not isinstance(obj, dict):
        return "malformed_json: not an object", None
    if _depth(obj) > MAX_JSON_DEPTH:
        return "too_deeply_nested", None
    if bad := next((k for k, v in obj.items() if _non_finite(v)), None):
        return f"non_finite_number:{_reason_of(bad)}", None
    if bad := _wrong_type(obj):
        return f"wrong_type:{bad}", None
    ints = (k for k, t in _WIRE.items() if pa.types.is_integer(t))
    if bad := next((k for k in ints if isinstance(obj.get(k), int) and obj[k] >= 2**63), None):
        return f"number_out_of_range:{bad}", None
    return None, obj


def _expected_row(obj: dict) -> tuple[dict, str | None]:
    """The row a kept record becomes (schema fields, nulls where absent) and its rescued JSON."""
    row = pa.Table.from_pylist([{k: obj.get(k) for k in _WIRE}], schema=WIRE_SCHEMA)
    extra = {k: v for k, v in obj.items() if k not in _WIRE}
    return row.to_pylist()[0], json.dumps(extra, separators=(",", ":")) if extra else None


EXTRA = GOOD[:-1] + b',"loyalty_tier":"gold","phone":"+65 0000"}'  # a field the schema lacks


@pytest.mark.parametrize("block", [64, 700, 4096, parse.STREAM_BLOCK_BYTES])
@pytest.mark.parametrize("seed", range(4))
def test_parse_gives_each_record_the_reason_it_gets_alone(monkeypatch, block, seed):
    rng = random.Random(seed)
    accented = GOOD.replace(b"SKU-1", "SKU-é".encode())  # valid UTF-8, not ASCII
    records = [
        rng.choice([GOOD, accented, EXTRA]) % i if rng.random() < 0.7 else rng.choice(BAD)
        for i in range(300)
    ]
    monkeypatch.setattr(parse, "STREAM_BLOCK_BYTES", block)
    parsed = capture.Records.from_lines(b"\n".join(records))
    ids, rows, rejected = parse.parse_records(parsed)
    # blank lines are no records: the others keep their order, and each its line
    assert parsed.line_of(np.arange(len(parsed))).tolist() == [
        i for i, r in enumerate(records) if r.strip()
    ]
    records = [r for r in records if r.strip()]
    expected = {i: _expected_alone(r) for i, r in enumerate(records)}
    assert dict(rejected) == {i: why for i, (why, _) in expected.items() if why is not None}
    assert ids.tolist() == [i for i, (why, _) in expected.items() if why is None]
    kept = [_expected_row(expected[i][1]) for i in ids.tolist()]
    assert rows["_rescued_data"].to_pylist() == [rescued for _, rescued in kept]
    assert rows.drop_columns(["_rescued_data"]).to_pylist() == [row for row, _ in kept]


@pytest.mark.parametrize("block", [64, 4096, parse.STREAM_BLOCK_BYTES])
def test_a_field_every_record_gains_is_rescued_in_each(monkeypatch, block):
    monkeypatch.setattr(parse, "STREAM_BLOCK_BYTES", block)
    records = [EXTRA % i for i in range(2000)]
    ids, rows, rejected = parse.parse_records(capture.Records.from_lines(b"\n".join(records)))
    assert rejected == [] and len(ids) == 2000
    assert set(rows["_rescued_data"].to_pylist()) == {'{"loyalty_tier":"gold","phone":"+65 0000"}'}
    assert rows["event_id"].to_pylist() == [f"e{i}" for i in range(2000)]


@pytest.mark.parametrize("window", [1, 2, 5, 1 << 20])
def test_records_split_like_bytes_split_less_blank_lines(monkeypatch, window):
    monkeypatch.setattr(capture, "_LINES_WINDOW", window)  # lines across windows too
    for data in [
        b"",
        b"\n",
        b"a",
        b"a\n",
        b"a\n\nb",
        b"a\r\nb\r\n",
        b"\n\na\n",
        b" \n\t\n x \n\x0c\n\r\nyy",
        b"   ",
        b"abcdefgh\n   \n",
    ]:
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        records = capture.Records.from_lines(data)
        assert records.to_list() == [x for x in lines if x.strip()], data
        assert records.line_of(np.arange(len(records))).tolist() == [
            i for i, x in enumerate(lines) if x.strip()
        ]
        assert records.blank_lines == sum(not x.strip() for x in lines), data


def test_avro_bodies_keep_their_original_bytes_and_parse_as_one_line():
    pretty = b'{\n  "event_id": "p",\n  "quantity": 1\n}'
    records = capture.Records.from_bodies([pretty, b'{"event_id":"q"}', b"{broken\n"])
    assert records.to_list() == [pretty, b'{"event_id":"q"}', b"{broken\n"]
    assert records.sizes().tolist() == [len(pretty), 16, 8]
    ids, rows, rejected = parse.parse_records(records)
    assert ids.tolist() == [0, 1]
    assert rows["event_id"].to_pylist() == ["p", "q"]
    assert rejected == [(2, "malformed_json")]


def test_gzip_members_padding_and_damage():
    landing = load_config("local").location("aws-us").landing
    member = gzip.compress(b'{"a":1}\n{"b":2}\n')
    assert capture.decode(landing, member + member) == [b'{"a":1}', b'{"b":2}'] * 2
    assert capture.decode(landing, member + b"\0" * 16) == [b'{"a":1}', b'{"b":2}']
    assert capture.decode(landing, b"") == []
    for damaged in [member[:-3], member + b"junk", b"not gzip at all", member[:-8] + b"\0" * 8]:
        with pytest.raises(capture.CorruptObjectError, match="gzip"):
            capture.decode(landing, damaged)


def test_first_occurrence_keeps_the_first_of_each_key_across_chunks():
    keys = pa.chunked_array([["a", "b", "a"], [], ["c", "b", "d", "c"]])
    assert parse.first_occurrence(keys).tolist() == [1, 1, 0, 1, 0, 1, 0]
    assert parse.first_occurrence(pa.array([], pa.string())).tolist() == []


def test_first_occurrence_compares_rows_whose_hashes_collide_by_value():
    keys = pa.array(["a", "b", "a", "c", "b"])
    collide = np.array([7, 7, 7, 9, 7], np.uint64)  # as if every id but "c" had one hash
    assert parse.first_occurrence(keys, collide).tolist() == [1, 1, 0, 1, 0]


def test_a_row_breaking_several_rules_gets_the_first():
    rows = pa.Table.from_pylist(
        [
            {"event_id": "a", "event_ts": "2026-10-05T01:00:00Z", "region": "eu", "quantity": -1},
            {"event_id": "b", "event_ts": "2099-01-01T00:00:00Z", "region": "eu", "quantity": -1},
            {"event_id": "c", "event_ts": "2026-10-05T01:00:00Z", "region": "eu", "quantity": -1},
        ],
        schema=parse.WIRE_SCHEMA,
    )
    for col in ("store_id", "unit_price"):
        rows = rows.set_column(
            rows.schema.get_field_index(col), col, pa.array([1, 1, 1], rows.schema.field(col).type)
        )
    rows = rows.set_column(rows.schema.get_field_index("sku"), "sku", pa.array([None, "s", "s"]))
    rows = rows.set_column(rows.schema.get_field_index("currency"), "currency", pa.array(["X"] * 3))
    _, why = parse.validate(rows, "eu", DAY)
    assert why.tolist() == ["missing_field:sku", "future_timestamp", "negative_quantity"]
