"""Partition writes: statistics, refusals, and two writers racing on one empty partition."""

import datetime as dt
import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pipelines.lake import delta
from tests.helpers import in_processes

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
    monkeypatch.setattr(delta.commit, "MIN_FILE_ROWS", 2)
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
    in_processes(_write_tagged, [(uri, 1), (uri, 2)])
    rows = delta.read_partition(uri, {})
    assert rows.num_rows == 5
    assert len(set(rows["writer"].to_pylist())) == 1


def _strict(text: str) -> object:
    def refuse(token: str) -> object:
        raise ValueError(f"non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _log_lines(uri: str) -> list[dict]:
    """Every action of every commit, parsed strictly, its statistics too."""
    actions = []
    for path in sorted((Path(uri) / "_delta_log").glob("*.json")):
        for line in path.read_text().splitlines():
            action = _strict(line)
            stats = action.get("add", {}).get("stats")
            if stats:
                _strict(stats)
            actions.append(action)
    return actions


NON_FINITE = [float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("bad", NON_FINITE)
def test_non_finite_floats_leave_the_log_strict_json_and_the_table_readable(tmp_path, bad):
    rows = pa.table(
        {
            "d": [DAY] * 3,
            "price": [1.5, bad, 2.0],
            "f32": pa.array([bad, 1.0, None], pa.float32()),
            "qty": [1, 2, 3],
        }
    )
    uri = str(tmp_path / "t")
    delta.write_partition(uri, rows, {"d": DAY}, {})
    actions = _log_lines(uri)
    (stats,) = [_strict(a["add"]["stats"]) for a in actions if "add" in a]
    assert "price" not in stats["minValues"] and "f32" not in stats["maxValues"]
    assert stats["minValues"]["qty"] == 1
    back = DeltaTable(uri).to_pyarrow_table()
    assert back.num_rows == 3
    assert sorted(back["qty"].to_pylist()) == [1, 2, 3]
    got = back.sort_by("qty")["price"].to_pylist()[1]
    assert math.isnan(got) if math.isnan(bad) else got == bad


def test_timestamps_and_dates_at_the_calendars_edges_get_no_unreadable_bounds(tmp_path):
    edge = pa.array([-62135596800000000 - 1, 253402300799999999 + 1], pa.timestamp("us", tz="UTC"))
    near = pa.array([253402300799999900, 0], pa.timestamp("us", tz="UTC"))  # ceil past 9999
    early = pa.array([-62135596800000000, -62135596800000000 + 1500], pa.timestamp("us"))
    rows = pa.table(
        {
            "d": [DAY, DAY],
            "edge": edge,
            "near": near,
            "early": early,
            "far_day": pa.array([3_000_000, 0], pa.date32()),  # about year 10183
        }
    )
    uri = str(tmp_path / "t")
    delta.write_partition(uri, rows, {"d": DAY}, {})
    (stats,) = [_strict(a["add"]["stats"]) for a in _log_lines(uri) if "add" in a]
    for col in ("edge", "near", "far_day"):
        assert col not in stats["minValues"] and col not in stats["maxValues"]
    assert stats["minValues"]["early"] == "0001-01-01T00:00:00.000"
    assert stats["maxValues"]["early"] == "0001-01-01T00:00:00.002"
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 2


def test_stats_json_refuses_what_json_cannot_hold():
    with pytest.raises(ValueError):
        delta.stats_json({"minValues": {"x": float("nan")}})


def test_commit_infos_read_through_the_store_equal_delta_rs_history(tmp_path):
    """What lineage reads (without delta-rs's history(), which keeps the GIL while reading)."""
    from deltalake import CommitProperties, write_deltalake

    from pipelines.lake.delta.read import commit_infos

    uri = str(tmp_path / "t")
    for i in range(3):
        meta = {"lakehouse.inputs": json.dumps([{"uri": "s3://b/x", "version": i}])}
        write_deltalake(
            uri,
            pa.table({"a": [i]}),
            mode="append",
            commit_properties=CommitProperties(custom_metadata=meta),
        )
    theirs = DeltaTable(uri).history()
    ours = commit_infos(uri, {}, 2)
    assert [e["version"] for e in ours] == [e["version"] for e in theirs] == [2, 1, 0]
    for a, b in zip(ours, theirs, strict=True):
        assert a["lakehouse.inputs"] == b["lakehouse.inputs"]
        assert a["operation"] == b["operation"]
    assert [e["version"] for e in commit_infos(uri, {}, 1)] == [1, 0]  # up to a version


def test_statistics_cover_only_the_columns_a_table_names(tmp_path):
    rows = pa.table({"d": [DAY] * 2, "qty": [1, 9], "hash": ["a" * 64, "b" * 64]})
    stats = delta.file_stats(rows, ("qty",))
    assert stats == {
        "numRecords": 2,
        "minValues": {"qty": 1},
        "maxValues": {"qty": 9},
        "nullCount": {"qty": 0},
    }
    # a rewrite (here: clustering by a hashed column) keeps the table's choice
    uri = str(tmp_path / "t")
    from deltalake import write_deltalake

    write_deltalake(
        uri, rows, partition_by=["d"], configuration={"delta.dataSkippingStatsColumns": "qty"}
    )
    write_deltalake(uri, rows, partition_by=["d"], mode="append")
    got = delta.cluster_partitions(uri, {}, [{"d": DAY}], delta.Clustering("hash", 1, buckets=2))
    assert got["files_added"] == 2
    newest = sorted((Path(uri) / "_delta_log").glob("*.json"))[-1].read_text().splitlines()
    adds = [json.loads(line)["add"] for line in newest if '"add"' in line]
    assert len(adds) == 2
    assert all(set(json.loads(a["stats"])["nullCount"]) == {"qty"} for a in adds)
    log = "".join(p.read_text() for p in sorted((Path(uri) / "_delta_log").glob("*.json")))
    assert "a" * 32 not in log and "b" * 32 not in log  # no hash bound in any commit
    assert delta.table_rows(uri, {}) == 4


def _bronze_rows(n: int, writer: int) -> pa.Table:
    from pipelines.lake import schemas

    rows = {f.name: pa.nulls(n, f.type) for f in schemas.BRONZE_SCHEMA}
    rows.update(
        event_id=pa.array([f"w{writer}-{i}" for i in range(n)]),
        event_ts=pa.array([dt.datetime(2026, 10, 5, 1, i, tzinfo=dt.UTC) for i in range(n)]),
        store_id=pa.array([writer] * n, pa.int64()),
        region=pa.array(["us"] * n),
        landing_date=pa.array([DAY] * n),
    )
    return pa.table(rows, schema=schemas.BRONZE_SCHEMA)


def _append_bronze(uri: str, writer: int) -> None:
    delta.append_rows(uri, _bronze_rows(3, writer), {}, partition_by=["landing_date", "region"])


def _stats_of_adds(uri: str) -> list[dict]:
    return [json.loads(a["add"]["stats"]) for a in _log_lines(uri) if "add" in a]


def test_a_registered_table_written_by_delta_rs_keeps_statistics_on_its_columns(tmp_path):
    from pipelines.lake import tables

    uri = str(tmp_path / "bronze_events")  # known to the registry by its folder's name
    _append_bronze(uri, 1)
    config = DeltaTable(uri).metadata().configuration
    assert config[tables.STATS_COLUMNS] == "event_ts"
    assert config["delta.checkpointInterval"] == "10"  # the engine's own settings stay
    (stats,) = _stats_of_adds(uri)
    assert set(stats["nullCount"]) == {"event_ts"} and set(stats["minValues"]) == {"event_ts"}
    assert stats["numRecords"] == 3
    assert stats["minValues"]["event_ts"] == "2026-10-05T01:00:00.000Z"
    # a folder of another name gets every column's, as before
    other = str(tmp_path / "my_events")
    _append_bronze(other, 1)
    assert "store_id" in _stats_of_adds(other)[0]["nullCount"]
    assert tables.STATS_COLUMNS not in DeltaTable(other).metadata().configuration


def test_an_older_registered_table_gets_its_statistics_columns_once(tmp_path):
    from pipelines.lake import tables

    uri = str(tmp_path / "bronze_events")
    DeltaTable.create(  # as an earlier version made it: no property
        uri, _bronze_rows(0, 0).schema, partition_by=["landing_date", "region"]
    )
    # two writers set it at once: one commit wins, both append
    in_processes(_append_bronze, [(uri, 1), (uri, 2)])
    _append_bronze(uri, 3)
    metadata = [a for a in _log_lines(uri) if "metaData" in a]
    assert len(metadata) == 2  # the creation, then the property set once
    assert DeltaTable(uri).metadata().configuration[tables.STATS_COLUMNS] == "event_ts"
    assert all(set(s["nullCount"]) == {"event_ts"} for s in _stats_of_adds(uri))
    rows = delta.read_partition(uri, {})
    assert sorted(rows["store_id"].to_pylist()) == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_the_registry_names_statistics_columns_it_holds():
    from pipelines.lake import tables

    assert tables.SILVER.properties() == {tables.STATS_COLUMNS: "event_ts,landing_date,store_id"}
    assert tables.BRONZE.properties() == {tables.STATS_COLUMNS: "event_ts"}
    assert tables.FORECAST.properties() == {}  # none named: every column
    with pytest.raises(ValueError, match=r"silver_x: statistics columns \['date', 'nope'\]"):
        tables._spec(
            "silver_x", ("date", "x"), ["date"], tables.Role.REGION, False, "", ("nope", "date")
        )
