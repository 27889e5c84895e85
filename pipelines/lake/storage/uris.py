"""Table URIs: parsing and checking the location roots lakehouse.yaml gives."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class UriError(ValueError):
    """A table URI is malformed; the message (one line) names the option and the value."""


# Schemes a table may live under, and the kind of store each names (aliases of one store).
STORE_SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gs",
    "az": "azure",
    "azure": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.*)$", re.DOTALL)
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_AZURE_NETLOC = re.compile(r"^([A-Za-z0-9][A-Za-z0-9\-]*)(?:@([A-Za-z0-9][A-Za-z0-9.\-]*))?$")
_HINT = "give a folder, file:///path, s3://, az://, abfss:// or gs://"


@dataclass(frozen=True)
class TableUri:
    """A validated table location: what to open, and its canonical parts for comparisons.

    ``store`` is ``local``, ``s3``, ``gs`` or ``azure`` (so ``s3a://b/t`` and ``s3://b/t``
    are one place); ``path`` is an absolute, symlink-resolved folder for ``local`` and the key
    prefix (no leading or trailing ``/``) otherwise.
    """

    uri: str
    store: str
    bucket: str
    account: str | None
    path: str

    def within(self, other: TableUri) -> bool:
        """True when this location is ``other`` or lies below it."""
        if (self.store, self.bucket) != (other.store, other.bucket):
            return False
        if self.account and other.account and self.account != other.account:
            return False
        root = other.path.rstrip("/")
        return not root or self.path == other.path or self.path.startswith(root + "/")


def _local_uri(path: str) -> TableUri:
    resolved = str(Path(path).resolve())
    return TableUri(resolved, "local", "", None, resolved)


def parse_uri(value: object, what: str) -> TableUri:
    """Validate a table URI given as ``what`` (an option name, e.g. ``--from``).

    Raises :class:`UriError` naming ``what`` and the value for: an empty value, surrounding
    whitespace, control characters, an unknown scheme, a scheme not followed by ``//``
    (``s3:/bucket``, ``file:/x``), a missing or malformed bucket, a query or fragment, and
    empty, ``.`` or ``..`` segments in an object-store path. A folder is made absolute and
    its symbolic links resolved, so the policy and the store see the same place.
    """

    def bad(problem: str) -> UriError:
        return UriError(f"{what} {value!r}: {problem}")

    if not isinstance(value, str) or not value.strip():
        raise bad(f"is empty; {_HINT}")
    if value != value.strip():
        raise bad("has leading or trailing whitespace")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise bad("contains a control character")
    match = _URI_SCHEME.match(value)
    if match is None:
        return _local_uri(value)
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "file":
        if not rest.startswith("//"):
            raise bad(f"is not a file URI; did you mean 'file:///{rest.lstrip('/')}'?")
        if not rest[2:].startswith("/"):
            raise bad("a file URI needs an absolute path: file:///path")
        return _local_uri(rest[2:])
    return _store_uri(scheme, rest, bad)


def _store_uri(scheme: str, rest: str, bad: Callable[[str], UriError]) -> TableUri:
    """The object-store part of :func:`parse_uri`: scheme, bucket or container, path."""
    if scheme not in STORE_SCHEMES:
        raise bad(f"unknown scheme '{scheme}:'; {_HINT}")
    if not rest.startswith("//"):
        raise bad(f"is not a URI; did you mean '{scheme}://{rest.lstrip('/')}'?")
    if "?" in rest or "#" in rest:
        raise bad("has a query or a fragment ('?' or '#')")
    netloc, _, path = rest[2:].partition("/")
    if not netloc:
        raise bad("names no bucket or container")
    store, account = STORE_SCHEMES[scheme], None
    if store == "azure":
        az = _AZURE_NETLOC.match(netloc)
        if az is None:
            raise bad(f"{netloc!r} is not a container (container or container@account.dfs...)")
        bucket = az.group(1)
        account = az.group(2).split(".")[0].lower() if az.group(2) else None
    elif _BUCKET.match(netloc):
        bucket = netloc
    else:
        raise bad(f"{netloc!r} is not a bucket name")
    path = path.rstrip("/")
    if path and any(seg in ("", ".", "..") for seg in path.split("/")):
        raise bad("has an empty, '.' or '..' path segment")
    uri = f"{scheme}://{netloc}" + (f"/{path}" if path else "")
    return TableUri(uri, store, bucket, account, path)
