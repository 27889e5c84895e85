"""A lake holding one data subject everywhere erasure must reach, and a scan that knows nothing.

Shared by tests/test_erasure.py (local folders) and tests/integration/test_erasure_emulated.py
(moto, Azurite, fake-gcs-server): a simulated day landed and ingested, then an object of the
subject's own records (valid ones and one the ingest quarantines) landed and ingested, so that
bronze, the quarantine, the ledger, the landing area and an older kept version hold them; and a
silver-shaped table pseudonymized with the same key as the Spark transform.
"""

import datetime as dt
import gzip
import io
import json

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

from pipelines.erasure.requests import keyed_hash
from pipelines.ingest import capture
from pipelines.ingest import partition as ingest
from pipelines.lake import delta
from pipelines.lake.config import LakeLocation
from pipelines.lake.storage import Storage, open_storage
from pipelines.simulation.simulate import SimulationConfig
from tests.helpers import DAY, land

SUBJECT_ID = "{region}-000001"
SUBJECT_EMAIL = "customer1@{region}.example.com"


def subject(loc: LakeLocation) -> tuple[str, str]:
    """The subject's customer id and e-mail in the location's region (lowest id: a min bound)."""
    return SUBJECT_ID.format(region=loc.region), SUBJECT_EMAIL.format(region=loc.region)


def _event(loc: LakeLocation, n: int, customer: str, email: str, currency: str) -> dict:
    return {
        "event_id": f"{n:016x}-{n:016x}",
        "event_ts": f"{DAY}T23:{n % 60:02d}:00.000000Z",
        "region": loc.region,
        "store_id": 3,
        "sku": "SKU-00007",
        "category": "grocery",
        "quantity": 2,
        "unit_price": 4.5,
        "currency": currency,
        "promo": False,
        "channel": "online",
        "customer_id": customer,
        "email": email,
    }


def build(env: str, location: str, key: str, currency: str) -> dict:
    """The lake described above at ``location``; returns what the test checks against."""
    from pipelines.lake.config import load_config

    loc = load_config(env).location(location)
    opts = loc.storage_options()
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=120, bad_rate=0.05, seed=5)
    land(location, sim, env=env)
    ingest.ingest_partition(loc, opts, DAY)  # bronze v1: no subject
    bronze = loc.table_uri("bronze_events")
    clean_version = delta.table_version(bronze, opts)
    customer, email = subject(loc)
    records = [_event(loc, 9000 + i, customer, email, currency) for i in range(3)]
    records += [
        _event(loc, 9100 + i, f"{loc.region}-04999{i}", f"o{i}@x.org", currency) for i in range(4)
    ]
    bad = dict(records[0], event_id="ffff-bad", quantity=-3)  # quarantined, raw kept
    lines = [json.dumps(r, separators=(",", ":")).encode() for r in [*records, bad]]
    batch = capture.Batch(
        dt.datetime(DAY.year, DAY.month, DAY.day, 23, 59, 58, tzinfo=dt.UTC), lines
    )
    storage = open_storage(loc.root_uri(), opts)
    storage.put(capture.object_key(loc.landing, batch, 99), capture.encode(loc.landing, batch, 99))
    ingest.ingest_partition(loc, opts, DAY)  # bronze and quarantine now hold the subject
    silver = loc.table_uri("silver_events")
    target, options = delta.deltalake_target(silver, opts)
    for who in ((customer, email), (f"{loc.region}-049990", "o0@x.org")):
        rows = pa.table(
            {
                "date": [DAY],
                "region": [loc.region],
                "event_id": [f"e:{who[0]}"],  # the id as a token (":" ends one): a bound to scrub
                "customer_hash": [keyed_hash(key, who[0])],
                "email_hash": [keyed_hash(key, who[1])],
            }
        )
        write_deltalake(target, rows, mode="append", storage_options=options or None)  # type: ignore[arg-type]
    DeltaTable(target, storage_options=options or None).create_checkpoint()
    return {
        "location": loc,
        "storage": storage,
        "bronze_clean_version": clean_version,
        "bronze_rows_clean": delta.open_table(bronze, opts, clean_version)
        .to_pyarrow_table()
        .num_rows,
        "needles": [
            customer.encode(),
            email.encode(),
            keyed_hash(key, customer).encode(),
            keyed_hash(key, email).encode(),
        ],
    }


def _decoded(path: str, data: bytes) -> bytes:
    """A file as a reader sees it, decoded here without the product's code."""
    try:
        if path.endswith(".parquet"):
            return str(pq.read_table(io.BytesIO(data)).to_pylist()).encode()
        if path.endswith(".gz"):
            return gzip.decompress(data)
        if path.endswith(".avro"):
            return b"\n".join(
                bytes(r.get("Body") or r.get("data") or b"")
                for r in fastavro.reader(io.BytesIO(data))
                if isinstance(r, dict)
            )
    except Exception:
        return b""
    return b""


def files_holding(storage: Storage, needles: list[bytes]) -> list[str]:
    """Every file under the store holding a needle, raw or decoded."""
    found = []
    for info in storage.list():
        data = storage.get(info.path)
        text = data + _decoded(info.path, data)
        if any(n in text for n in needles):
            found.append(info.path)
    return found
