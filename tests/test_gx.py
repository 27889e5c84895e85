"""The Great Expectations bridge: cheap input, same results, GX objects built once."""

import dataclasses
import threading

import pyarrow as pa
import pytest

from data_quality import gx
from data_quality.suites import Expect, Suite

SUITE = Suite(
    "probe",
    (
        Expect("ExpectTableColumnsToMatchSet", {"column_set": ["s", "i", "f", "ts", "d", "raw"]}),
        Expect("ExpectTableRowCountToEqual", {"value": "{expected_rows}"}),
        Expect("ExpectColumnValuesToNotBeNull", {"column": "s"}),
        Expect("ExpectColumnValuesToBeUnique", {"column": "s"}),
        Expect("ExpectColumnValuesToBeInSet", {"column": "s", "value_set": ["a", "b"]}),
        Expect("ExpectColumnValuesToBeBetween", {"column": "i", "min_value": 0, "max_value": 3}),
        Expect(
            "ExpectColumnValuesToBeBetween", {"column": "f", "min_value": 0, "strict_min": True}
        ),
        Expect("ExpectColumnValuesToNotBeNull", {"column": "ts"}),
        Expect("ExpectColumnValuesToNotBeNull", {"column": "d"}),
        Expect("ExpectColumnValuesToMatchRegex", {"column": "s", "regex": "^[a-z]$"}),
        Expect("ExpectCompoundColumnsToBeUnique", {"column_list": ["s", "i"]}),
    ),
)


def _table() -> pa.Table:
    return pa.table(
        {
            "s": pa.array(["a", "b", None, "x", "a", "Q"]),
            "i": pa.array([1, 2, None, -1, 5, 1]),
            "f": pa.array([1.0, None, -2.0, 3.0, 4.0, 0.0]),
            "ts": pa.array([1, 2, 3, None, 5, 6], pa.timestamp("us", tz="UTC")),
            "d": pa.array([1, 2, 3, 4, None, 6], pa.date32()),
            "raw": pa.array([b"x"] * 6),  # read by no expectation
        }
    )


def _summary(outcome: gx.SuiteOutcome) -> list[dict]:
    return [o.as_dict() for o in outcome.outcomes]


def test_arrow_input_gives_the_results_of_plain_pandas_in_the_suites_order():
    table = _table()
    arrow = gx.validate(SUITE, table, {"expected_rows": 6})
    plain = gx.validate(SUITE, table.to_pandas(), {"expected_rows": 6})
    assert [o.expectation for o in arrow.outcomes] == [
        "expect_" + "_".join(w.lower() for w in _words(e.type[6:])) for e in SUITE.expectations
    ]
    by_hand = {
        ("expect_column_values_to_not_be_null", "s"): (1, [None]),
        ("expect_column_values_to_be_unique", "s"): (2, ["a", "a"]),
        ("expect_column_values_to_be_in_set", "s"): (2, ["x", "Q"]),
        ("expect_column_values_to_be_between", "i"): (2, [-1, 5]),
        ("expect_column_values_to_be_between", "f"): (2, [-2.0, 0.0]),
        ("expect_column_values_to_not_be_null", "ts"): (1, [None]),
        ("expect_column_values_to_not_be_null", "d"): (1, [None]),
        ("expect_column_values_to_match_regex", "s"): (1, ["Q"]),
    }
    got = {
        (o.expectation, o.column): (o.unexpected_count, o.unexpected_values) for o in arrow.failed
    }
    assert got == by_hand
    assert arrow.rows == plain.rows == 6
    assert _summary(arrow) == _summary(plain)


def _words(camel: str) -> list[str]:
    out, word = [], ""
    for ch in camel:
        if ch.isupper() and word:
            out.append(word)
            word = ""
        word += ch
    return [*out, word]


def test_column_names_are_checked_on_the_whole_schema_though_only_read_columns_are_converted():
    extra = _table().append_column("surprise", pa.array([{"k": 1}] * 6))
    outcome = gx.validate(SUITE, extra, {"expected_rows": 6})
    columns = outcome.outcomes[0]
    assert columns.expectation == "expect_table_columns_to_match_set"
    assert not columns.success
    assert "surprise" in columns.observed_value
    assert outcome.outcomes[1].success  # the row count is the table's, not the zero-row frame's


def test_suites_context_and_batch_definitions_are_built_once_per_process():
    gx.validate(SUITE, _table(), {"expected_rows": 6})
    engine = gx._engine()
    compiled = engine.compiled(SUITE)
    suites_before = dict(compiled._subsets)
    gx.validate(SUITE, _table().slice(0, 2), {"expected_rows": 2})
    assert gx._engine() is engine
    assert engine.compiled(SUITE) is compiled
    assert compiled._subsets == suites_before
    assert set(engine.context.data_sources.all()) <= {"lakehouse_pandas", "lakehouse_spark"}


def test_pandas_batches_are_not_fingerprinted_cell_by_cell():
    """GX hashes every cell of a pandas batch below this size; an upgrade must not bring it back."""
    from great_expectations.execution_engine import pandas_execution_engine

    gx.validate(SUITE, _table(), {"expected_rows": 6})
    assert pandas_execution_engine.HASH_THRESHOLD == 0
    bd = gx._engine().batch_definition("pandas", SUITE.asset)
    batch = bd.get_batch(batch_parameters={"dataframe": _table().to_pandas()})
    assert "pandas_data_fingerprint" not in batch.batch_markers


def test_a_missing_parameter_is_named():
    with pytest.raises(KeyError, match="expected_rows"):
        gx.validate(SUITE, _table(), {})


def test_validations_from_threads_give_each_their_own_result():
    results: dict[int, list[dict]] = {}

    def one(n: int) -> None:
        table = _table().slice(0, n)
        results[n] = _summary(gx.validate(SUITE, table, {"expected_rows": n}))

    threads = [threading.Thread(target=one, args=(n,)) for n in (2, 4, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in (2, 4, 6):
        alone = _summary(gx.validate(SUITE, _table().slice(0, n), {"expected_rows": n}))
        assert results[n] == alone


def _long(rows: int) -> pa.Table:
    """``rows`` rows that pass SUITE but for one value out of range, in the first row."""
    return pa.table(
        {
            "s": pa.array([("a", "b")[n % 2] for n in range(rows)]),
            "i": pa.array([5] + [n % 4 for n in range(1, rows)]),
            "f": pa.array([1.0] * rows),
            "ts": pa.array(range(rows), pa.timestamp("us", tz="UTC")),
            "d": pa.array([1] * rows, pa.date32()),
            "raw": pa.array([b"x"] * rows),
        }
    )


UNIQUE_FREE = Suite(
    "probe_sampled",
    tuple(e for e in SUITE.expectations if "Unique" not in e.type),
    sample_rows=100,
)


def test_a_batch_larger_than_the_sample_is_sampled_and_its_row_count_stays_exact():
    table = _long(1000)
    outcome = gx.validate(UNIQUE_FREE, table, {"expected_rows": 1000})
    assert (outcome.rows, outcome.rows_in_batch, outcome.sampled) == (100, 1000, True)
    count = outcome.outcomes[1]
    assert count.expectation == "expect_table_row_count_to_equal"
    assert count.success and count.observed_value == 1000  # the batch's, not the sample's
    # the first row is always in the sample: its value is caught, counted over the sample
    assert [(o.column, o.unexpected_count, o.unexpected_values) for o in outcome.failed] == [
        ("i", 1, [5])
    ]
    result = gx.check(UNIQUE_FREE, table, {"expected_rows": 1000})
    assert not result.passed
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    assert (meta["rows_validated"], meta["rows_in_batch"], meta["sampled"]) == (100, 1000, True)
    # a count that differs fails though no sampled row shows it
    recount = gx.validate(UNIQUE_FREE, table, {"expected_rows": 999})
    assert not recount.outcomes[1].success and recount.outcomes[1].observed_value == 1000


def test_a_batch_within_the_sample_is_validated_whole_with_the_same_results():
    table = _table()
    sampled = gx.validate(dataclasses.replace(SUITE, sample_rows=6), table, {"expected_rows": 6})
    whole = gx.validate(SUITE, table, {"expected_rows": 6})
    assert (sampled.rows, sampled.rows_in_batch, sampled.sampled) == (6, 6, False)
    assert _summary(sampled) == _summary(whole)
    meta = gx.check(SUITE, table, {"expected_rows": 6}).metadata
    assert (meta["rows_validated"].value, meta["rows_in_batch"].value) == (6, 6)
    assert meta["sampled"].value is False


def test_the_sample_is_evenly_spaced_from_the_first_row_and_the_same_every_time():
    table = pa.table({"n": pa.array(range(1000))})
    picked = gx.sample(table, 4).column("n").to_pylist()
    assert picked == [0, 250, 500, 750] == gx.sample(table, 4).column("n").to_pylist()
    assert gx.sample(table, 1000) is table and gx.sample(table, None) is table


def test_the_ingest_suites_sample_as_configured_and_the_others_read_every_row():
    from data_quality.suites import build_suites
    from pipelines.lake.config import load_config

    cfg = load_config("local")
    built = build_suites(cfg)
    assert cfg.quality.batch_sample_rows == 5000
    assert built["bronze_events"].sample_rows == built["bronze_quarantine"].sample_rows == 5000
    assert {s.sample_rows for n, s in built.items() if not n.startswith("bronze_")} == {None}
