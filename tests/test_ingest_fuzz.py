"""Property-based fuzzing of the ingest: random and hostile records and objects, every format.

Whatever lands, a partition ingest must: reconcile exactly, raise nothing, leave both Delta
tables readable with strict-JSON commits, and let no row into bronze that the record rules (so
the blocking suite) would reject. A separate test holds memory to the object bound when a
decompression bomb lands among good objects.
"""

import dataclasses
import datetime as dt
import functools
import gzip
import json
import multiprocessing as mp
import resource
import tempfile
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.ingest import capture
from pipelines.ingest import partition as ingest
from pipelines.ingest.batch import ingest_objects
from pipelines.ingest.events import WIRE_SCHEMA, record_rules
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from tests.helpers import DAY, assert_readable, deflate_zeros, gzip_bomb, strict_json

FORMATS = {  # location whose landing is used, and the format it is given
    "firehose": ("aws-us", "firehose"),
    "eventhubs_capture": ("azure-eu", "eventhubs_capture"),
    "pubsub_avro": ("gcp-apac", "pubsub_avro"),
    "pubsub_text": ("gcp-apac", "pubsub_text"),
}
AVRO_CODECS = ["null", "deflate", "snappy", "bzip2", "xz", "zstandard"]
SMALL_BOUND = 1 << 20  # objects inflating past 1 MiB are bombs here, so examples stay fast

TIMES = [
    "2026-10-05T01:00:00Z",
    "2026-10-05T23:59:59.999999+00:00",
    "2026-10-06T12:00:00-05:00",
    "2099-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-14:00",
    "+20000-01-01T00:00:00Z",
    "",
    "not a time",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "  ", "NaN", "USD", "EUR", "SGD", "us", "eu", "apac", *TIMES]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
EXTRA_NAMES = st.sampled_from(["phone", "ssn", "Customer_ID", "meta", "x", "EVENT_ID", " sku"])


@st.composite
def events(draw: st.DrawFn, region: str, currency: str) -> dict:
    """A valid event, then some fields broken, dropped or added."""
    obj: dict = {
        "event_id": f"e{draw(st.integers(0, 40))}",  # small range: duplicates happen
        "event_ts": draw(st.sampled_from(TIMES[:3])),
        "region": region,
        "store_id": draw(st.integers(1, 100_000)),
        "sku": f"SKU-{draw(st.integers(0, 9))}",
        "quantity": draw(st.integers(0, 5)),
        "unit_price": draw(st.floats(0.01, 1000)),
        "currency": currency,
        "customer_id": "c-1",
    }
    for name in draw(st.lists(st.sampled_from(WIRE_SCHEMA.names), max_size=3, unique=True)):
        if draw(st.booleans()):
            obj[name] = draw(JSON_VALUES)
        else:
            obj.pop(name, None)
    obj.update(draw(st.dictionaries(EXTRA_NAMES | st.text(max_size=4), JSON_VALUES, max_size=2)))
    return obj


@st.composite
def records(draw: st.DrawFn, region: str, currency: str) -> bytes:
    """One landed record: mostly events, some hostile bytes."""
    kind = draw(st.sampled_from(["event"] * 6 + ["raw", "deep", "cut", "pretty", "big", "blank"]))
    obj = draw(events(region, currency))
    text = json.dumps(obj, separators=(",", ":")).encode()  # NaN and Infinity as JS writes them
    if kind == "raw":
        return draw(st.binary(max_size=80))
    if kind == "deep":
        n = draw(st.sampled_from([10, 63, 64, 65, 2_000, 30_000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        inner = opener * n + (b"1" if opener != b"[" else b"") + closer * n
        return text[:-1] + b',"nest":' + inner + b"}"
    if kind == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "pretty":
        return json.dumps(obj, indent=1).encode()
    if kind == "big":
        return text[:-1] + b',"pad":"' + b"x" * draw(st.sampled_from([65_000, 70_000])) + b'"}'
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t", b"\r", b"null", b"[]", b"{}"]))
    return text


@st.composite
def landed(draw: st.DrawFn, fmt: str) -> list[tuple[str, bytes]]:
    """A partition's objects in ``fmt``: encoded batches, some damaged, some bombs."""
    location, _ = FORMATS[fmt]
    cfg = load_config("local")
    loc = cfg.location(location)
    landing = dataclasses.replace(loc.landing, format=fmt)
    currency = cfg.regions[loc.region]["currency"]
    out = []
    for k in range(draw(st.integers(1, 4))):
        batch = capture.Batch(
            dt.datetime(2026, 10, 5, k, tzinfo=dt.UTC),
            draw(st.lists(records(loc.region, currency), max_size=10)),
            partition=draw(st.integers(0, 3)),  # past the configured 2, for Event Hubs
        )
        key = capture.object_key(
            dataclasses.replace(landing, options={**landing.options, "partitions": 4}), batch, k
        )
        data = capture.encode(landing, batch, k, draw(st.sampled_from(AVRO_CODECS)))
        damage = draw(st.sampled_from(["none"] * 4 + ["cut", "flip", "garbage", "bomb"]))
        if damage == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif damage == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
        elif damage == "garbage":
            data = draw(st.binary(max_size=300))
        elif damage == "bomb":
            data = _bomb(fmt)
        out.append((key, data))
    return out


@functools.cache
def _bomb(fmt: str) -> bytes:
    """An object inflating to 8x the (lowered) bound."""
    zeros = bytes(8 * SMALL_BOUND)
    if fmt == "firehose":
        return gzip.compress(zeros)
    if fmt == "pubsub_text":
        return zeros[: SMALL_BOUND + 1]
    landing = load_config("local").location(FORMATS[fmt][0]).landing
    batch = capture.Batch(dt.datetime(2026, 10, 5, tzinfo=dt.UTC), [zeros])
    return capture.encode(dataclasses.replace(landing, format=fmt), batch, 0, "deflate")


def _expected_landed(landing, objects: list[tuple[str, bytes]]) -> int:
    """Records each object holds (an object that cannot be decoded counts once)."""
    total = 0
    for _, data in objects:
        try:
            total += len(capture.decode_records(landing, data, SMALL_BOUND))
        except capture.CorruptObjectError:
            total += 1
    return total


def _assert_bronze_keeps_the_rules(bronze: pa.Table, region: str) -> None:
    rules = record_rules(load_config("local"))
    ids = bronze["event_id"]
    assert ids.null_count == 0 and pc.count_distinct(ids).as_py() == bronze.num_rows
    assert not pc.any(pc.utf8_is_space(ids)).as_py() and pc.min(pc.utf8_length(ids)).as_py() > 0
    assert pc.all(pc.is_finite(bronze["unit_price"])).as_py()
    assert pc.min(bronze["unit_price"]).as_py() > rules.unit_price_above
    assert pc.min(bronze["quantity"]).as_py() >= rules.quantity_min
    assert rules.store_id_min <= pc.min(bronze["store_id"]).as_py()
    assert pc.max(bronze["store_id"]).as_py() <= rules.store_id_max
    assert set(bronze["currency"].to_pylist()) <= set(rules.currencies)
    assert set(bronze["region"].to_pylist()) == {region}
    for col in ("event_ts", "sku"):
        assert bronze[col].null_count == 0
    assert all(1 <= t.year <= 9999 for t in bronze["event_ts"].to_pylist())
    for text in bronze["_rescued_data"].drop_null().to_pylist():
        rescued = strict_json(text)
        assert isinstance(rescued, dict) and rescued
        assert not set(rescued) & set(WIRE_SCHEMA.names)


FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written to the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_any_landed_objects_reconcile_and_leave_readable_tables(fmt):
    location, _ = FORMATS[fmt]

    @FUZZ
    @given(objects=landed(fmt))
    def check(objects: list[tuple[str, bytes]]) -> None:
        base = load_config("local").location(location)
        with (
            tempfile.TemporaryDirectory() as home,
            mock.patch.object(capture, "MAX_OBJECT_BYTES", SMALL_BOUND),
        ):
            loc = dataclasses.replace(
                base, root=home, landing=dataclasses.replace(base.landing, format=fmt)
            )
            store = open_storage(loc.root_uri())
            for key, data in objects:
                store.put(key, data)
            done = ingest.ingest_partition(loc, {}, DAY)
            res = done.result
            assert res.reconciled, res.report()
            assert res.landed == _expected_landed(loc.landing, objects)
            assert res.objects == len(objects)
            assert not [r for r in res.reasons if r.startswith("ingest_error")], res.reasons
            bronze, quarantine = (
                assert_readable(done.bronze_uri),
                assert_readable(done.quarantine_uri),
            )
            assert (bronze.num_rows, quarantine.num_rows) == (res.ingested, res.quarantined)
            assert quarantine["raw"].null_count == 0
            if bronze.num_rows:
                _assert_bronze_keeps_the_rules(bronze, loc.region)

    check()


# --- memory: a bomb among good objects ------------------------------------------------------


def _peak_growth_in_child(fmt: str, path: str, queue: mp.Queue) -> None:
    """Ingest good objects and the bomb at ``path``; report peak RSS growth and the result."""
    from pipelines.ingest import capture
    from pipelines.lake.config import load_config

    loc = load_config("local").location(FORMATS[fmt][0])
    good = [
        capture.encode(
            loc.landing,
            capture.Batch(
                dt.datetime(2026, 10, 5, k), [_event(loc.region, k * 1000 + i) for i in range(200)]
            ),
            k,
        )
        for k in range(3)
    ]
    objects = [(f"good-{k}", g) for k, g in enumerate(good)]
    ingest_objects(objects, loc.landing, loc.region, DAY)  # warm: imports, pools, arenas
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bomb = Path(path).read_bytes()
    res = ingest_objects([*objects, ("z-bomb", bomb)], loc.landing, loc.region, DAY)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(((after - before) * 1024, res.ingested, res.reasons, len(bomb)))


def _event(region: str, i: int) -> bytes:
    currency = {"us": "USD", "eu": "EUR", "apac": "SGD"}[region]
    return json.dumps(
        {
            "event_id": f"m{i}",
            "event_ts": "2026-10-05T01:00:00Z",
            "region": region,
            "store_id": 1,
            "sku": "S",
            "quantity": 1,
            "unit_price": 1.0,
            "currency": currency,
        }
    ).encode()


def _avro_deflate_bomb(fmt: str, total: int) -> bytes:
    import io

    import fastavro

    schema = capture.EVENTHUBS_SCHEMA if fmt == "eventhubs_capture" else capture.PUBSUB_SCHEMA
    buf = io.BytesIO()
    fastavro.writer(buf, schema, [], codec="deflate")
    header = buf.getvalue()
    block = deflate_zeros(total)
    return header + capture._zigzag(1000) + capture._zigzag(len(block)) + block + header[-16:]


INFLATED = 2 << 30  # each bomb inflates to 2 GiB; the bound is the default 256 MiB


@pytest.mark.parametrize("fmt", ["firehose", "eventhubs_capture", "pubsub_avro"])
def test_a_bomb_among_good_objects_keeps_peak_memory_near_the_object_bound(tmp_path, fmt):
    bomb = gzip_bomb(INFLATED) if fmt == "firehose" else _avro_deflate_bomb(fmt, INFLATED)
    path = tmp_path / "bomb"
    path.write_bytes(bomb)
    ctx = mp.get_context("spawn")  # a fresh process: its peak RSS is this ingest's alone
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_growth_in_child, args=(fmt, str(path), queue))
    child.start()
    growth, ingested, reasons, landed = queue.get(timeout=300)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert landed < 4 << 20  # a few MiB that would inflate to 2 GiB
    assert ingested == 600
    assert reasons == {f"object_too_large:inflated>{capture.MAX_OBJECT_BYTES}": 1}
    bound = capture.MAX_OBJECT_BYTES
    assert growth < 2 * bound, f"peak RSS grew {growth / 2**20:.0f} MiB"
