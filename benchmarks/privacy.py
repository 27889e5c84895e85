"""Personal data by content: precision and recall on a labelled corpus, false positives on gold.

The corpus is generated here (seeded): e-mail addresses, phone numbers (E.164, spaced
international, US, UK, German and Singapore forms), IPv4/IPv6 addresses, Luhn-valid card numbers
with network prefixes, mod-97-valid IBANs, each alone or inside a sentence; and look-alikes that
are not personal data: names, street addresses, order and customer ids, UUIDs, SKUs
(``SKU-0123456789``), bare 10-digit runs (labelled ids: the detectors do not claim them as
phones), prices in several notations, dates, timestamps, version strings, Luhn-valid ids without
a card network's prefix, IBAN-shaped strings that fail mod-97, thousands-grouped numbers.

Every value has one label (a detector, or none). A prediction is the set of detectors that
fire on it. Precision and recall count (value, detector) pairs. The naive scan (one loose
regular expression per kind, no validation) runs in the same process on the same corpus.

Gold and features: demo-like tables built from the project's simulator (three regions, a
week) and aggregated with pandas to the registry's gold schema, then a features-shaped table
of the same keys; both written as Delta and scanned through the same path the sync uses
(``scan_delta``). The Spark transforms are not run here (no JVM); their text columns are the
same keys (region, sku, category, currency).

Erasure: a week of the simulator's events landed at azure-eu (Event Hubs Capture Avro) and
ingested, silver-shaped rows pseudonymized with the key as the Spark transform does, gold built and
replicated to the ML home by the sync; then 100 subjects present in bronze are erased in one batch
(``serve_location``). ``files_rewritten`` counts data files the deletes rewrote, kept files
removed, commits and checkpoints scrubbed, landing objects rewritten and the ledger's files its
updates wrote; ``bytes_rewritten`` the bytes written (every commit's new data files, the ledger's
included, and landing objects); ``cluster_overhead_bytes`` what the clustered tables' files weigh
more than their rows as one file a day, and the ratio without it; ``verified_absent`` is this
module's own scan of every file of both locations (raw, Parquet decoded, Avro bodies);
``replicas_consistent`` compares the gold replica's files before and after. Silver is written in
two commits (the first days, then the rest) and the demand forecaster is trained
(``train_and_register``, synthetic features: the benchmark runs no Spark) and registered with a
lineage that pins silver_events at the older version holding the first days, as a model trained on
that version records it: the erasure costs that version, so ``models_marked`` counts the versions
it tagged, and ``models_retrained`` the versions the retraining registered that replaced a marked
champion (the next training run, as the erasure's sensor or the CLI asks for it). The MLflow
artifact store is read back too.

Size knobs: ``BENCH_ROWS`` (corpus values for the throughput figure, default 300000),
``BENCH_ERASE_DAYS`` (days landed for the erasure, default 7), ``BENCH_ERASE_EVENTS`` (events
per day, default 2000), ``BENCH_CLUSTER_BUCKETS``, ``BENCH_CLUSTER_MIN_FILE_BYTES`` and
``BENCH_CLUSTER_FILE_BYTES`` (the closed days' clustering, default the configuration's
``privacy.cluster_*``). ``BENCH_PART``: ``discovery``, ``erasure`` or ``all`` (default).

The closed days are clustered as ingest and the silver asset do (bronze by the keyed hash of
``customer_id``, silver by ``customer_hash``: :mod:`pipelines.lake.delta.cluster`), and what
their rewrites superseded is vacuumed before the lake is measured (the steady state, not the
transient copies); ``bronze_files_per_day``, ``silver_files_per_day`` and the seconds to read
one day whole say what the clustering costs readers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import string
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from pipelines.lake.schemas import GOLD_SCHEMA
from pipelines.privacy.detect import BUILTIN_DETECTORS, Detector, luhn_ok, matches, scan_table
from pipelines.privacy.sample import ContentScan, scan_delta
from pipelines.simulation.simulate import SimulationConfig, generate_day

NAIVE: tuple[Detector, ...] = (
    Detector("email", r"\S+@\S+"),
    Detector("phone", r"\+?\d[\d \-().]{7,}\d"),
    Detector("ipv4", r"\d+\.\d+\.\d+\.\d+"),
    Detector("ipv6", r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:]*"),
    Detector("payment_card", r"(?:\d[ \-]?){13,19}"),
    Detector("iban", r"[A-Z]{2}\d{2}[A-Z0-9 ]{10,30}"),
)
FIRST = ["Jane", "Ömer", "Li", "María", "John", "Aiko", "Fatima", "Lukas", "Chloé", "Ravi"]
LAST = ["Doe", "Müller", "Chen", "García", "Smith", "Tanaka", "Khan", "Schmidt", "Martin"]
DOMAINS = ["example.com", "mail.example.de", "corp.example.co.uk", "example.org", "uni.example.sg"]
STREETS = ["Hauptstraße", "Main St", "Rue de Rivoli", "Orchard Road", "Baker Street"]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15),
                                 ("37", 15), ("6011", 16), ("3530", 16)])  # fmt: skip
    while True:
        body = prefix + _digits(rng, length - len(prefix))
        if luhn_ok(body):
            break
    if rng.random() < 0.5:
        return " ".join(body[i : i + 4] for i in range(0, len(body), 4))
    return body


def _iban(rng: random.Random, valid: bool = True) -> str:
    country, length = rng.choice([("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18), ("ES", 24)])
    if country in ("GB", "NL"):
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        bban += _digits(rng, length - 8)
    else:
        bban = _digits(rng, length - 4)
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check % 97) + 1
    iban = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def _phone(rng: random.Random) -> tuple[str, str | None]:
    kind = rng.randrange(8)
    if kind == 0:
        return f"+49{rng.choice(['151', '170', '30'])}{_digits(rng, 8)}", "phone"
    if kind == 1:
        return f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}", "phone"
    if kind == 2:
        return f"+1 ({rng.randint(201, 989)}) {_digits(rng, 3)}-{_digits(rng, 4)}", "phone"
    if kind == 3:
        return f"({rng.randint(201, 989)}) {_digits(rng, 3)}-{_digits(rng, 4)}", "phone"
    if kind == 4:
        return f"{rng.randint(201, 989)}-{_digits(rng, 3)}-{_digits(rng, 4)}", "phone"
    if kind == 5:
        return f"020 {_digits(rng, 4)} {_digits(rng, 4)}", "phone"
    if kind == 6:
        return f"0{rng.choice(['30', '151', '89'])} {_digits(rng, 8)}", "phone"
    return f"+65 {_digits(rng, 4)} {_digits(rng, 4)}", "phone"


def _positive(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(6)
    if kind == 0:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = rng.choice(
            [f"{first}.{last}", f"{first[0]}{last}", f"{first}+shop{rng.randint(1, 99)}"]
        )
        value = f"{local.encode('ascii', 'ignore').decode()}@{rng.choice(DOMAINS)}".lower()
        return value, "email"
    if kind == 1:
        value, _ = _phone(rng)
        return value, "phone"
    if kind == 2:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4)), "ipv4"
    if kind == 3:
        groups = [f"{rng.randrange(65536):x}" for _ in range(8)]
        value = ":".join(groups) if rng.random() < 0.5 else f"2001:db8::{groups[0]}:{groups[1]}"
        return value, "ipv6"
    if kind == 4:
        return _card(rng), "payment_card"
    return _iban(rng), "iban"


def _negative(rng: random.Random) -> str:
    kind = rng.randrange(16)
    day = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(365))
    return [
        lambda: f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        lambda: f"{rng.choice(STREETS)} {rng.randint(1, 200)}, {_digits(rng, 5)} City",
        lambda: f"SKU-{_digits(rng, 10)}",
        lambda: f"order {_digits(rng, rng.choice([10, 12, 14]))}",
        lambda: _digits(rng, 10),
        lambda: f"c{_digits(rng, 6)}",
        lambda: str(np.random.default_rng(rng.randrange(2**32)).bytes(16).hex()),
        lambda: f"{rng.randint(1, 9999)}.{_digits(rng, 2)}",
        lambda: f"{rng.randint(1, 999)}.{_digits(rng, 3)},{_digits(rng, 2)} €",
        lambda: f"${rng.randint(1, 999)},{_digits(rng, 3)}.{_digits(rng, 2)}",
        lambda: f"{day.isoformat()} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
        lambda: f"{day.isoformat()}T{rng.randint(0, 23):02d}:15:30.123456+00:00",
        lambda: f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
        lambda: _luhn_id(rng),
        lambda: _iban(rng, valid=False),
        lambda: f"{rng.randint(1, 999)}.{_digits(rng, 3)}.{_digits(rng, 3)}",
    ][kind]()


def _luhn_id(rng: random.Random) -> str:
    while True:
        value = rng.choice("1789") + _digits(rng, 15)
        if luhn_ok(value):
            return value


def corpus(n: int, seed: int = 29) -> tuple[list[str], list[str | None]]:
    """``n`` labelled values: half personal data (alone or in a sentence), half look-alikes."""
    rng = random.Random(seed)
    values: list[str] = []
    labels: list[str | None] = []
    for i in range(n):
        if i % 2:
            value, label = _positive(rng)
            if rng.random() < 0.3:
                value = f"please contact {value} before {_negative(rng)}"
            values.append(value)
            labels.append(label)
        else:
            value = _negative(rng)
            if rng.random() < 0.3:
                value = f"note: {value} / {_negative(rng)}"
            values.append(value)
            labels.append(None)
    return values, labels


def score(values: list[str], labels: list[str | None], detectors: tuple[Detector, ...]) -> dict:
    """Precision and recall over (value, detector) pairs, overall and per detector."""
    text = pa.array(values, pa.string())
    truth = np.array([label or "" for label in labels])
    tp: dict[str, int] = {}
    fp: dict[str, int] = {}
    fn: dict[str, int] = {}
    for d in detectors:
        fired = matches(d, text).to_numpy(zero_copy_only=False)
        mine = truth == d.name
        tp[d.name] = int((fired & mine).sum())
        fp[d.name] = int((fired & ~mine).sum())
        fn[d.name] = int((~fired & mine).sum())

    def ratio(a: int, b: int) -> float:
        return round(a / b, 4) if b else 1.0

    t, f, m = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {
        "precision": ratio(t, t + f),
        "recall": ratio(t, t + m),
        "false_positives": f,
        "false_negatives": m,
        "per_detector": {
            k: {"precision": ratio(tp[k], tp[k] + fp[k]), "recall": ratio(tp[k], tp[k] + fn[k])}
            for k in tp
        },
    }


def throughput(values: list[str], detectors: tuple[Detector, ...]) -> float:
    """MB/s of text scanned in one column (best of three)."""
    data = pa.table({"v": values})
    size = int(pc.sum(pc.binary_length(data.column("v"))).as_py())
    best = min(_timed(lambda: scan_table(data, detectors)) for _ in range(3))
    return round(size / 1e6 / best, 2)


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def demo_gold(start: dt.date, days: int) -> pd.DataFrame:
    """Gold rows of the simulator's events, aggregated as the gold transform does."""
    frames = []
    for region, currency in (("us", "USD"), ("eu", "EUR"), ("apac", "SGD")):
        sim = SimulationConfig(start=start, end=start + dt.timedelta(days=days - 1))
        for i in range(days):
            frames.append(generate_day(sim, region, start + dt.timedelta(days=i), currency))
    events = pd.concat(frames)
    events["date"] = pd.to_datetime(events["event_ts"], utc=True).dt.date
    events["revenue"] = events["quantity"] * events["unit_price"]
    gold = (
        events.groupby(["date", "region", "store_id", "sku", "category", "currency"])
        .agg(
            quantity=("quantity", "sum"),
            revenue=("revenue", "sum"),
            avg_price=("unit_price", "mean"),
            min_price=("unit_price", "min"),
            max_price=("unit_price", "max"),
            promo_share=("promo", "mean"),
            online_share=("channel", lambda s: float((s == "online").mean())),
            events=("event_id", "count"),
            customers=("customer_id", "nunique"),
        )
        .reset_index()
    )
    return gold


def _raw_scan(root: Path, needles: list[bytes]) -> int:
    """Files under ``root`` holding a needle: raw bytes, Parquet decoded, Avro bodies."""
    import io

    import fastavro
    import pyarrow.parquet as pq

    found = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        text = data
        if path.suffix == ".parquet":
            text += str(pq.read_table(path).to_pylist()).encode()
        elif path.suffix == ".avro":
            rows = fastavro.reader(io.BytesIO(data))
            text += b"\n".join(bytes(r.get("Body") or b"") for r in rows if isinstance(r, dict))
        found += any(n in text for n in needles)
    return found


def _digest(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): hash(p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def _day_read_seconds(uri: str, column: str, day: dt.date) -> float:
    """Seconds to read one day of a table whole (the read-side cost of clustered files)."""
    from pipelines.lake import delta

    t0 = time.perf_counter()
    for _ in range(5):
        table = delta.open_table(uri, {})
        assert table is not None
        table.to_pyarrow_dataset().to_table(filter=pc.field(column) == pa.scalar(day))
    return round((time.perf_counter() - t0) / 5, 4)


def _one_file_a_day_bytes(uri: str) -> int:
    """Bytes of a table's live rows written as one file a partition, as a compaction writes.

    What the same lake would weigh unclustered: the clustering's footers and lost compression
    are the difference.
    """
    import pyarrow.parquet as pq

    from pipelines.lake import delta
    from pipelines.lake.delta.commit import _few_values

    table = delta.open_table(uri, {})
    assert table is not None
    rows = table.to_pyarrow_table()
    cols = list(table.metadata().partition_columns)
    total = 0
    for key in rows.group_by(cols).aggregate([]).to_pylist():
        mask = None
        for c in cols:
            test = pc.equal(rows[c], pa.scalar(key[c], rows.schema.field(c).type))
            mask = test if mask is None else pc.and_(mask, test)
        part = rows.filter(mask).drop_columns(cols)
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink, compression="snappy", use_dictionary=_few_values(part))
        total += sink.getvalue().size
    return total


def erasure(
    home: Path,
    days: int,
    events: int,
    subjects: int = 100,
    cluster: dict[str, int] | None = None,
) -> dict[str, object]:
    """Erase ``subjects`` customers of a simulated week in one batch; the issue's figures.

    ``cluster``: ``privacy.cluster_*`` settings replacing the configuration's (keys without the
    prefix: ``file_bytes``, ``buckets``).
    """
    from pipelines.erasure.models import retraining_due
    from pipelines.erasure.requests import ErasureRequest, keyed_hash
    from pipelines.erasure.serve import serve_location
    from pipelines.ingest import partition as ingest
    from pipelines.lake import delta
    from pipelines.lake.config import load_config
    from pipelines.lake.storage import open_storage
    from pipelines.ml import tracking
    from pipelines.operations import maintenance
    from pipelines.replication.sync import sync
    from pipelines.simulation.simulate import land_day
    from tests.synthetic import synthetic_features

    os.environ["LAKEHOUSE_HOME"] = str(home)
    key = "benchmark-key"
    cfg = load_config("local")
    privacy = cfg.privacy
    if cluster:
        privacy = privacy.model_copy(update={f"cluster_{k}": v for k, v in cluster.items()})
    loc = cfg.location("azure-eu")
    storage = open_storage(loc.root_uri(), {})
    start = dt.date(2026, 10, 1)
    sim = SimulationConfig(
        start=start, end=start + dt.timedelta(days=days - 1), events_per_day=events
    )
    for day in sim.days():
        land_day(sim, loc, storage, day, "EUR")
        ingest.ingest_partition(loc, {}, day, cluster=delta.bronze_clustering(privacy, key))
    bronze = delta.open_table(loc.table_uri("bronze_events"), {}).to_pyarrow_table()
    silver = pa.table(
        {
            "date": pc.cast(bronze["event_ts"], pa.date32()),
            "region": bronze["region"],
            "event_id": bronze["event_id"],
            "quantity": bronze["quantity"],
            "customer_hash": [keyed_hash(key, c) for c in bronze["customer_id"].to_pylist()],
            "email_hash": [
                keyed_hash(key, (e or "").strip().lower()) for e in bronze["email"].to_pylist()
            ],
        }
    )
    silver_uri = loc.table_uri("silver_events")
    first_days = pc.less(silver["date"], pa.scalar(start + dt.timedelta(days=days // 2)))
    pinned_silver = None
    for part in (silver.filter(first_days), silver.filter(pc.invert(first_days))):
        write_deltalake(silver_uri, part, partition_by=["date", "region"], mode="append")
        # as the silver asset does after its Spark step: each written day clustered
        written = sorted(set(part["date"].to_pylist()))
        delta.cluster_partitions(
            silver_uri,
            {},
            [{"date": d, "region": "eu"} for d in written],
            delta.silver_clustering(privacy),
        )
        # the model is trained on the first days as written (and clustered): an older version
        pinned_silver = (
            delta.table_version(silver_uri, {}) if pinned_silver is None else pinned_silver
        )
    # what a closed day's rewrite superseded goes after the retention (VACUUM, here at once:
    # the lake measured is the steady state, not the transient copies of the rewrite)
    for name in ("bronze_events", "bronze_quarantine", "bronze_ingest_ledger", "silver_events"):
        DeltaTable(loc.table_uri(name)).vacuum(
            retention_hours=0, enforce_retention_duration=False, dry_run=False
        )
    gold = pa.Table.from_pandas(
        demo_gold(start, days).query("region == 'eu'"), preserve_index=False
    )
    gold = gold.cast(pa.schema([GOLD_SCHEMA.field(n) for n in gold.column_names]))
    write_deltalake(loc.table_uri("gold_daily_demand"), gold, partition_by=["date", "region"])
    replica = cfg.home.replica_uri("gold_daily_demand", loc.name)
    sync(cfg, loc.table_uri("gold_daily_demand"), replica)
    before = _digest(Path(replica))
    mlflow_home = home / ".mlflow"
    track = tracking.Tracking(
        tracking_uri=f"sqlite:///{mlflow_home / 'mlflow.db'}",
        experiment=cfg.ml.experiment,
        model_name=cfg.ml.model_name,
        artifact_location=str(mlflow_home / "artifacts"),
    )
    mlflow_home.mkdir(parents=True)
    features = synthetic_features(start - dt.timedelta(days=70), 70, stores=3, skus=12)
    features_uri = cfg.home.table_uri("demand_features")
    write_deltalake(features_uri, features, partition_by=["date"])
    end = start - dt.timedelta(days=1)

    def train(silver_version: int, trigger: str) -> tracking.TrainingOutcome:
        return tracking.train_and_register(
            track,
            features.to_pandas(),
            [
                tracking.Lineage("demand_features", features_uri, 0, features.num_rows),
                tracking.Lineage("silver_events", silver_uri, silver_version, 0),
            ],
            cfg.ml,
            params={"max_iter": 20},
            end=end,
            trigger={"trigger": trigger},
        )

    assert pinned_silver is not None
    pinned = train(pinned_silver, "benchmark")
    lake_bytes = sum(p.stat().st_size for p in Path(loc.root_uri()).rglob("*") if p.is_file())
    clustered = ("bronze_events", "silver_events")
    cluster_overhead = sum(
        sum(Path(f).stat().st_size for f in delta.open_table(loc.table_uri(n), {}).file_uris())
        - _one_file_a_day_bytes(loc.table_uri(n))
        for n in clustered
    )
    people = sorted(
        set(zip(bronze["customer_id"].to_pylist(), bronze["email"].to_pylist(), strict=True))
    )
    chosen = random.Random(29).sample(people, subjects)
    requests = [ErasureRequest.new(c, e) for c, e in chosen]
    live_files = sum(
        len(delta.open_table(loc.table_uri(n), {}).file_uris())
        for n in ("bronze_events", "bronze_quarantine", "bronze_ingest_ledger", "silver_events")
        if delta.open_table(loc.table_uri(n), {}) is not None
    )
    read_day = {
        n: _day_read_seconds(loc.table_uri(n), column, start + dt.timedelta(days=1))
        for n, column in (("bronze_events", "landing_date"), ("silver_events", "date"))
    }
    t0 = time.perf_counter()
    done = serve_location(
        cfg,
        loc,
        requests,
        key,
        model_pins_of=maintenance.registry_pins(track, cfg.maintenance),
        tracking=track,
    )
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    retrained = []
    if retraining_due(track):  # what the sensor's retrain_job run or the next training does
        retrained.append(train(delta.table_version(silver_uri, {}), "erasure"))
    retrain_seconds = time.perf_counter() - t1
    needles = [v.encode() for c, e in chosen for v in (c, e)]
    roots = [Path(cfg.location(n).root_uri()) for n in cfg.locations] + [mlflow_home]
    found = sum(_raw_scan(root, needles) for root in roots)
    landing_bytes = sum(
        p.stat().st_size for p in Path(loc.root_uri(), loc.landing.prefix).rglob("*") if p.is_file()
    )
    events = bronze.num_rows
    subject_events = next(t for t in done.tables if t["table"] == "bronze_events")["rows_deleted"]
    return {
        "erase_subjects": subjects,
        "erase_events_deleted": sum(int(t["rows_deleted"]) for t in done.tables),
        "erase_seconds": round(seconds, 2),
        "files_rewritten": done.files_rewritten,
        "bytes_rewritten": done.bytes_rewritten,
        "lake_bytes": lake_bytes,
        "bytes_rewritten_per_lake_byte": round(done.bytes_rewritten / max(lake_bytes, 1), 4),
        # the clustering's own weight (footers, lost compression) left out of the denominator
        "cluster_overhead_bytes": cluster_overhead,
        "bytes_rewritten_per_unclustered_lake_byte": round(
            done.bytes_rewritten / max(lake_bytes - cluster_overhead, 1), 4
        ),
        "landing_objects_rewritten": len(done.landing.rewritten),
        "landing_objects": done.landing.objects_scanned,
        "bytes_scanned": done.read_back.bytes_scanned,
        "verified_absent": found == 0 and not done.read_back.found,
        "replicas_consistent": _digest(Path(replica)) == before,
        "models_marked": len(done.models_marked),
        "models_marked_pinned": [m["trained_on"] for m in done.models_marked],
        "models_retrained": sum(1 for r in retrained if r.promoted and r.version != pinned.version),
        "retraining_due_after": len(retraining_due(track)),
        "retrain_seconds": round(retrain_seconds, 2),
        "mlflow_artifacts_scanned": done.artifacts.files_scanned,
        "mlflow_artifact_bytes_scanned": done.artifacts.bytes_scanned,
        "mlflow_artifacts_removed": len(done.artifacts.removed),
        # why bytes_rewritten_per_lake_byte is what it is (docs/privacy.md)
        "lake_events": events,
        "subject_events": subject_events,
        "landing_bytes": landing_bytes,
        "landing_bytes_rewritten": done.landing.bytes_rewritten,
        "ledger_bytes_rewritten": done.landing.ledger_bytes_rewritten,
        "table_bytes_rewritten": done.bytes_rewritten
        - done.landing.bytes_rewritten
        - done.landing.ledger_bytes_rewritten,
        "table_data_files": live_files,
        "table_data_files_rewritten": sum(int(t["files_rewritten"]) for t in done.tables),
        # the clustering and what it costs readers: files a day, seconds to read a day whole
        "cluster_buckets": privacy.cluster_buckets,
        "cluster_min_file_bytes": privacy.cluster_min_file_bytes,
        "cluster_file_bytes": privacy.cluster_file_bytes,
        "bronze_files_per_day": round(
            len(delta.open_table(loc.table_uri("bronze_events"), {}).file_uris()) / days, 1
        ),
        "silver_files_per_day": round(len(delta.open_table(silver_uri, {}).file_uris()) / days, 1),
        "bronze_day_read_seconds": read_day["bronze_events"],
        "silver_day_read_seconds": read_day["silver_events"],
    }


def main() -> None:
    """Run the benchmark (``BENCH_PART``: discovery, erasure or both); JSON as the last line."""
    part = os.environ.get("BENCH_PART", "all")
    if part not in ("all", "discovery", "erasure"):
        raise SystemExit(f"BENCH_PART={part!r}: one of all, discovery, erasure")
    result = discovery() if part != "erasure" else {}
    if part != "discovery":
        with tempfile.TemporaryDirectory() as tmp:
            days = int(os.environ.get("BENCH_ERASE_DAYS", "7"))
            events = int(os.environ.get("BENCH_ERASE_EVENTS", "2000"))
            knobs = {
                k: int(os.environ[f"BENCH_CLUSTER_{k.upper()}"])
                for k in ("file_bytes", "buckets", "min_file_bytes")
                if os.environ.get(f"BENCH_CLUSTER_{k.upper()}")
            }
            result.update(erasure(Path(tmp), days, events, cluster=knobs))
    print(json.dumps(result))


def discovery() -> dict[str, object]:
    """Precision and recall on the corpus, false positives on gold and features, throughput."""
    values, labels = corpus(20_000)
    ours = score(values, labels, BUILTIN_DETECTORS)
    naive = score(values, labels, NAIVE)
    big, _ = corpus(int(os.environ.get("BENCH_ROWS", "300000")), seed=30)
    with tempfile.TemporaryDirectory() as tmp:
        gold = demo_gold(dt.date(2026, 10, 1), 7)
        gold_table = pa.Table.from_pandas(gold, preserve_index=False)
        gold_table = gold_table.cast(
            pa.schema([GOLD_SCHEMA.field(n) for n in gold_table.column_names])
        )
        write_deltalake(Path(tmp) / "gold", gold_table, partition_by=["date", "region"])
        keys = gold_table.select(["date", "region", "store_id", "sku", "category"])
        rng = np.random.default_rng(3)
        features = keys.append_column("qty_lag_1", pa.array(rng.random(keys.num_rows)))
        write_deltalake(Path(tmp) / "features", features, partition_by=["date"])
        everything = ContentScan(BUILTIN_DETECTORS, max_files=10_000, rows_per_file=10**9)
        _, gold_scan = scan_delta(str(Path(tmp) / "gold"), {}, everything)
        _, feat_scan = scan_delta(str(Path(tmp) / "features"), {}, everything)
        _, naive_gold = scan_delta(str(Path(tmp) / "gold"), {}, ContentScan(NAIVE, 10_000, 10**9))
    result = {
        "corpus_values": len(values),
        "detect_precision": ours["precision"],
        "detect_recall": ours["recall"],
        "detect_per_detector": ours["per_detector"],
        "naive_precision": naive["precision"],
        "naive_recall": naive["recall"],
        "naive_per_detector": naive["per_detector"],
        "detect_false_positives_gold": sum(f.count for f in gold_scan.report.findings),
        "detect_false_positives_features": sum(f.count for f in feat_scan.report.findings),
        "naive_false_positives_gold": sum(f.count for f in naive_gold.report.findings),
        "gold_rows_scanned": gold_scan.report.rows,
        "features_rows_scanned": feat_scan.report.rows,
        "scan_mb_per_s": throughput(big, BUILTIN_DETECTORS),
        # Parquet files read and decoded as the sync's sample is, mostly prefilter misses
        "gold_scan_mb_per_s": round(gold_scan.bytes_read / 1e6 / max(gold_scan.seconds, 1e-9), 2),
        "naive_scan_mb_per_s": throughput(big, NAIVE),
        "throughput_values": len(big),
    }
    return result


if __name__ == "__main__":
    main()
