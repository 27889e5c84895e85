"""One storage layer for every lake location, built on obstore.

A :class:`Storage` is rooted at a URI (a folder, ``s3://``, ``az://``/``abfss://`` or ``gs://``)
and offers the few operations the engines need: list (from an offset), head, get, conditional
put and streaming copy between stores. Paths are relative to the root, with ``/`` separators.

GCS emulators on PyPI and npm do not speak the XML upload API that object_store uses (see
docs/), so a location whose options name ``GCS_EMULATOR_ENDPOINT`` goes through the GCS JSON
API with google-cloud-storage instead; real GCS goes through obstore like the rest.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import datetime as dt
import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError
from obstore.store import LocalStore, from_url

from pipelines.lake.config import ADAPTER_OPTION, GCS_JSON_EMULATOR

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


def count_read(uri: str, size: int) -> None:
    """Add ``size`` bytes read from the store rooted at ``uri`` to the process's counter."""
    with _READ_LOCK:
        _BYTES_READ[uri] = _BYTES_READ.get(uri, 0) + size


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


def _seconds(value: str) -> float:
    text = str(value).strip().lower()
    scale = 60.0 if text.endswith("m") and not text.endswith("ms") else 1.0
    if text.endswith("ms"):
        scale, text = 0.001, text[:-2]
    return float(text.rstrip("sm")) * scale


def _split_options(
    options: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    for key, value in options.items():
        k = key.lower()
        if k in _CLIENT_OPTIONS:
            client[_CLIENT_OPTIONS[k]] = str(value).lower() == "true"
        elif k in _SKIP:
            continue
        elif k in _RETRY_OPTIONS:
            try:
                if k == "max_retries":
                    retry[k] = int(value)
                else:
                    retry[k] = dt.timedelta(seconds=_seconds(value))
            except ValueError:
                raise StorageError(f"storage option {key}={value!r} is not a number") from None
        else:
            config[k] = value
    return config, client, retry


class ObstoreStorage:
    """Storage over obstore: local folders, S3, Azure Blob/ADLS and GCS.

    A local store never leaves its folder: every key is checked (:func:`check_key`), no
    symbolic link below the root is followed (an operation on one is refused, a listing shows
    it without descending into it), and the resolved path must lie under the resolved root.
    """

    def __init__(
        self, uri: str, options: dict[str, str] | None = None, *, create: bool = True
    ) -> None:
        """Root a store at ``uri``; ``options`` are deltalake-style storage options.

        A missing local root is created by the first write, or is an error when ``create`` is
        False (a source must already exist: reading never creates anything).
        """
        self.uri = uri.rstrip("/") or uri
        self.options = dict(options or {})
        # S3's ETag of a single-part upload is the content's MD5; other stores' are opaque.
        self.etag_is_md5 = uri.startswith(("s3://", "s3a://"))
        self.local_root: Path | None = None
        self.store: Any = None
        if "://" not in uri or uri.startswith("file://"):
            path = Path(uri.removeprefix("file://"))
            try:
                exists = path.exists()
                if exists and not path.is_dir():
                    raise StorageError(f"{uri} is not a folder")
            except OSError as exc:
                raise StorageError(f"{uri}: cannot use as a folder: {one_line(exc)}") from None
            if not exists and not create:
                raise StorageError(f"{uri} does not exist")
            self.local_root = path.resolve()
            if exists:
                self.store = LocalStore(prefix=self.local_root)
            # else: created by the first write, so a refused or failed sync leaves no folder
        else:
            config, client, retry = _split_options(self.options)
            try:
                self.store = from_url(
                    self.uri,
                    config=config or None,  # type: ignore[arg-type]
                    client_options=client or None,  # type: ignore[arg-type]
                    retry_config=retry or None,  # type: ignore[arg-type]
                )
            except (BaseError, ValueError) as exc:
                raise StorageError(f"{uri}: cannot open the store: {one_line(exc)}") from None

    def _writable(self) -> Any:
        """The store, creating a missing local root first."""
        if self.store is None:
            assert self.local_root is not None
            try:
                self.local_root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"{self.uri}: cannot create the folder: {one_line(exc)}"
                ) from None
            self.store = LocalStore(prefix=self.local_root)
        return self.store

    def _fail(self, op: str, path: str, exc: BaseException) -> StorageError:
        return StorageError(f"{op} {self.uri}/{path} failed: {one_line(exc)}")

    def _key(self, path: str) -> str:
        """``path`` checked; on a local store also free of symbolic links and inside the root."""
        check_key(path, self.uri)
        root = self.local_root
        if root is None:
            return path
        current = root
        for part in path.split("/"):
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                break  # nothing below exists yet (a write creates it as a real folder)
            except OSError as exc:
                raise self._fail("check", path, exc) from None
            if stat.S_ISLNK(mode):
                raise StorageError(
                    f"{self.uri}/{path}: {current} is a symbolic link; a local store never "
                    "follows links below its root (they could lead anywhere on the machine)"
                )
        real = os.path.realpath(root / path)
        if real != str(root) and not real.startswith(str(root).rstrip("/") + "/"):
            raise StorageError(f"{self.uri}/{path} resolves to {real}, outside {root}")
        return path

    def list(self, prefix: str = "", offset: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in lexical order, those after ``offset`` only if given."""
        if self.local_root is not None:
            base = prefix.strip("/")
            if base:
                self._key(base)  # the listed folder itself must not be (under) a link
            try:
                return iter(_scan_local(self.local_root, base, offset))
            except OSError as exc:
                raise self._fail("list", prefix, exc) from None
        try:
            stream = obstore.list(self.store, prefix=prefix or None, offset=offset, chunk_size=1000)
            items = [m for chunk in stream for m in chunk]
        except NotFoundError:
            return iter(())
        except BaseError as exc:
            raise self._fail("list", prefix, exc) from None
        items.sort(key=lambda m: m["path"])
        return iter(self._info(m) for m in items)

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        """The folders directly under ``prefix`` (full paths, no trailing slash), sorted."""
        base = prefix.strip("/")
        if self.local_root is not None:
            if base:
                self._key(base)  # the listed folder itself must not be (under) a link
            try:
                with os.scandir(self.local_root / base if base else self.local_root) as entries:
                    found = [
                        "/".join(p for p in (base, e.name) if p)
                        for e in entries
                        if e.is_dir(follow_symlinks=False)
                    ]
            except (FileNotFoundError, NotADirectoryError):
                return []
            return sorted(found)
        try:
            common = obstore.list_with_delimiter(self.store, prefix or None)["common_prefixes"]
        except NotFoundError:
            return []
        except BaseError as exc:
            raise self._fail("list", prefix, exc) from None
        return sorted(p.rstrip("/") for p in common)

    def _os_path(self, path: str) -> bytes | None:
        """The OS path of a local object whose name is not UTF-8 (None for every other).

        Such a name (listed with its bytes kept as surrogates) can be read, so the ingest can
        quarantine it with its bytes, but never written anywhere as a key.
        """
        if self.local_root is None or path.isascii():
            return None
        try:
            path.encode("utf-8")
            return None
        except UnicodeEncodeError:
            pass
        # the same rules as any key (no '..', not absolute, no link on the way), on its shape
        self._key(path.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        full = os.path.join(os.fsencode(self.local_root), os.fsencode(path))
        if os.path.islink(full):
            raise StorageError(f"{self.uri}/{path!r} is a symbolic link; never followed")
        return full

    def _info(self, meta: Any) -> ObjectInfo:
        etag = meta.get("e_tag")
        md5 = None
        if self.etag_is_md5 and etag and _MD5_ETAG.match(etag.strip('"')):
            md5 = etag.strip('"')
        stamp = meta.get("last_modified")
        modified = stamp.timestamp() if hasattr(stamp, "timestamp") else None
        return ObjectInfo(meta["path"], int(meta["size"]), etag, md5, modified)

    def head(self, path: str) -> ObjectInfo | None:
        """The object's size and etag, or None when it does not exist."""
        key = self._key(path)
        if self.store is None:
            return None
        try:
            m = obstore.head(self.store, key)
        except (NotFoundError, FileNotFoundError):
            return None
        except BaseError as exc:
            raise self._fail("head", path, exc) from None
        return self._info(m)

    def get(self, path: str) -> bytes:
        """The whole object."""
        os_path = self._os_path(path)
        if os_path is not None:
            with open(os_path, "rb") as fh:
                data = fh.read()
            count_read(self.uri, len(data))
            return data
        key = self._key(path)
        try:
            if self.store is None:
                raise FileNotFoundError(path)
            got = bytes(obstore.get(self.store, key).bytes())
            count_read(self.uri, len(got))
            return got
        except (NotFoundError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc
        except BaseError as exc:
            raise self._fail("get", path, exc) from None

    def put(self, path: str, data: bytes, *, create_only: bool = False) -> bool:
        """Write an object; with ``create_only`` return False instead of overwriting."""
        try:
            key = self._key(path)
            obstore.put(self._writable(), key, data, mode="create" if create_only else "overwrite")
        except (AlreadyExistsError, FileExistsError):
            return False
        except BaseError as exc:
            raise self._fail("put", path, exc) from None
        return True

    def delete(self, path: str) -> None:
        """Remove an object (missing is fine)."""
        key = self._key(path)
        if self.store is None:
            return
        try:
            obstore.delete(self.store, key)
        except (NotFoundError, FileNotFoundError):
            pass
        except BaseError as exc:
            raise self._fail("delete", path, exc) from None

    def _get(self, path: str) -> Any:
        """The obstore response to a GET of ``path``; a missing object is FileNotFoundError."""
        try:
            if self.store is None:
                raise FileNotFoundError(path)
            return obstore.get(self.store, self._key(path))
        except (NotFoundError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc
        except BaseError as exc:
            raise self._fail("get", path, exc) from None

    def open_read(self, path: str) -> tuple[ObjectInfo, Iterator[bytes]]:
        """The object's listing facts and its bytes in chunks of about :data:`CHUNK`."""
        resp = self._get(path)

        def chunks() -> Iterator[bytes]:
            try:
                for chunk in resp.stream(min_chunk_size=CHUNK):
                    count_read(self.uri, len(chunk))
                    yield bytes(chunk)
            except BaseError as exc:
                raise self._fail("read", path, exc) from None

        return self._info(resp.meta), chunks()

    def read_chunks(self, path: str) -> Iterator[bytes]:
        """The object's bytes in chunks of about :data:`CHUNK`."""
        os_path = self._os_path(path)
        if os_path is not None:
            with open(os_path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    count_read(self.uri, len(chunk))
                    yield chunk
            return
        _, chunks = self.open_read(path)
        yield from chunks

    def write_chunks(self, path: str, chunks: Iterable[bytes]) -> None:
        """Write an object from chunks; object_store uploads in parts, atomically."""
        try:
            key = self._key(path)
            obstore.put(self._writable(), key, iter(chunks), chunk_size=CHUNK)
        except BaseError as exc:
            raise self._fail("put", path, exc) from None

    def copy_to(
        self, path: str, dst: ObstoreStorage, dst_path: str, *, hash_md5: bool = True
    ) -> Copied:
        """Copy one object to another obstore-backed store chunk by chunk, hashing on the way.

        Only one chunk per copy is in memory, and the target appears whole or not at all:
        obstore's buffered writer puts a small object at once and a large one as a multipart
        upload completed on close; an error inside the ``with`` aborts it. Without
        ``hash_md5`` (neither store could give an MD5 to compare with) ``Copied.md5`` is empty.

        Blocking calls on the caller's thread only. obstore's async API completes each future
        from a native thread that then re-takes the GIL; when the interpreter is exiting
        meanwhile (an error path ends the process at once) that thread is killed and the
        process aborts. Here no native thread ever calls into Python.
        """
        dst_key = dst._key(dst_path)
        resp = self._get(path)
        source = self._info(resp.meta)
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with obstore.open_writer(dst._writable(), dst_key, buffer_size=CHUNK) as writer:
                for chunk in resp.stream(min_chunk_size=CHUNK):
                    if hash_md5:
                        digest.update(chunk)
                    count_read(self.uri, len(chunk))
                    writer.write(chunk)
                    size += len(chunk)
        except BaseError as exc:
            raise StorageError(
                f"copy {self.uri}/{path} -> {dst.uri}/{dst_path} failed: {one_line(exc)}"
            ) from None
        return Copied(size, digest.hexdigest() if hash_md5 else "", source.md5)


def _scan_local(root: Path, base: str, offset: str | None) -> list[ObjectInfo]:
    """Files under ``root/base`` in lexical order; a symbolic link is listed, never entered.

    object_store's own local listing follows links, so a link to ``/`` inside a table would
    walk the whole disk; here a link shows up as an object (any operation on it is refused).
    Uploads still staged by object_store (``name#123``) are left out, as it does, and so is a
    file removed between the folder's listing and its ``lstat`` (it is gone: as if listed after).
    """
    out: list[ObjectInfo] = []
    pending = [(root / base if base else root, base)]
    while pending:
        folder, rel = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            key = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), key))
            elif entry.is_symlink() or not _STAGED.search(entry.name):
                try:
                    st = entry.stat(follow_symlinks=False)  # a dangling link's own: no error
                except FileNotFoundError:
                    continue
                etag = f"{st.st_ino:x}-{st.st_mtime_ns // 1000:x}-{st.st_size:x}"
                out.append(ObjectInfo(key, st.st_size, etag, None, st.st_mtime))
    out.sort(key=lambda i: i.path)
    return [i for i in out if offset is None or i.path > offset]


def gives_md5(storage: Storage) -> bool:
    """True when the store reports content MD5s (S3 single-part ETags, GCS md5Hash)."""
    return isinstance(storage, GcsJsonStorage) or bool(getattr(storage, "etag_is_md5", False))


def gcs_emulator_endpoint(options: dict[str, str] | Any) -> str | None:
    """The GCS emulator's URL when the location chose the JSON-API adapter, else None.

    Selected only by ``adapter: gcs-json-emulator`` in lakehouse.yaml (never by a URL's scheme
    or an endpoint's presence), so production GCS always takes the ordinary path.
    """
    if options.get(ADAPTER_OPTION) != GCS_JSON_EMULATOR:
        return None
    endpoint = options.get("GCS_EMULATOR_ENDPOINT")
    if not endpoint:
        raise ValueError(f"adapter {GCS_JSON_EMULATOR} needs the GCS_EMULATOR_ENDPOINT option")
    return str(endpoint)


class GcsJsonStorage:
    """Storage over the GCS JSON API (google-cloud-storage), for GCS emulators."""

    def __init__(self, uri: str, options: dict[str, str]) -> None:
        """Root at ``gs://bucket/prefix``; ``GCS_EMULATOR_ENDPOINT`` names the emulator."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        parsed = urlparse(uri)
        self.uri = uri.rstrip("/")
        self.prefix = parsed.path.strip("/")
        endpoint = gcs_emulator_endpoint(options)
        self.client = storage.Client(
            project="lakehouse",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=endpoint),
        )
        self.bucket = self.client.bucket(parsed.netloc)

    def _key(self, path: str) -> str:
        check_key(path, self.uri)
        return self._join(path)

    def _join(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def list(self, prefix: str = "", offset: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in lexical order, those after ``offset`` only if given."""
        kwargs: dict[str, Any] = {
            "prefix": self._join(prefix) if prefix else (self.prefix + "/" if self.prefix else None)
        }
        if offset:
            kwargs["start_offset"] = self._join(offset)
        blobs = sorted(self.client.list_blobs(self.bucket, **kwargs), key=lambda b: b.name)
        for b in blobs:
            rel = self._rel(b.name)
            if offset and rel <= offset:
                continue
            updated = b.updated.timestamp() if b.updated else None
            yield ObjectInfo(rel, int(b.size or 0), b.etag, _gcs_md5(b.md5_hash), updated)

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        """The folders directly under ``prefix`` (full paths, no trailing slash), sorted."""
        pages = self.client.list_blobs(self.bucket, prefix=self._key(prefix), delimiter="/")
        for _ in pages:  # the folders (prefixes) are known once every page is read
            pass
        return sorted(self._rel(p).rstrip("/") for p in pages.prefixes)

    def head(self, path: str) -> ObjectInfo | None:
        """The object's size and etag, or None when it does not exist."""
        blob = self.bucket.get_blob(self._key(path))
        if blob is None:
            return None
        return ObjectInfo(path, int(blob.size or 0), blob.etag, _gcs_md5(blob.md5_hash))

    def read_chunks(self, path: str) -> Iterator[bytes]:
        """The object's bytes in chunks of about :data:`CHUNK` (ranged reads)."""
        from google.api_core.exceptions import NotFound

        try:
            with self.bucket.blob(self._key(path)).open("rb", chunk_size=CHUNK) as fh:
                while chunk := fh.read(CHUNK):
                    count_read(self.uri, len(chunk))
                    yield bytes(chunk)
        except NotFound as exc:
            raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc

    def write_chunks(self, path: str, chunks: Iterable[bytes]) -> None:
        """Write an object from chunks through a resumable upload."""
        blob = self.bucket.blob(self._key(path), chunk_size=CHUNK)
        with blob.open("wb", ignore_flush=True) as fh:
            for chunk in chunks:
                fh.write(chunk)

    def get(self, path: str) -> bytes:
        """The whole object."""
        from google.api_core.exceptions import NotFound

        try:
            data = bytes(self.bucket.blob(self._key(path)).download_as_bytes())
        except NotFound as exc:
            raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc
        count_read(self.uri, len(data))
        return data

    def put(self, path: str, data: bytes, *, create_only: bool = False) -> bool:
        """Write an object; with ``create_only`` return False instead of overwriting."""
        from google.api_core.exceptions import PreconditionFailed

        blob = self.bucket.blob(self._key(path))
        if create_only and blob.exists():
            return False
        try:
            blob.upload_from_string(data, if_generation_match=0 if create_only else None)
        except PreconditionFailed:
            return False
        return True

    def delete(self, path: str) -> None:
        """Remove an object (missing is fine)."""
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self.bucket.blob(self._key(path)).delete()


def open_storage(
    uri: str, options: dict[str, str] | None = None, *, create: bool = True
) -> Storage:
    """The storage backend for a URI and its storage options.

    ``create=False`` opens an existing location only: a missing local folder is an error
    instead of being created (a sync never creates anything on its source's side).
    """
    opts = dict(options or {})
    if gcs_emulator_endpoint(opts):
        return GcsJsonStorage(uri, opts)
    return ObstoreStorage(uri, opts, create=create)


def _gcs_md5(value: str | None) -> str | None:
    return base64.b64decode(value).hex() if value else None


def stream_copy(src: Storage, path: str, dst: Storage, dst_path: str | None = None) -> Copied:
    """Copy one object between any two stores chunk by chunk (blocking), hashing on the way."""
    target = dst_path or path
    if isinstance(src, ObstoreStorage) and isinstance(dst, ObstoreStorage):
        return src.copy_to(path, dst, target)
    source_md5 = None
    if isinstance(src, ObstoreStorage):
        info, chunks = src.open_read(path)
        source_md5 = info.md5
    else:
        chunks = src.read_chunks(path)
    digest = hashlib.md5(usedforsecurity=False)
    size = 0

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    dst.write_chunks(target, hashed())
    return Copied(size, digest.hexdigest(), source_md5)


def md5_hex(data: bytes) -> str:
    """MD5 of a small object, to compare commits across stores."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


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
