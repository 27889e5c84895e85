"""Personal data found by its content: detectors run over Arrow columns, counts never values.

Each detector has two stages. A prefilter in RE2 (``pyarrow.compute.match_substring_regex``)
runs over the whole column in C++ and keeps the few values that could match; a validator in
Python then decides on those candidates alone: the Luhn checksum and issuer prefixes of card
numbers, mod-97 of IBANs, octets of IPv4 addresses, :mod:`ipaddress` for IPv6, digit counts
and boundaries of phone numbers (so ``SKU-0123456789``, prices, dates, times and ids do not
fire). E-mail addresses and configured patterns are decided by the RE2 pass alone.

A :class:`Finding` says the column, the detector, how many sampled values matched and how many
were sampled; it never carries a matched value, so it can be logged, raised and shown.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lake.schemas import RESCUED_COLUMN

# Values scanned per column at most (a sample; the caller bounds rows too).
MAX_VALUES_PER_COLUMN = 20_000
# Longest value a detector looks into: a megabyte of free text is looked at by its start.
MAX_VALUE_CHARS = 4_096

_EMAIL = (
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}"
)

# Phones. International: a ``+``, a country code and 7-14 more digits with spaces, dots,
# hyphens or a parenthesized area code between them. National: grouped digits with a
# separator (``(415) 555-0132``, ``415-555-0132``, ``020 7946 0958``, ``030 12345678``); a bare
# run of digits is an id, a SKU or an amount far more often than a phone, and is not one here.
_PHONE_PRE = r"\+\d|\d[)]?[ .\-/]\d{3}"
_PHONE_INTL = re.compile(r"(?<![\w+\-/.])\+[1-9][\d .\-()]{5,22}\d(?![\w\-/]|\.\d)")
_PHONE_NATIONAL = re.compile(
    r"(?<![\w\-/.,:+])(?<!\d )"
    r"(?:\(\d{2,5}\)[ ]?|\d{2,5}[ .\-/])\d{3,4}[ .\-]\d{4}"
    r"(?![\w\-/:]|[.,]\d| \d)"
    r"|(?<![\w\-/.,:+])(?<!\d )"
    r"(?:\(0\d{1,4}\)[ ]?|0\d{1,4}[ /\-])\d{5,8}"
    r"(?![\w\-/:]|[.,]\d| \d)"
)

_IPV4_PRE = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"
_IPV4 = re.compile(r"(?<![\w.\-])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w\-]|\.\d)")
_IPV6_PRE = r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}"
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f:]{2,39}(?:%[\w]+)?(?![\w:])")

_CARD_PRE = r"\d(?:[ \-]?\d){12,18}"
_CARD = re.compile(r"(?<![\w\-.,+])\d(?:[ \-]?\d){12,18}(?![\w\-]|[.,]\d)")
# Issuer prefixes (IIN) of the card networks: Visa, Mastercard, Amex, Discover, JCB, Diners,
# UnionPay, Maestro. A Luhn-valid number without one is taken for an id (1 in 10 ids pass Luhn).
_CARD_IIN = re.compile(
    r"^(?:4\d{12}(?:\d{3}){0,2}|5[1-5]\d{14}|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}"
    r"|3[47]\d{13}|6(?:011|5\d\d|4[4-9]\d)\d{12,15}|35(?:2[89]|[3-8]\d)\d{12,15}"
    r"|3(?:0[0-5]|[68]\d)\d{11,16}|62\d{14,17}|(?:50|5[6-9]|6\d)\d{10,17})$"
)

_IBAN_PRE = r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}"
_IBAN = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8})(?![A-Za-z0-9])")
# IBAN lengths of the countries that use one most (others: 15-34, mod-97 still decides).
_IBAN_LENGTH = {
    "AT": 20, "BE": 16, "CH": 21, "CZ": 24, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27,
    "GB": 22, "GR": 27, "HU": 28, "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28,
    "PT": 25, "RO": 24, "SE": 24, "SK": 24,
}  # fmt: skip


def luhn_ok(digits: str) -> bool:
    """True when a string of digits passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """True when ``text`` (spaces allowed) is an IBAN: known length and mod-97 equal to 1."""
    iban = text.replace(" ", "").upper()
    want = _IBAN_LENGTH.get(iban[:2])
    if not (15 <= len(iban) <= 34) or (want is not None and len(iban) != want):
        return False
    moved = iban[4:] + iban[:4]
    if not moved.isalnum():
        return False
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _is_card(value: str) -> bool:
    # The digit groups of a spaced IBAN (``DE89 3704 0044 …``) are an account, not a card.
    value = _IBAN.sub(" ", value)
    for m in _CARD.finditer(value):
        digits = re.sub(r"[ \-]", "", m.group(0))
        if _CARD_IIN.match(digits) and luhn_ok(digits):
            return True
    return False


def _is_iban(value: str) -> bool:
    return any(iban_ok(m.group(1)) for m in _IBAN.finditer(value))


def _is_ipv4(value: str) -> bool:
    for m in _IPV4.finditer(value):
        octets = m.groups()
        if all(int(o) <= 255 and (o == "0" or not o.startswith("0")) for o in octets):
            return True
    return False


def _is_ipv6(value: str) -> bool:
    for m in _IPV6.finditer(value):
        token = m.group(0)
        if token.count(":") < 2:
            continue
        try:
            ipaddress.IPv6Address(token)
        except ValueError:
            continue
        return True
    return False


def _is_phone(value: str) -> bool:
    for m in _PHONE_INTL.finditer(value):
        if 8 <= sum(ch.isdigit() for ch in m.group(0)) <= 15:
            return True
    for m in _PHONE_NATIONAL.finditer(value):
        if 9 <= sum(ch.isdigit() for ch in m.group(0)) <= 12:
            return True
    return False


@dataclass(frozen=True)
class Detector:
    """One kind of personal data: an RE2 prefilter and, optionally, a validator of candidates.

    Without a validator the prefilter decides. ``numbers`` says whether integer columns are
    looked at too (their decimal digits: a card number kept as a number is still one).
    """

    name: str
    prefilter: str
    validate: Callable[[str], bool] | None = None
    numbers: bool = False


BUILTIN_DETECTORS: tuple[Detector, ...] = (
    Detector("email", _EMAIL),
    Detector("phone", _PHONE_PRE, _is_phone),
    Detector("ipv4", _IPV4_PRE, _is_ipv4),
    Detector("ipv6", _IPV6_PRE, _is_ipv6),
    Detector("payment_card", _CARD_PRE, _is_card, numbers=True),
    Detector("iban", _IBAN_PRE, _is_iban),
)


def configured_detectors(patterns: Iterable[tuple[str, str]]) -> tuple[Detector, ...]:
    """Detectors of ``privacy.patterns`` (``(name, RE2 regex)``), decided by the regex alone."""
    return tuple(Detector(name, regex) for name, regex in patterns)


def detectors_for(patterns: Iterable[tuple[str, str]] = ()) -> tuple[Detector, ...]:
    """The built-in detectors and the configured ones."""
    return BUILTIN_DETECTORS + configured_detectors(patterns)


@dataclass(frozen=True)
class Finding:
    """Matches of one detector in one column: how many of how many sampled values, no value."""

    column: str
    detector: str
    count: int
    sampled: int

    def describe(self) -> str:
        """``column 'contact' holds email by content (37 of 200 sampled values)``."""
        return (
            f"column {self.column!r} holds {self.detector} by content "
            f"({self.count} of {self.sampled} sampled values)"
        )


@dataclass
class ScanReport:
    """What a scan looked at and what it found."""

    findings: list[Finding] = field(default_factory=list)
    rows: int = 0
    values: int = 0
    bytes: int = 0  # of text looked at (string and binary values, rescued JSON)
    columns: list[str] = field(default_factory=list)

    def merge(self, other: ScanReport) -> None:
        """Add another sample's scan to this one (counts of the same column and detector sum)."""
        counts = {(f.column, f.detector): f for f in self.findings}
        for f in other.findings:
            have = counts.get((f.column, f.detector))
            counts[(f.column, f.detector)] = (
                f
                if have is None
                else Finding(f.column, f.detector, have.count + f.count, have.sampled + f.sampled)
            )
        self.findings = sorted(counts.values(), key=lambda f: (f.column, f.detector))
        self.rows += other.rows
        self.values += other.values
        self.bytes += other.bytes
        self.columns = list(dict.fromkeys([*self.columns, *other.columns]))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (no value ever: columns, detectors and counts)."""
        return {
            "findings": [f.__dict__ for f in self.findings],
            "rows_scanned": self.rows,
            "values_scanned": self.values,
            "bytes_scanned": self.bytes,
            "columns_scanned": self.columns,
        }


def _text_columns(name: str, array: pa.Array) -> Iterator[tuple[str, pa.Array]]:
    """Every text or integer leaf of a column, named by its path (struct, list, map walked)."""
    t = array.type
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_struct(t):
        flat = array.flatten()
        for i, child in enumerate(flat):
            yield from _text_columns(f"{name}.{t.field(i).name}", child)
    elif pa.types.is_map(t):
        yield from _text_columns(f"{name}.key", array.keys)
        yield from _text_columns(f"{name}.value", array.items)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        yield from _text_columns(name, array.flatten())
    elif pa.types.is_dictionary(t):
        yield from _text_columns(name, array.dictionary_decode())
    elif (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_integer(t)
    ):
        yield name, array


def _as_text(array: pa.Array) -> pa.Array:
    """A string array of at most :data:`MAX_VALUES_PER_COLUMN` non-null values, each cut short.

    Binary (the quarantine's raw records) is decoded as UTF-8 with replacement characters:
    bytes that are not text still hold the e-mail address written in them.
    """
    array = array.drop_null()
    if len(array) > MAX_VALUES_PER_COLUMN:
        array = array.slice(0, MAX_VALUES_PER_COLUMN)
    t = array.type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        array = pa.array(
            [b[:MAX_VALUE_CHARS].decode("utf-8", "replace") for b in array.to_pylist()],
            pa.string(),
        )
    elif pa.types.is_integer(t):
        array = pc.cast(array, pa.string())
    if pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string())
    return pc.utf8_slice_codeunits(array, 0, MAX_VALUE_CHARS)


def _rescued_columns(array: pa.Array) -> Iterator[tuple[str, pa.Array]]:
    """The fields kept in ``_rescued_data`` (JSON objects), one array of values per field path."""
    by_path: dict[str, list[str]] = {}
    for text in array.drop_null().slice(0, MAX_VALUES_PER_COLUMN).to_pylist():
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            by_path.setdefault(RESCUED_COLUMN, []).append(str(text))
            continue
        stack: list[tuple[str, object]] = [(RESCUED_COLUMN, doc)]
        while stack:
            path, node = stack.pop()
            if isinstance(node, dict):
                stack.extend((f"{path}.{k}", v) for k, v in node.items())
            elif isinstance(node, list):
                stack.extend((path, v) for v in node)
            elif node is not None:
                by_path.setdefault(path, []).append(str(node))
    for path, values in sorted(by_path.items()):
        yield path, pa.array(values, pa.string())


def matches(detector: Detector, text: pa.Array) -> pa.BooleanArray:
    """Which values of a string array the detector fires on (the validator sees candidates only)."""
    hits = pc.match_substring_regex(text, detector.prefilter)
    if detector.validate is None:
        return pc.fill_null(hits, False)
    mask = pc.fill_null(hits, False).to_numpy(zero_copy_only=False).copy()
    at = mask.nonzero()[0]
    if len(at):
        candidates = pc.take(text, pa.array(at)).to_pylist()
        mask[at] = [detector.validate(v) for v in candidates]
    return pa.array(mask, pa.bool_())


def _count(detector: Detector, text: pa.Array) -> int:
    hits = pc.match_substring_regex(text, detector.prefilter)
    if detector.validate is None:
        return int(pc.sum(hits).as_py() or 0)
    candidates = pc.filter(text, hits)
    if not len(candidates):
        return 0
    return sum(1 for v in candidates.to_pylist() if detector.validate(v))


def scan_column(
    name: str, array: pa.Array, detectors: Sequence[Detector] = BUILTIN_DETECTORS
) -> ScanReport:
    """Run ``detectors`` over one column (nested leaves and rescued JSON fields included)."""
    report = ScanReport(columns=[name])
    leaves = (
        _rescued_columns(array)
        if name == RESCUED_COLUMN and pa.types.is_string(array.type)
        else _text_columns(name, array)
    )
    for path, leaf in leaves:
        numbers = pa.types.is_integer(leaf.type)
        if numbers:
            # A card number kept as a number has 13 to 19 digits: the others are not looked at.
            big = pc.greater_equal(pc.abs(leaf.cast(pa.int64())), 10**12)
            leaf = pc.filter(leaf, pc.fill_null(big, False))
        text = _as_text(leaf)
        report.values += len(text)
        if not numbers:
            report.bytes += int(pc.sum(pc.binary_length(text)).as_py() or 0)
        for detector in detectors:
            if numbers and not detector.numbers:
                continue
            count = _count(detector, text)
            if count:
                report.findings.append(Finding(path, detector.name, count, len(text)))
    return report


def scan_table(
    data: pa.Table,
    detectors: Sequence[Detector] = BUILTIN_DETECTORS,
    *,
    skip: Iterable[str] = (),
) -> ScanReport:
    """Run ``detectors`` over every text column of ``data`` (``skip``: columns not to scan)."""
    skipped = set(skip)
    report = ScanReport()
    for name in data.column_names:
        if name in skipped:
            continue
        column = data.column(name).combine_chunks()
        report.merge(scan_column(name, column, detectors))
    report.rows += data.num_rows
    return report
