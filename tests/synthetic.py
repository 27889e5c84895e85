"""Synthetic ``demand_features`` with known structure, for tests and benchmarks of the ML part.

Demand per (region, store, SKU) and day is Poisson with a mean that depends on a series level,
the day of week, promotions and price (elasticity -1.5), so a model that learns lags, price,
promo and weekday beats the seasonal-naive baseline. Lags and windows are by calendar date over
days before ``date``, as in the Spark features. A :class:`pipelines.simulation.simulate.Drift`
shifts prices and demand of one region from a date on, as the event simulator does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from pipelines.lake.schemas import FEATURES_SCHEMA
from pipelines.simulation.simulate import Drift

CATEGORIES = ("fresh", "dairy", "bakery", "household")
WEEKLY = np.array([1.0, 0.92, 0.95, 1.0, 1.12, 1.35, 1.2])
WARMUP = 35


def synthetic_features(
    start: dt.date,
    days: int,
    *,
    regions: Sequence[str] = ("us", "eu", "apac"),
    stores: int = 4,
    skus: int = 20,
    seed: int = 0,
    drift: Sequence[Drift] = (),
) -> pa.Table:
    """Feature rows for ``days`` days from ``start``, one per region, store, SKU and day."""
    rng = np.random.default_rng(seed)
    total = WARMUP + days
    dates = [start + dt.timedelta(days=i - WARMUP) for i in range(total)]
    series = [(r, s, k) for r in regions for s in range(1, stores + 1) for k in range(skus)]
    n = len(series)
    level = rng.lognormal(1.2, 0.6, n)
    base_price = np.array([2.0 + 1.5 * (k % 7) for _, _, k in series])
    promo = (rng.random((n, total)) < 0.15).astype(np.float64)
    price = base_price[:, None] * (1 - 0.2 * promo)
    demand = np.ones((n, total))
    for d in drift:
        rows = np.array([r == d.region for r, _, _ in series])
        days_on = np.array([day >= d.start for day in dates])
        price[np.ix_(rows, days_on)] *= d.price_shift
        demand[np.ix_(rows, days_on)] *= d.demand_shift
    dow = np.array([day.weekday() for day in dates])
    lam = (
        level[:, None]
        * WEEKLY[dow][None, :]
        * (price / base_price[:, None]) ** -1.5
        * (1 + 0.8 * promo)
        * demand
    )
    qty = rng.poisson(lam).astype(np.float64)

    def window(values: np.ndarray, t: int, width: int) -> np.ndarray:
        return values[:, t - width : t]

    cols: dict[str, list[np.ndarray]] = {name: [] for name in FEATURES_SCHEMA.names}
    for t in range(WARMUP, total):
        day = dates[t]
        q7, q28 = window(qty, t, 7), window(qty, t, 28)
        parts = {
            "qty_lag_1": qty[:, t - 1],
            "qty_lag_7": qty[:, t - 7],
            "qty_lag_14": qty[:, t - 14],
            "qty_lag_28": qty[:, t - 28],
            "qty_mean_7": q7.mean(1),
            "qty_std_7": q7.std(1),
            "qty_mean_28": q28.mean(1),
            "qty_std_28": q28.std(1),
            "days_sold_28": (q28 > 0).sum(1).astype(np.float64),
            "avg_price": price[:, t],
            "price_rel_28": price[:, t] / window(price, t, 28).mean(1),
            "promo_share": promo[:, t],
            "day_of_week": np.full(n, day.isoweekday(), dtype=np.float64),
            "day_of_month": np.full(n, day.day, dtype=np.float64),
            "month": np.full(n, day.month, dtype=np.float64),
            "is_weekend": np.full(n, float(day.weekday() >= 5)),
            "is_holiday": np.zeros(n),
            "target": qty[:, t],
        }
        cols["date"].append(np.full(n, np.datetime64(day, "D")))
        cols["region"].append(np.array([r for r, _, _ in series], dtype=object))
        cols["store_id"].append(np.array([s for _, s, _ in series], dtype=np.int64))
        cols["sku"].append(np.array([f"SKU-{k:04d}" for _, _, k in series], dtype=object))
        cols["category"].append(
            np.array([CATEGORIES[k % len(CATEGORIES)] for _, _, k in series], dtype=object)
        )
        for name, values in parts.items():
            cols[name].append(values)
    arrays = [pa.array(np.concatenate(cols[f.name]), type=f.type) for f in FEATURES_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=FEATURES_SCHEMA)
