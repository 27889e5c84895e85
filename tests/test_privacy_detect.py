"""Content detectors: what fires, what must not (SKUs, prices, dates, ids), and no value shown."""

import json

import pyarrow as pa
import pytest

from pipelines.privacy.detect import (
    BUILTIN_DETECTORS,
    detectors_for,
    iban_ok,
    luhn_ok,
    scan_column,
    scan_table,
)


def detected(value: str) -> list[str]:
    return [f.detector for f in scan_table(pa.table({"c": [value]})).findings]


@pytest.mark.parametrize(
    ("value", "detector"),
    [
        ("jane.doe+shop@example.co.uk", "email"),
        ("write to Jane.Doe@Example.COM today", "email"),
        ("+4915112345678", "phone"),
        ("+49 151 12345678", "phone"),
        ("+1 (415) 555-0132", "phone"),
        ("(415) 555-0132", "phone"),
        ("415-555-0132", "phone"),
        ("415.555.0132", "phone"),
        ("020 7946 0958", "phone"),
        ("030 12345678", "phone"),
        ("call 0151/12345678 after 6", "phone"),
        ("192.168.1.20", "ipv4"),
        ("client 8.8.8.8 port 53", "ipv4"),
        ("2001:db8::1", "ipv6"),
        ("fe80::1ff:fe23:4567:890a", "ipv6"),
        ("4111 1111 1111 1111", "payment_card"),
        ("5500-0000-0000-0004", "payment_card"),
        ("378282246310005", "payment_card"),
        ("DE89 3704 0044 0532 0130 00", "iban"),
        ("GB29NWBK60161331926819", "iban"),
    ],
)
def test_personal_data_is_found(value, detector):
    assert detected(value) == [detector]


@pytest.mark.parametrize(
    "value",
    [
        "SKU-0123456789",
        "sku-00417",
        "4155550132",  # a bare run of digits: an id, an order number
        "order 12345678901234",
        "1.299,00",
        "1,299.00 USD",
        "price 1234.56 EUR",
        "1.234.567",
        "2026-10-05",
        "2026-10-05 12:30:00",
        "2026-10-05T12:30:00.123456+00:00",
        "12:30:00",
        "978-3-16-148410-0",
        "v1.2.3",
        "10.0.0.256",
        "1.2.3.4.5",
        "4111111111111112",  # fails Luhn
        "1234567812345670",  # passes Luhn, no card network's prefix
        "DE89 3704 0044 0532 0130 01",  # fails mod-97
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "user@localhost",
        "@handle",
        "Berlin, Hauptstraße 5",
    ],
)
def test_look_alikes_are_not_personal_data(value):
    assert detected(value) == []


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE8937040044053201300")  # one character short for Germany


def test_a_finding_names_column_detector_and_counts_never_a_value():
    emails = [f"person{i}@example.org" for i in range(37)] + ["no contact"] * 163
    report = scan_table(pa.table({"contact": emails, "sku": ["SKU-0123456789"] * 200}))
    (finding,) = report.findings
    assert (finding.column, finding.detector, finding.count, finding.sampled) == (
        "contact",
        "email",
        37,
        200,
    )
    shown = finding.describe() + json.dumps(report.as_dict())
    assert "@" not in shown and "person" not in shown
    assert "'contact'" in finding.describe() and "email" in finding.describe()
    assert report.rows == 200 and report.values == 400


def test_nested_binary_integer_and_rescued_fields_are_scanned():
    data = pa.table(
        {
            "payload": pa.array([{"who": {"mail": "a@b.example"}}, None]),
            "tags": pa.array([["x", "+44 20 7946 0958"], []]),
            "raw": pa.array([b'{"email":"c@d.example"}\xff', b"\x00"], pa.binary()),
            "card": pa.array([4111111111111111, 42], pa.int64()),
            "_rescued_data": pa.array(['{"contact": {"ip": "10.1.2.3"}}', "not json +14155550132"]),
        }
    )
    found = {(f.column, f.detector) for f in scan_table(data).findings}
    assert found == {
        ("payload.who.mail", "email"),
        ("tags", "phone"),
        ("raw", "email"),
        ("card", "payment_card"),
        ("_rescued_data.contact.ip", "ipv4"),
        ("_rescued_data", "phone"),
    }


def test_configured_patterns_run_with_the_builtin_ones():
    detectors = detectors_for([("loyalty_card", r"LC-[0-9]{10}")])
    assert len(detectors) == len(BUILTIN_DETECTORS) + 1
    report = scan_column("note", pa.array(["card LC-0123456789", "LC-12"]), detectors)
    assert [(f.detector, f.count) for f in report.findings] == [("loyalty_card", 1)]


def test_numbers_and_ids_of_gold_give_nothing():
    data = pa.table(
        {
            "store_id": pa.array(range(1000), pa.int64()),
            "sku": [f"SKU-{i:010d}" for i in range(1000)],
            "revenue": pa.array([i * 1.37 for i in range(1000)]),
            "currency": ["EUR"] * 1000,
        }
    )
    assert scan_table(data).findings == []


def test_the_configuration_knows_the_builtin_names():
    from pipelines.lake.config import BUILTIN_DETECTOR_NAMES

    assert tuple(d.name for d in BUILTIN_DETECTORS) == BUILTIN_DETECTOR_NAMES


def test_the_benchmark_corpus_scores_at_least_the_goal():
    from benchmarks.privacy import NAIVE, corpus, score

    values, labels = corpus(3000, seed=5)
    ours, naive = score(values, labels, BUILTIN_DETECTORS), score(values, labels, NAIVE)
    assert ours["precision"] >= 0.99 and ours["recall"] >= 0.99, ours
    assert naive["precision"] < ours["precision"]
