"""What every store offers: the :class:`Storage` protocol, object infos, errors, read counts.

Paths are relative to a store's root, with ``/`` separators.
"""

from __future__ import annotations

import builtins
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from pipelines.lake.config import ADAPTER_OPTION

_CLIENT_OPTIONS = {
    "aws_allow_http": "allow_http",
    "azure_allow_http": "allow_http",
    "allow_http": "allow_http",
}
_SKIP = {"aws_s3_allow_unsafe_rename", "aws_conditional_put", ADAPTER_OPTION.lower()}
# deltalake's retry options; obstore takes them as a retry config, not as store config.
_RETRY_OPTIONS = {"max_retries", "retry_timeout"}
CHUNK = 8 * 1024 * 1024
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
# object_store's local uploads are staged as "<name>#<digits>" before their rename.
_STAGED = re.compile(r"#\d+$")


# object_store's etag of a local file: inode, modification time (µs) and size, in hex
_LOCAL_ETAG = re.compile(r"^[0-9a-f]+-([0-9a-f]+-[0-9a-f]+)$")


def stable_etag(etag: str | None) -> str | None:
    """An etag as the lake keeps it: a local file's without its inode (``mtime-size``).

    object_store's local etag is ``inode-mtime-size``. A copy of a lake (``cp -a``, a restore,
    another disk) keeps each file's time and size but not its inode, so with the inode every
    object the ledger holds would look rewritten in place (quarantined whole, counted twice).
    Other stores' etags (quoted MD5s, ``0x…``, base64) do not have that shape and are returned
    as they are; so is an etag already without its inode.
    """
    found = _LOCAL_ETAG.match(etag.strip('"')) if etag else None  # its HEAD quotes it
    return found.group(1) if found else etag


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about one object."""

    path: str
    size: int
    etag: str | None = None
    md5: str | None = None  # hex MD5 of the content, when the store gives one
    modified: float | None = None  # last modification, seconds since the epoch (upkeep's ages)


@dataclass(frozen=True)
class Copied:
    """One streamed copy: bytes moved and the MD5 of what was read."""

    size: int
    md5: str
    source_md5: str | None = None


_READ_LOCK = threading.Lock()
_BYTES_READ: dict[str, int] = {}
_LISTED: dict[str, int] = {}


def count_read(uri: str, size: int) -> None:
    """Add ``size`` bytes read from the store rooted at ``uri`` to the process's counter."""
    with _READ_LOCK:
        _BYTES_READ[uri] = _BYTES_READ.get(uri, 0) + size


def count_listed(uri: str, objects: int) -> None:
    """Add ``objects`` listed (sent by the store, or scanned on a local disk) under ``uri``."""
    with _READ_LOCK:
        _LISTED[uri] = _LISTED.get(uri, 0) + objects


def objects_listed() -> dict[str, int]:
    """Objects listed so far in this process, per store root: what a listing cost.

    A store that filters a listing by ``offset`` itself (S3's StartAfter) counts only what
    it sent; a local folder counts every file it scanned.
    """
    with _READ_LOCK:
        return dict(_LISTED)


def bytes_read() -> dict[str, int]:
    """Bytes read so far in this process, per store root (a snapshot to diff against)."""
    with _READ_LOCK:
        return dict(_BYTES_READ)


def bytes_read_since(before: dict[str, int]) -> dict[str, int]:
    """Bytes read per store root since the snapshot ``before`` (roots that read nothing omitted)."""
    now = bytes_read()
    return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}


def bytes_under(counts: dict[str, int], root: str) -> int:
    """The part of ``counts`` read from stores rooted at or under ``root`` (a location)."""
    base = root.rstrip("/")
    return sum(v for k, v in counts.items() if k == base or k.startswith(base + "/"))


class StorageError(RuntimeError):
    """An object-store operation failed; the message (one line) names the URI."""


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception's message on one line: object_store's first line plus its root cause.

    object_store appends a multi-line ``Debug source:`` dump to every error; the first line
    says what failed and the innermost ``message: "..."`` (an OS error) says why.
    """
    text = str(exc) or type(exc).__name__
    first = text.strip().splitlines()[0].strip() if text.strip() else type(exc).__name__
    causes = re.findall(r'message: "([^"]*)"', text)
    if causes and causes[-1] not in first:
        first = f"{first} ({causes[-1]})"
    return first if len(first) <= limit else first[: limit - 3] + "..."


def check_key(path: str, where: str) -> str:
    """``path`` if it is a relative object key that stays under a store's root.

    Every store gets the same rule, so a key that could climb out of a local folder is
    refused on S3 too: no leading ``/``, no empty, ``.`` or ``..`` segment, no control
    character, valid UTF-8.
    """
    problem = None
    if not path:
        problem = "is empty"
    elif path.startswith(("/", "\\")):
        problem = "is absolute"
    elif any(ord(c) < 32 or ord(c) == 127 for c in path):
        problem = "contains a control character"
    elif any(seg in ("", ".", "..") for seg in path.split("/")):
        problem = "has an empty, '.' or '..' segment"
    else:
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            problem = "is not valid UTF-8"
    if problem:
        raise StorageError(f"{where}: object key {path!r} {problem}; refusing to leave the root")
    return path


class Storage(Protocol):
    """The operations every backend offers."""

    uri: str

    def list(self, prefix: str = "", offset: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in lexical order, those after ``offset`` only if given."""
        ...

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        """The folders directly under ``prefix`` (full paths, no trailing slash), sorted."""
        ...

    def head(self, path: str) -> ObjectInfo | None:
        """The object's size and etag, or None when it does not exist."""
        ...

    def get(self, path: str) -> bytes:
        """The whole object (for small objects: commits, landing files)."""
        ...

    def get_range(self, path: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the object's end): a ranged read."""
        ...

    def put(self, path: str, data: bytes, *, create_only: bool = False) -> bool:
        """Write an object; with ``create_only`` return False instead of overwriting."""
        ...

    def delete(self, path: str) -> None:
        """Remove an object (missing is fine)."""
        ...

    def read_chunks(self, path: str) -> Iterator[bytes]:
        """The object's bytes in chunks of about :data:`CHUNK`, never all at once."""
        ...

    def write_chunks(self, path: str, chunks: Iterable[bytes]) -> None:
        """Write an object from chunks (multipart/resumable upload), replacing any."""
        ...
