"""The event simulator: three regions' demand streams, landed in their capture formats.

Deterministic by seed: each (region, day) draws from its own generator, so any day can be
regenerated alone and gives the same bytes. Demand has weekly and yearly seasonality,
promotions with price elasticity, store and SKU heterogeneity, and personal data. Knobs
inject drift from a date in a region, and every kind of bad record the ingest must catch.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.ingest import capture
from pipelines.lake.config import LakeLocation
from pipelines.lake.storage import Storage

CATEGORIES = ("grocery", "beverages", "household", "personal_care", "electronics", "apparel")
BAD_KINDS = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "negative_quantity",
    "future_timestamp",
    "duplicate_event_id",
    "oversized_payload",
    "invalid_utf8",
)
# Quarantine reason (prefix) the ingest gives each bad kind; duplicates are dropped instead.
EXPECTED_REASON = {
    "malformed_json": "malformed_json",
    "missing_field": "missing_field:sku",
    "wrong_type": "wrong_type:quantity",
    "negative_quantity": "negative_quantity",
    "future_timestamp": "future_timestamp",
    "oversized_payload": "oversized_payload",
    "invalid_utf8": "invalid_utf8",
}
_WEEKLY = np.array([0.9, 0.85, 0.9, 0.95, 1.1, 1.35, 1.2])  # Monday..Sunday


@dataclass(frozen=True)
class Drift:
    """From ``start`` on, in ``region``: prices, demand or the category mix shift."""

    region: str
    start: dt.date
    price_shift: float = 1.0
    demand_shift: float = 1.0
    category_mix: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BadDay:
    """One region-day whose share of bad records is ``bad_rate`` instead of the usual.

    What an upstream incident looks like (a producer deploy that breaks a field): the
    anomaly detection on the platform's own metrics must flag these days and no others.
    """

    region: str
    day: dt.date
    bad_rate: float


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate."""

    start: dt.date
    end: dt.date
    seed: int = 7
    events_per_day: int = 2_000
    stores: int = 20
    skus: int = 100
    objects_per_day: int = 24
    late_share: float = 0.01
    drift: Sequence[Drift] = ()
    bad_rate: float = 0.0
    bad_kinds: Sequence[str] = BAD_KINDS
    corrupt_objects_per_day: int = 0
    bad_days: Sequence[BadDay] = ()

    def bad_rate_of(self, region: str, day: dt.date) -> float:
        """The share of bad records of one region-day (a :class:`BadDay`'s, else ``bad_rate``)."""
        hits = [b.bad_rate for b in self.bad_days if b.region == region and b.day == day]
        return hits[-1] if hits else self.bad_rate

    def days(self) -> list[dt.date]:
        """Every simulated day, inclusive."""
        n = (self.end - self.start).days + 1
        if n <= 0:
            raise ValueError(f"simulation end {self.end} is before start {self.start}")
        return [self.start + dt.timedelta(days=i) for i in range(n)]


@dataclass
class DayReport:
    """What was landed for one (region, day): objects, records, and the bad ones by kind."""

    region: str
    day: dt.date
    objects: int = 0
    records: int = 0
    events: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    corrupt_objects: list[str] = field(default_factory=list)


def region_seed(region: str) -> int:
    """A region's own seed, from its name alone (CRC-32: the same in every process).

    A region added to lakehouse.yaml simulates its own stores, SKUs and days, never another's.
    """
    return zlib.crc32(region.encode("utf-8"))


def _catalog(cfg: SimulationConfig, region: str) -> dict[str, np.ndarray]:
    """Stores and SKUs of a region: fixed by the seed, not by the day."""
    rng = np.random.default_rng([cfg.seed, region_seed(region), 0])
    pop = 1.0 / np.arange(1, cfg.skus + 1) ** 0.8
    rng.shuffle(pop)
    return {
        "store_weight": rng.lognormal(0.0, 0.5, cfg.stores),
        "store_price": rng.normal(1.0, 0.05, cfg.stores).clip(0.85, 1.15),
        "sku_pop": pop / pop.sum(),
        "sku_category": rng.integers(0, len(CATEGORIES), cfg.skus),
        "sku_price": np.round(rng.lognormal(1.8, 0.6, cfg.skus), 2).clip(0.5, 500),
        "sku_elasticity": rng.uniform(1.2, 2.5, cfg.skus),
        "sku_qty": rng.uniform(0.3, 3.0, cfg.skus),
    }


def _active_drift(cfg: SimulationConfig, region: str, day: dt.date) -> Drift | None:
    hits = [d for d in cfg.drift if d.region == region and day >= d.start]
    return hits[-1] if hits else None


def generate_day(cfg: SimulationConfig, region: str, day: dt.date, currency: str) -> pd.DataFrame:
    """Clean events of one region and day, sorted by event time, as a DataFrame."""
    rng = np.random.default_rng([cfg.seed, region_seed(region), day.toordinal()])
    cat = _catalog(cfg, region)
    drift = _active_drift(cfg, region, day)
    yearly = 1.0 + 0.15 * np.sin(2 * np.pi * (day.timetuple().tm_yday - 80) / 365.25)
    n = int(rng.poisson(cfg.events_per_day * _WEEKLY[day.weekday()] * yearly))

    promo = rng.random(cfg.skus) < 0.1
    price_mult = np.where(promo, 0.8, 1.0) * (drift.price_shift if drift else 1.0)
    weight = cat["sku_pop"] * price_mult ** (-cat["sku_elasticity"])
    if drift and drift.category_mix:
        mix = np.array([drift.category_mix.get(c, 1.0) for c in CATEGORIES])
        weight = weight * mix[cat["sku_category"]]
    sku = rng.choice(cfg.skus, n, p=weight / weight.sum())
    store = rng.choice(cfg.stores, n, p=cat["store_weight"] / cat["store_weight"].sum())
    demand = cat["sku_qty"][sku] * (drift.demand_shift if drift else 1.0)
    qty = 1 + rng.poisson(demand)
    price = np.round(cat["sku_price"][sku] * cat["store_price"][store] * price_mult[sku], 2)
    seconds = np.sort(rng.integers(0, 86_400_000_000, n)) // 1000 * 1000
    ts = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="us")
    customer = rng.integers(0, 50_000, n)
    ids = rng.integers(0, 2**63 - 1, (n, 2), dtype=np.int64)
    return pd.DataFrame(
        {
            "event_id": [f"{a:016x}-{b:016x}" for a, b in ids],
            "event_ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "region": region,
            "store_id": store + 1,
            "sku": [f"SKU-{s:05d}" for s in sku],
            "category": np.array(CATEGORIES)[cat["sku_category"][sku]],
            "quantity": qty,
            "unit_price": price,
            "currency": currency,
            "promo": promo[sku],
            "channel": np.where(rng.random(n) < 0.3, "online", "store"),
            "customer_id": [f"{region}-{c:06d}" for c in customer],
            "email": [f"customer{c}@{region}.example.com" for c in customer],
        }
    )


def _bad_record(kind: str, raw: bytes, rng: np.random.Generator) -> bytes:
    obj: dict[str, Any] = json.loads(raw)
    if kind == "malformed_json":
        return raw[: max(1, len(raw) // 2)]
    if kind == "missing_field":
        obj.pop("sku")
    elif kind == "wrong_type":
        obj["quantity"] = "three"
    elif kind == "negative_quantity":
        obj["quantity"] = -int(rng.integers(1, 5))
    elif kind == "future_timestamp":
        obj["event_ts"] = "2099-01-01T00:00:00.000000Z"
    elif kind == "oversized_payload":
        obj["note"] = "x" * 70_000
    elif kind == "invalid_utf8":
        return raw.replace(b'"channel": "', b'"channel": "\xff\xfe', 1).replace(
            b'"channel":"', b'"channel":"\xff\xfe', 1
        )
    return json.dumps(obj, separators=(",", ":")).encode()


def to_records(events: pd.DataFrame) -> list[bytes]:
    """Each event as one compact JSON document."""
    if events.empty:
        return []
    text: str = events.to_json(orient="records", lines=True)
    return [line.encode() for line in text.splitlines()]


def land_day(
    cfg: SimulationConfig, location: LakeLocation, storage: Storage, day: dt.date, currency: str
) -> DayReport:
    """Generate one region-day and write it to the location's landing area."""
    region = location.region
    report = DayReport(region=region, day=day)
    events = generate_day(cfg, region, day, currency)
    records = to_records(events)
    rng = np.random.default_rng([cfg.seed, region_seed(region), day.toordinal(), 1])
    n = len(records)
    bad_rate = cfg.bad_rate_of(region, day)
    if bad_rate > 0 and n and cfg.bad_kinds:
        picks = rng.choice(n, min(n, max(len(cfg.bad_kinds), int(n * bad_rate))), replace=False)
        for j, i in enumerate(np.sort(picks)):
            kind = cfg.bad_kinds[j % len(cfg.bad_kinds)]
            report.bad[kind] += 1
            if kind == "duplicate_event_id":
                records.insert(int(i) + 1, records[int(i)])  # redelivered right after
            else:
                records[int(i)] = _bad_record(kind, records[int(i)], rng)
    # Arrival: most events land in their hour's object, a few arrive late, the next day.
    late = rng.random(len(records)) < cfg.late_share
    on_time = [r for r, is_late in zip(records, late, strict=True) if not is_late]
    spill = [r for r, is_late in zip(records, late, strict=True) if is_late]
    chunks = np.array_split(np.arange(len(on_time)), cfg.objects_per_day)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
    step = dt.timedelta(seconds=86_400 // cfg.objects_per_day)
    parts = int(location.landing.options.get("partitions", 1))
    batches = [
        capture.Batch(start + k * step, [on_time[i] for i in idx], partition=k % parts)
        for k, idx in enumerate(chunks)
        if len(idx)
    ]
    if spill:
        next_day = start + dt.timedelta(days=1, seconds=1)
        batches.append(capture.Batch(next_day, spill, partition=0))
    seq_base = day.toordinal() * 1000
    n_corrupt = min(len(batches), cfg.corrupt_objects_per_day)
    corrupt = (
        set(rng.choice(len(batches), n_corrupt, replace=False).tolist()) if n_corrupt else set()
    )
    for k, batch in enumerate(batches):
        key = capture.object_key(location.landing, batch, seq_base + k)
        data = capture.encode(location.landing, batch, seq_base + k)
        if k in corrupt:
            data = data[: len(data) // 2]
            report.corrupt_objects.append(key)
        storage.put(key, data)
        report.objects += 1
        report.records += len(batch.records)
    report.events = len(events)
    return report


def simulate(
    cfg: SimulationConfig,
    locations: Sequence[LakeLocation],
    storages: Sequence[Storage],
    currencies: dict[str, str],
) -> list[DayReport]:
    """Land every day of the simulation in every location."""
    return [
        land_day(cfg, loc, st, day, currencies.get(loc.region, "USD"))
        for loc, st in zip(locations, storages, strict=True)
        for day in cfg.days()
    ]
