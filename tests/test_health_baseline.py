"""The anomaly baseline kept with the health rows: a run reads one earlier day, not weeks (#28).

Synthetic health rows (three regions, a weekly pattern, one spike on the day judged) written
as daily runs keep them, on lakes of different lengths: the day's run reads the same bytes
whatever the history, and judges as the whole window would.
"""

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.lake import delta, tables
from pipelines.lake.config import LakeConfig, load_config
from pipelines.lake.schemas import HEALTH_SCHEMA, REGION_HEALTH_SCHEMA
from pipelines.lake.storage import bytes_read, bytes_read_since, bytes_under
from pipelines.operations import anomaly, health
from tests.helpers import date_partition_bytes

DAY = dt.date(2026, 10, 21)  # the day judged: eu's quarantine rate spikes
REGIONS = ("us", "eu", "apac")


def _row(region: str, day: dt.date) -> dict:
    wiggle = (day.toordinal() * 7 + len(region)) % 5
    spike = region == "eu" and day == DAY
    return {
        "date": day,
        "region": region,
        "location": region,
        "ingested": 1000 + 150 * day.weekday() + 10 * wiggle,
        "quarantined": 4,
        "quarantine_rate": 0.2 if spike else 0.004 + 0.0005 * wiggle,
        "compute_seconds": 20.0 + wiggle,
        "replica_lag_hours": 0.5 if region == "eu" else None,
        "bytes_stored": 1000,
        "egress_bytes": 0,
        "storage_usd_month": 0.0,
        "egress_usd": 0.0,
        "computed_at": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    }


def _measured(days: list[dt.date], schema: pa.Schema = HEALTH_SCHEMA) -> health.Health:
    rows = [_row(r, d) for d in days for r in REGIONS]
    return health.Health(pa.Table.from_pylist(rows, schema=schema), [], {}, days[0], days[-1])


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _kept_history(cfg: LakeConfig, days: int) -> None:
    """``days`` days before DAY, judged and kept as daily runs keep them (one range here)."""
    history = _days(DAY - dt.timedelta(days=days), DAY - dt.timedelta(days=1))
    judged = health.judge(cfg, {}, _measured(history), history)
    health.write(cfg, judged.health, {})


def _health_bytes(cfg: LakeConfig, before: dict[str, int]) -> int:
    return bytes_under(bytes_read_since(before), cfg.home.table_uri(tables.HEALTH.name))


def _day_bytes(cfg: LakeConfig, days: set[dt.date]) -> int:
    return date_partition_bytes(cfg.home.table_uri(tables.HEALTH.name), days)


@pytest.mark.parametrize("days", [28, 91])
def test_a_days_run_reads_the_row_a_week_back_whatever_the_history(
    days, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / f"lake-{days}"))
    monkeypatch.setenv("LAKEHOUSE_ENV", "local")
    cfg = load_config("local")
    _kept_history(cfg, days)
    before = bytes_read()
    judged = health.judge(cfg, {}, _measured([DAY]), [DAY])
    week_back = DAY - anomaly.WEEK
    assert judged.kept.carried
    assert {r["date"] for r in judged.kept.rows} == {week_back}
    # the bytes of one day's files, on 28 days of history as on 91
    assert _health_bytes(cfg, before) == _day_bytes(cfg, {week_back}) > 0
    assert [(a.metric, a.region, a.date) for a in judged.anomalies] == [
        ("quarantine_rate", "eu", DAY)
    ]
    # the same verdicts, bands and points as the whole window's rows give
    window = health.read(cfg, {}, DAY - dt.timedelta(days=62), DAY - dt.timedelta(days=1))
    rows = [health.decoded(r) for r in delta.python_rows(window)]
    assert judged.anomalies == anomaly.detect([*rows, *_measured([DAY]).records()], [DAY])
    assert judged.anomalies[0].points == min(days // 7, anomaly.Baseline().weeks)


def test_each_kept_row_carries_what_it_was_judged_against(lake_home):
    cfg = load_config("local")
    _kept_history(cfg, 70)
    judged = health.judge(cfg, {}, _measured([DAY]), [DAY])
    health.write(cfg, judged.health, {})
    (kept,) = [
        health.decoded(r)
        for r in delta.python_rows(health.read(cfg, {}, DAY, DAY))
        if r["region"] == "eu"
    ]
    weeks = anomaly.Baseline().weeks
    earlier = [DAY - w * anomaly.WEEK for w in range(1, weeks + 1)]
    assert kept[anomaly.HISTORY]["ingested"] == [_row("eu", d)["ingested"] for d in earlier]
    assert kept[anomaly.HISTORY]["replica_lag_hours"] == [0.5] * weeks
    # judged again from its own row alone (as `lakehouse status` does): the same anomaly
    assert anomaly.detect([kept], [DAY]) == judged.anomalies


def test_a_gap_a_week_back_reads_the_window_once_and_judges_the_same(lake_home):
    cfg = load_config("local")
    _kept_history(cfg, 70)
    week_back = DAY - anomaly.WEEK
    carried = health.judge(cfg, {}, _measured([DAY]), [DAY])
    # eu landed nothing a week back: its row is gone, the others stay
    rows = _measured([week_back]).rows
    others = rows.filter(pc.not_equal(rows.column("region"), "eu"))
    kept = health.judge(cfg, {}, health.Health(others, [], {}, week_back, week_back), [week_back])
    health.write(cfg, kept.health, {})
    before = bytes_read()
    judged = health.judge(cfg, {}, _measured([DAY]), [DAY])
    assert not judged.kept.carried
    window = set(_days(DAY - dt.timedelta(days=62), DAY - dt.timedelta(days=1)))
    assert {r["date"] for r in judged.kept.rows} == window
    # the row a week back (us's and apac's), then the window once
    assert _health_bytes(cfg, before) == _day_bytes(cfg, window) + _day_bytes(cfg, {week_back})
    # eu's baseline lost a week (7 earlier points instead of 8), the verdict stands
    weeks = anomaly.Baseline().weeks
    assert [(a.metric, a.region, a.points) for a in carried.anomalies] == [
        ("quarantine_rate", "eu", weeks)
    ]
    assert [(a.metric, a.region, a.points) for a in judged.anomalies] == [
        ("quarantine_rate", "eu", weeks - 1)
    ]


def test_a_table_kept_before_rows_carried_their_history_gains_the_column(lake_home: Path):
    cfg = load_config("local")
    history = _days(DAY - dt.timedelta(days=35), DAY - dt.timedelta(days=1))
    uri = cfg.home.table_uri(tables.HEALTH.name)
    old = _measured(history, REGION_HEALTH_SCHEMA).rows  # the columns before #28
    delta.write_range(uri, old, history[0], history[-1], {}, partition_by=["date"])
    judged = health.judge(cfg, {}, _measured([DAY]), [DAY])
    assert not judged.kept.carried  # no history kept: the window's rows are the baseline
    assert [(a.region, a.date) for a in judged.anomalies] == [("eu", DAY)]
    health.write(cfg, judged.health, {})
    rows = {
        (r["region"], r["date"]): health.decoded(r)
        for r in delta.python_rows(health.read(cfg, {}, history[0], DAY))
    }
    assert rows[("eu", history[0])][anomaly.HISTORY] is None
    assert len(rows[("eu", DAY)][anomaly.HISTORY]["ingested"]) == anomaly.Baseline().weeks
    # the next week's run carries on from the new row
    later = DAY + anomaly.WEEK
    assert health.judge(cfg, {}, _measured([later]), [later]).kept.carried
