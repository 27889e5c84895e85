"""Partition writes: statistics, refusals, and two writers racing on one empty partition."""

import datetime as dt
import multiprocessing as mp

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pipelines import delta

DAY = dt.date(2026, 10, 5)
UTC = dt.UTC


def test_statistics_bound_every_value_and_leave_strings_unbounded():
    rows = pa.table(
        {
            "ts": pa.array(
                [
                    dt.datetime(2026, 10, 5, 0, 0, 0, 1500, tzinfo=UTC),
                    None,
                    dt.datetime(2026, 10, 5, 23, 59, 59, 999_001, tzinfo=UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "qty": [3, -1, 7],
            "price": [1.5, float("nan"), 2.0],
            "day": [DAY] * 3,
            "id": ["b", "a", "c"],
        }
    )
    stats = delta.file_stats(rows)
    assert stats["numRecords"] == 3
    assert stats["nullCount"] == {"ts": 1, "qty": 0, "price": 0, "day": 0, "id": 0}
    # 00:00:00.0015 floors to .001, 23:59:59.999001 ceils to the next second
    assert stats["minValues"] == {"ts": "2026-10-05T00:00:00.001Z", "qty": -1, "day": "2026-10-05"}
    assert stats["maxValues"] == {"ts": "2026-10-06T00:00:00.000Z", "qty": 7, "day": "2026-10-05"}


def test_timestamp_bounds_hold_in_every_unit():
    ns = pa.array([1_000_000_001, 2_999_999_999], pa.timestamp("ns", tz="UTC"))  # sub-microsecond
    seconds = pa.array([1, 3], pa.timestamp("s"))
    stats = delta.file_stats(pa.table({"ns": ns, "s": seconds}))
    assert stats["minValues"] == {"ns": "1970-01-01T00:00:01.000Z", "s": "1970-01-01T00:00:01.000"}
    assert stats["maxValues"] == {"ns": "1970-01-01T00:00:03.000Z", "s": "1970-01-01T00:00:03.000"}


def test_written_files_carry_statistics_deltalake_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(delta, "MIN_FILE_ROWS", 2)
    rows = pa.table({"d": [DAY] * 4, "qty": [1, 2, 30, 40]})
    delta.write_partition(str(tmp_path), rows, {"d": DAY}, {})
    adds = pa.table(DeltaTable(str(tmp_path)).get_add_actions(flatten=True)).to_pydict()
    assert sorted(zip(adds["min.qty"], adds["max.qty"], adds["num_records"], strict=False)) == [
        (1, 2, 2),
        (30, 40, 2),
    ]
    assert delta.table_rows(str(tmp_path), {}) == 4


def test_target_file_size_asks_for_more_files(tmp_path):
    rows = pa.table({"d": [DAY] * 1000, "qty": list(range(1000))})
    delta.write_partition(str(tmp_path), rows, {"d": DAY}, {}, target_file_size=rows.nbytes // 4)
    assert len(DeltaTable(str(tmp_path)).file_uris()) >= 4
    assert delta.table_rows(str(tmp_path), {}) == 1000


def test_an_empty_write_empties_the_partition_and_adds_no_file(tmp_path):
    rows = pa.table({"d": [DAY, DAY], "qty": [1, 2]})
    delta.write_partition(str(tmp_path), rows, {"d": DAY}, {})
    delta.write_partition(str(tmp_path), rows.slice(0, 0), {"d": DAY}, {})
    assert DeltaTable(str(tmp_path)).file_uris() == []
    assert delta.table_version(str(tmp_path), {}) == 2


def test_rows_outside_the_partition_are_refused_before_anything_is_written(tmp_path):
    rows = pa.table({"d": [DAY, DAY + dt.timedelta(days=1)], "qty": [1, 2]})
    with pytest.raises(ValueError, match="1 rows are not in the partition d=2026-10-05"):
        delta.write_partition(str(tmp_path), rows, {"d": DAY}, {})
    with pytest.raises(ValueError, match="does not name the columns"):
        delta.write_partition(str(tmp_path), rows, {"d": DAY}, {}, partition_by=["qty"])
    assert delta.table_version(str(tmp_path), {}) is None


def _write_tagged(uri: str, tag: int) -> None:
    rows = pa.table({"d": [DAY] * 5, "writer": [tag] * 5})
    delta.write_partition(uri, rows, {"d": DAY}, {})


@pytest.mark.parametrize("round_", range(3))
def test_two_writers_of_one_empty_partition_leave_one_writers_rows(tmp_path, round_):
    uri = str(tmp_path / "t")
    DeltaTable.create(
        uri, pa.schema([("d", pa.date32()), ("writer", pa.int64())]), partition_by=["d"]
    )
    ctx = mp.get_context("spawn")  # delta-rs (tokio) must not be forked
    with ctx.Pool(2) as pool:
        pool.starmap(_write_tagged, [(uri, 1), (uri, 2)])
    rows = delta.read_partition(uri, {})
    assert rows.num_rows == 5
    assert len(set(rows["writer"].to_pylist())) == 1
