"""The erasure request and receipt tables of a location, and what a request names.

A request (``erasure_requests``, registered as personal data: it holds the identifiers to erase)
lives in the location of the subject's region; serving it erases its row with everything else.
A receipt (``erasure_receipts``) is written per request and location served; the subject is
named there only by a keyed hash. A request is pending while it has a row and no receipt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from pipelines.lake import delta
from pipelines.lake.config import LakeLocation
from pipelines.lake.schemas import ERASURE_RECEIPT_SCHEMA, ERASURE_REQUEST_SCHEMA
from pipelines.lake.tables import ERASURE_RECEIPTS, ERASURE_REQUESTS


class RequestError(ValueError):
    """A request that cannot be served as given; the message says what is wrong."""


def normalize_email(email: str) -> str:
    """E-mails compare case- and space-insensitively (silver hashes them so)."""
    return email.strip().lower()


def keyed_hash(key: str, value: str) -> str:
    """HMAC-SHA256 as 64 hex characters: silver's pseudonym of a value under ``key``."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


# what a customer id is made of, and how short one can be: a shorter or odder value matches
# as a "token" in unrelated records (``1`` in every quarantined record with a count of one)
ID_CHARS = "letters, digits, - _ . :"
MIN_ID_LENGTH = 4
_ID = re.compile(r"[A-Za-z0-9_.:\-]+")
# local@domain.tld, no space and one @: what an address looks like, nothing more
_EMAIL = re.compile(r"[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)+")


def check_identifiers(customer_id: object, email: object | None) -> None:
    """Refuse an id or e-mail an erasure cannot safely match; one line, never the value.

    A customer id is at least :data:`MIN_ID_LENGTH` of letters, digits, ``- _ . :``; an
    e-mail looks like ``local@domain.tld`` without spaces. An identifier is personal data:
    the message names the field and why, not what was given.
    """
    if not isinstance(customer_id, str):
        raise RequestError("--customer-id: missing, an erasure needs the subject's customer id")
    if len(customer_id) < MIN_ID_LENGTH:
        raise RequestError(
            f"--customer-id: {len(customer_id)} character(s), an id needs at least "
            f"{MIN_ID_LENGTH} of {ID_CHARS}"
        )
    if not _ID.fullmatch(customer_id):
        bad = sum(1 for c in customer_id if not _ID.fullmatch(c))
        raise RequestError(
            f"--customer-id: {bad} character(s) other than {ID_CHARS}, which an id is made of"
        )
    if email is None:
        return
    if not isinstance(email, str) or not _EMAIL.fullmatch(email):
        raise RequestError("--email: not an e-mail address (local@domain.tld, one @, no spaces)")


@dataclass(frozen=True)
class ErasureRequest:
    """One data subject's request: who, and since when it waits.

    Its identifiers are checked however it is made (:func:`check_identifiers`): by
    :meth:`new` (the CLI, ``--defer``), by :func:`submit`'s callers, and when a pending
    request is read back for the sensor's run.
    """

    request_id: str
    customer_id: str
    email: str | None = None
    requested_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        check_identifiers(self.customer_id, self.email)

    @staticmethod
    def new(
        customer_id: str, email: str | None = None, now: dt.datetime | None = None
    ) -> ErasureRequest:
        """A request with a fresh id, checked (:func:`check_identifiers`), spaces trimmed."""
        customer_id = customer_id.strip() if isinstance(customer_id, str) else customer_id
        email = email.strip() if isinstance(email, str) else email
        at = now or dt.datetime.now(dt.UTC)
        return ErasureRequest(f"er-{uuid.uuid4().hex[:16]}", customer_id, email, at)

    def identifiers(self) -> dict[str, tuple[str, ...]]:
        """The subject's raw identifiers per column (e-mail as given and normalized)."""
        out: dict[str, tuple[str, ...]] = {"customer_id": (self.customer_id,)}
        if self.email:
            out["email"] = tuple(dict.fromkeys([self.email, normalize_email(self.email)]))
        return out

    def pseudonyms(self, key: str) -> dict[str, tuple[str, ...]]:
        """The subject's keyed hashes per silver column."""
        out: dict[str, tuple[str, ...]] = {"customer_hash": (keyed_hash(key, self.customer_id),)}
        if self.email:
            out["email_hash"] = (keyed_hash(key, normalize_email(self.email)),)
        return out

    def subject(self) -> tuple[str, str | None]:
        """What a request is a request of: its identifiers, the e-mail normalized.

        Two requests with the same set are one subject's (compared in memory, never shown).
        """
        return (self.customer_id, normalize_email(self.email) if self.email else None)

    def subject_hash(self, key: str) -> str:
        """What a receipt names the subject by (never the identifiers)."""
        text = f"customer_id={self.customer_id}|email={normalize_email(self.email or '')}"
        return keyed_hash(key, text)


def _write(uri: str, options: Mapping[str, str], rows: pa.Table) -> None:
    delta.append_rows(uri, rows, options, partition_by=["date"])


# The transaction id every recorded request commits under: delta-rs refuses a commit whose
# transaction id a concurrent commit also carries, so of two writers recording at once the
# loser looks at the table again before it records (:func:`submit`).
SUBMIT_APP_ID = "lakehouse-erasure-request"


def submit(
    location: LakeLocation, options: Mapping[str, str], request: ErasureRequest
) -> ErasureRequest:
    """Record a request at the location holding the subject's region (the sensor serves it).

    Safe to repeat: when a request of the same subject (:meth:`ErasureRequest.subject`) is
    pending there, nothing is recorded and that one is returned; else ``request``, recorded.
    The check is made on the version the commit follows, and every recording commits under
    :data:`SUBMIT_APP_ID`: of two recordings at once, the one that loses the race checks again
    on the winner's version, so a subject has at most one pending request at a location.
    """
    uri = location.table_uri(ERASURE_REQUESTS.name)
    held = _pending_of(request, pending(location, options))
    if held is not None:
        return held
    at = request.requested_at or dt.datetime.now(dt.UTC)
    row = {
        "request_id": [request.request_id],
        "requested_at": [at],
        "customer_id": [request.customer_id],
        "email": [request.email],
        "date": [at.date()],
    }
    part = {"date": at.date()}
    rows = pa.table(row, ERASURE_REQUEST_SCHEMA)
    adds = delta.stage_files(uri, rows, part, options, partition_by=["date"])
    found: list[ErasureRequest] = []

    def already(table: DeltaTable) -> bool:
        waiting = _pending_in(delta.read_rows(table), served_ids(location, options))
        found[:] = [r for r in [_pending_of(request, waiting)] if r is not None]
        return bool(found)

    recorded = delta.commit_files(
        uri,
        adds,
        ERASURE_REQUEST_SCHEMA,
        part,
        options,
        replace=False,
        app_id=SUBMIT_APP_ID,
        app_version=time.time_ns() // 1000,
        partition_by=["date"],
        unless=already,
    )
    if not recorded:
        delta.discard_files(uri, options, adds)
        return found[0]
    return request


def _pending_of(request: ErasureRequest, waiting: list[ErasureRequest]) -> ErasureRequest | None:
    """The oldest of ``waiting`` that is a request of ``request``'s subject, if any."""
    same = [r for r in waiting if r.subject() == request.subject()]
    never = dt.datetime.max.replace(tzinfo=dt.UTC)
    return min(same, key=lambda r: r.requested_at or never) if same else None


def _read(uri: str, options: Mapping[str, str], columns: Sequence[str]) -> pa.Table | None:
    table = delta.open_table(uri, options)
    return None if table is None else table.to_pyarrow_table(columns=list(columns))


def served_ids(location: LakeLocation, options: Mapping[str, str]) -> set[str]:
    """Ids of the requests the location holds a receipt for."""
    rows = _read(location.table_uri(ERASURE_RECEIPTS.name), options, ["request_id"])
    return set() if rows is None else {str(r) for r in rows.column("request_id").to_pylist()}


def waiting(location: LakeLocation, options: Mapping[str, str]) -> list[tuple[str, dt.datetime]]:
    """``(request_id, requested_at)`` of every pending request, oldest first (no identifier)."""
    rows = _read(location.table_uri(ERASURE_REQUESTS.name), options, ["request_id", "requested_at"])
    if rows is None or not rows.num_rows:
        return []
    done = served_ids(location, options)
    out = [
        (str(i), at)
        for i, at in zip(
            rows["request_id"].to_pylist(), rows["requested_at"].to_pylist(), strict=True
        )
        if i not in done
    ]
    return sorted(out, key=lambda r: r[1])


def unverified(location: LakeLocation, options: Mapping[str, str]) -> list[str]:
    """Ids of requests served without the read-back finding the subject nowhere."""
    cols = ["request_id", "verified_absent"]
    rows = _read(location.table_uri(ERASURE_RECEIPTS.name), options, cols)
    if rows is None:
        return []
    return sorted(
        str(i) for i, ok in zip(*(rows[c].to_pylist() for c in cols), strict=True) if not ok
    )


def pending(location: LakeLocation, options: Mapping[str, str]) -> list[ErasureRequest]:
    """The pending requests with their identifiers (for the step that serves them)."""
    rows = _read(location.table_uri(ERASURE_REQUESTS.name), options, ERASURE_REQUEST_SCHEMA.names)
    if rows is None or not rows.num_rows:
        return []
    return _pending_in(rows, served_ids(location, options))


def _pending_in(rows: pa.Table, done: set[str]) -> list[ErasureRequest]:
    """The requests of ``rows`` (the request table's) without a receipt among ``done``."""
    if done:
        rows = rows.filter(pc.invert(pc.is_in(rows["request_id"], pa.array(sorted(done)))))
    out = []
    for r in rows.to_pylist():
        try:
            out.append(
                ErasureRequest(r["request_id"], r["customer_id"], r["email"], r["requested_at"])
            )
        except RequestError as exc:  # written around submit: refused, never served broadly
            raise RequestError(f"erasure request {r['request_id']}: {exc}") from None
    return out


def overdue(
    location: LakeLocation, options: Mapping[str, str], deadline_days: int, now: dt.datetime
) -> list[tuple[str, float]]:
    """``(request_id, age in days)`` of the pending requests older than the deadline."""
    out = []
    for request_id, at in waiting(location, options):
        age = (now - at).total_seconds() / 86400
        if age > deadline_days:
            out.append((request_id, round(age, 2)))
    return out


def write_receipts(
    location: LakeLocation, options: Mapping[str, str], rows: list[dict[str, object]]
) -> None:
    """Append receipt rows (``ERASURE_RECEIPT_SCHEMA``) at the location."""
    if rows:
        table = pa.Table.from_pylist(rows, ERASURE_RECEIPT_SCHEMA)
        _write(location.table_uri(ERASURE_RECEIPTS.name), options, table)
