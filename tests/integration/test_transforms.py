"""The pure Spark transforms on small frames with known answers."""

import contextlib
import datetime as dt
import hashlib
import hmac
import io
import math

import pytest

from pipelines.lake.schemas import FEATURES_SCHEMA, GOLD_SCHEMA
from pipelines.spark import transforms as T

pytestmark = pytest.mark.spark

D = dt.date(2026, 10, 1)
KEY = "test-key-0123456789"


def day(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


def plan_text(df) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        df.explain(mode="extended")
    return buf.getvalue()


def test_hmac_is_rfc2104_keyed_stable_and_absent_from_the_plan(spark):
    df = spark.createDataFrame([("alice",), ("bob",), (None,)], "v string")
    long_key = "k" * 100  # longer than a block: hashed first, as RFC 2104 says

    def run(key):
        out = T.pseudonymize(df, T.pii_key_frame(spark, key), {"v": "h"})
        return out, [r.h for r in out.collect()]

    out, got = run(KEY)
    expected = [
        hmac.new(KEY.encode(), v.encode(), hashlib.sha256).hexdigest() for v in ("alice", "bob")
    ]
    assert got == [*expected, None]
    assert run(KEY)[1] == got  # stable
    assert run("another-key")[1][:2] != expected  # keyed
    assert run(long_key)[1][0] == hmac.new(long_key.encode(), b"alice", hashlib.sha256).hexdigest()
    plan = plan_text(out)
    ipad, opad = T.hmac_pads(KEY)
    for secret in (KEY, KEY.encode().hex(), ipad.hex(), opad.hex(), ipad.hex().upper()):
        assert secret not in plan
    assert "v" not in out.columns


def test_empty_key_is_a_clear_error(spark):
    with pytest.raises(T.PiiKeyError, match="LAKEHOUSE_PII_KEY"):
        T.pii_key_frame(spark, "")


BRONZE_SCHEMA = (
    "event_id string, event_ts timestamp, region string, store_id bigint, sku string, "
    "category string, quantity bigint, unit_price double, currency string, promo boolean, "
    "channel string, customer_id string, email string, source_object string, landing_date date"
)


def ev(eid, ts, landing, qty=1, price=2.0, promo=False, channel="store", store=1, sku="S1"):
    return (
        eid, ts, "us", store, sku, "grocery", qty, price, "USD", promo, channel,
        "us-000001", " Customer1@US.example.com ", f"obj-{landing}", landing,
    )  # fmt: skip


def at(n: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(day(n), dt.time(hour))


def test_silver_keeps_late_events_drops_cross_day_duplicates(spark):
    rows = [
        ev("a", at(0, 10), day(0)),
        ev("b", at(0, 23), day(1)),  # late: event day 0, landed day 1
        ev("c", at(0, 12), day(0)),
        ev("c", at(0, 12), day(1)),  # redelivered the next day
        ev("d", at(1, 1), day(1)),  # belongs to day 1
        ev("e", at(-1, 22), day(0)),  # late event of the day before
    ]
    bronze = spark.createDataFrame(rows, BRONZE_SCHEMA)
    key = T.pii_key_frame(spark, KEY)
    silver = T.silver_events(bronze, key, day(0), day(0))
    got = {r.event_id: r for r in silver.collect()}
    assert sorted(got) == ["a", "b", "c"]
    assert got["b"].is_late and not got["a"].is_late
    assert got["c"].landing_date == day(0) and not got["c"].is_late
    assert tuple(silver.columns) == T.SILVER_COLUMNS
    assert not {"customer_id", "email"} & set(silver.columns)
    want = hmac.new(KEY.encode(), b"customer1@us.example.com", hashlib.sha256).hexdigest()
    assert got["a"].email_hash == want
    both = T.silver_events(bronze, key, day(0), day(1))
    assert sorted(r.event_id for r in both.collect()) == ["a", "b", "c", "d"]


def test_gold_aggregates_one_row_per_store_sku_day(spark):
    rows = [
        ev("a", at(0, 1), day(0), qty=2, price=3.0, promo=True),
        ev("b", at(0, 2), day(0), qty=1, price=6.0, channel="online"),
        ev("c", at(0, 3), day(0), qty=5, price=1.0, sku="S2"),
    ]
    silver = T.silver_events(
        spark.createDataFrame(rows, BRONZE_SCHEMA), T.pii_key_frame(spark, KEY), day(0), day(0)
    )
    gold = T.gold_daily_demand(silver)
    assert gold.columns == GOLD_SCHEMA.names
    g = {r.sku: r for r in gold.collect()}
    s1 = g["S1"]
    assert (s1.quantity, s1.revenue, s1.events, s1.customers) == (3, 12.0, 2, 1)
    assert s1.avg_price == pytest.approx(4.0)
    assert (s1.min_price, s1.max_price) == (3.0, 6.0)
    assert s1.promo_share == pytest.approx(2 / 3)
    assert s1.online_share == pytest.approx(1 / 3)
    assert g["S2"].quantity == 5


GOLD_DDL = ", ".join(f"{f.name} {T._spark_type(f.type)}" for f in GOLD_SCHEMA)


def gold_row(n: int, qty: int, price: float = 2.0, sku: str = "S1", region: str = "us"):
    return (day(n), region, 1, sku, "grocery", "USD", qty, qty * price, price, price, price,
            0.0, 0.0, 1, 1)  # fmt: skip


def features(spark, gold_rows, start, end, holidays=()):
    gold = spark.createDataFrame(gold_rows, GOLD_DDL)
    hol = spark.createDataFrame(list(holidays), "region string, date date")
    return T.demand_features(gold, hol, start, end)


def test_lags_and_windows_are_by_calendar_day_across_partitions(spark):
    # S1 sells on days 0, 3, 20, 27 and 28 (sparse); features of day 28 look back 28 days.
    sales = {0: 4, 3: 2, 20: 6, 27: 1, 28: 5}
    gold = [gold_row(n, q, price=2.0 if n < 28 else 3.0) for n, q in sales.items()]
    df = features(spark, gold, day(28), day(28), holidays=[("us", day(28)), ("eu", day(28))])
    assert df.columns == FEATURES_SCHEMA.names
    (r,) = df.collect()
    assert r.target == 5.0
    assert (r.qty_lag_1, r.qty_lag_7, r.qty_lag_14, r.qty_lag_28) == (1.0, 0.0, 0.0, 4.0)
    assert r.qty_mean_7 == pytest.approx(1 / 7)  # days 21..27: only 27 sold; 20 is outside
    window28 = [4, 2, 6, 1] + [0] * 24
    mean28 = sum(window28) / 28
    assert r.qty_mean_28 == pytest.approx(mean28)
    assert r.qty_std_28 == pytest.approx(math.sqrt(sum((x - mean28) ** 2 for x in window28) / 28))
    seven = [1] + [0] * 6
    m7 = sum(seven) / 7
    assert r.qty_std_7 == pytest.approx(math.sqrt(sum((x - m7) ** 2 for x in seven) / 7))
    assert r.days_sold_28 == 4.0
    assert r.price_rel_28 == pytest.approx(3.0 / 2.0)
    assert r.is_holiday == 1.0
    assert (r.day_of_week, r.day_of_month, r.month) == (day(28).isoweekday(), 29.0, 10.0)
    assert r.is_weekend == float(day(28).isoweekday() >= 6)


def test_first_sale_has_zero_history_and_neutral_price(spark):
    (r,) = features(spark, [gold_row(5, 3)], day(5), day(5)).collect()
    assert (r.qty_lag_1, r.qty_mean_28, r.qty_std_28, r.days_sold_28) == (0.0, 0.0, 0.0, 0.0)
    assert r.price_rel_28 == 1.0
    assert r.is_holiday == 0.0


def test_range_equals_day_by_day_and_one_row_per_gold_row(spark):
    gold = [gold_row(n, (n * 7) % 5 + 1, sku=s, region=reg)
            for n in range(0, 40, 3) for s in ("S1", "S2") for reg in ("us", "eu")]  # fmt: skip
    gold += [gold_row(n, 2, sku="S3") for n in (30, 31, 32, 33)]
    start, end = day(29), day(38)
    whole = features(spark, gold, start, end).orderBy(*T.SERIES, "date").collect()
    by_day = []
    for n in range(29, 39):
        lo = day(n) - dt.timedelta(days=T.LOOKBACK_DAYS)
        window = [g for g in gold if lo <= g[0] <= day(n)]  # read only the look-back
        by_day += features(spark, window, day(n), day(n)).collect()
    key = lambda r: (r.region, r.store_id, r.sku, r.date)  # noqa: E731
    assert sorted(by_day, key=key) == sorted(whole, key=key)
    in_range = [g for g in gold if start <= g[0] <= end]
    assert len(whole) == len(in_range)
