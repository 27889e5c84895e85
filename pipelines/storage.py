"""One storage layer for every lake location, built on obstore.

A :class:`Storage` is rooted at a URI (a folder, ``s3://``, ``az://``/``abfss://`` or ``gs://``)
and offers the few operations the engines need: list (from an offset), head, get, conditional
put and streaming copy between stores. Paths are relative to the root, with ``/`` separators.

GCS emulators on PyPI and npm do not speak the XML upload API that object_store uses (see
docs/), so a location whose options name ``GCS_EMULATOR_ENDPOINT`` goes through the GCS JSON
API with google-cloud-storage instead; real GCS goes through obstore like the rest.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import os
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import obstore
from obstore.exceptions import AlreadyExistsError, InvalidPathError, NotFoundError
from obstore.store import LocalStore, from_url

_CLIENT_OPTIONS = {
    "aws_allow_http": "allow_http",
    "azure_allow_http": "allow_http",
    "allow_http": "allow_http",
}
_SKIP = {"aws_s3_allow_unsafe_rename", "aws_conditional_put"}
CHUNK = 8 * 1024 * 1024
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about one object."""

    path: str
    size: int
    etag: str | None = None
    md5: str | None = None  # hex MD5 of the content, when the store gives one


@dataclass(frozen=True)
class Copied:
    """One streamed copy: bytes moved and the MD5 of what was read."""

    size: int
    md5: str
    source_md5: str | None = None


class StorageError(RuntimeError):
    """An object-store operation failed; the message names the URI."""


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


def _split_options(options: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for key, value in options.items():
        k = key.lower()
        if k in _CLIENT_OPTIONS:
            client[_CLIENT_OPTIONS[k]] = str(value).lower() == "true"
        elif k in _SKIP:
            continue
        else:
            config[k] = value
    return config, client


class ObstoreStorage:
    """Storage over obstore: local folders, S3, Azure Blob/ADLS and GCS."""

    def __init__(self, uri: str, options: dict[str, str] | None = None) -> None:
        """Root a store at ``uri``; ``options`` are deltalake-style storage options."""
        self.uri = uri.rstrip("/")
        self.options = dict(options or {})
        # S3's ETag of a single-part upload is the content's MD5; other stores' are opaque.
        self.etag_is_md5 = uri.startswith(("s3://", "s3a://"))
        # A local root, as the OS names it: file names that are not UTF-8 are reached through it
        self.local_root: bytes | None = None
        if "://" not in uri or uri.startswith("file://"):
            path = Path(uri.removeprefix("file://"))
            path.mkdir(parents=True, exist_ok=True)
            self.store: Any = LocalStore(prefix=path)
            self.local_root = os.fsencode(path.resolve())
        else:
            config, client = _split_options(self.options)
            self.store = from_url(
                self.uri,
                config=config or None,  # type: ignore[arg-type]
                client_options=client or None,  # type: ignore[arg-type]
            )

    def list(self, prefix: str = "", offset: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in lexical order, those after ``offset`` only if given."""
        try:
            stream = obstore.list(self.store, prefix=prefix or None, offset=offset, chunk_size=1000)
            items = [m for chunk in stream for m in chunk]
        except NotFoundError:
            return iter(())
        except InvalidPathError:
            # object_store refuses the whole listing when one local file name is not UTF-8;
            # walk the folder instead, so that the others are seen and that one is too
            if self.local_root is None:
                raise
            found = [i for i in self._walk(prefix) if offset is None or i.path > offset]
            return iter(sorted(found, key=lambda i: i.path))
        items.sort(key=lambda m: m["path"])
        return iter(self._info(m) for m in items)

    def list_dirs(self, prefix: str = "") -> builtins.list[str]:
        """The folders directly under ``prefix`` (full paths, no trailing slash), sorted."""
        try:
            found = obstore.list_with_delimiter(self.store, prefix or None)["common_prefixes"]
        except NotFoundError:
            return []
        except InvalidPathError:
            if self.local_root is None:
                raise
            base = os.path.join(self.local_root, os.fsencode(prefix.strip("/")))
            with os.scandir(base) as entries:
                found = [
                    "/".join(p for p in (prefix.strip("/"), os.fsdecode(e.name)) if p)
                    for e in entries
                    if e.is_dir()
                ]
        return sorted(p.rstrip("/") for p in found)

    def _walk(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Files under ``prefix`` of a local root, names the OS gives decoded as os.fsdecode.

        A name that is not UTF-8 keeps its bytes as surrogates (``os.fsdecode``): it cannot be
        written anywhere as text, but :meth:`get` reads it back.
        """
        assert self.local_root is not None
        rel = prefix.strip("/")
        top = os.path.join(self.local_root, os.fsencode(rel)) if rel else self.local_root
        if not os.path.isdir(top):
            return []
        out = []
        for folder, _, files in os.walk(top):
            for name in files:
                full = os.path.join(folder, name)
                path = os.fsdecode(os.path.relpath(full, self.local_root))
                if path.startswith(rel) and os.path.isfile(full):
                    out.append(ObjectInfo(path.replace(os.sep, "/"), os.path.getsize(full)))
        return out

    def _os_path(self, path: str) -> bytes | None:
        """The OS path of a local object whose name is not UTF-8 (None for every other)."""
        if self.local_root is None or path.isascii():
            return None
        try:
            path.encode("utf-8")
            return None
        except UnicodeEncodeError:
            return os.path.join(self.local_root, os.fsencode(path))

    def _info(self, meta: Any) -> ObjectInfo:
        etag = meta.get("e_tag")
        md5 = None
        if self.etag_is_md5 and etag and _MD5_ETAG.match(etag.strip('"')):
            md5 = etag.strip('"')
        return ObjectInfo(meta["path"], int(meta["size"]), etag, md5)

    def head(self, path: str) -> ObjectInfo | None:
        """The object's size and etag, or None when it does not exist."""
        try:
            m = obstore.head(self.store, path)
        except (NotFoundError, FileNotFoundError):
            return None
        return self._info(m)

    async def head_async(self, path: str) -> ObjectInfo | None:
        """:meth:`head` without blocking the event loop."""
        try:
            m = await obstore.head_async(self.store, path)
        except (NotFoundError, FileNotFoundError):
            return None
        return self._info(m)

    def get(self, path: str) -> bytes:
        """The whole object."""
        os_path = self._os_path(path)
        if os_path is not None:
            with open(os_path, "rb") as fh:
                return fh.read()
        try:
            return bytes(obstore.get(self.store, path).bytes())
        except (NotFoundError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc

    def put(self, path: str, data: bytes, *, create_only: bool = False) -> bool:
        """Write an object; with ``create_only`` return False instead of overwriting."""
        try:
            obstore.put(self.store, path, data, mode="create" if create_only else "overwrite")
        except (AlreadyExistsError, FileExistsError):
            return False
        return True

    def delete(self, path: str) -> None:
        """Remove an object (missing is fine)."""
        try:
            obstore.delete(self.store, path)
        except (NotFoundError, FileNotFoundError):
            pass

    def read_chunks(self, path: str) -> Iterator[bytes]:
        """The object's bytes in chunks of about :data:`CHUNK`."""
        os_path = self._os_path(path)
        if os_path is not None:
            with open(os_path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk
            return
        try:
            resp = obstore.get(self.store, path)
        except (NotFoundError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc
        for chunk in resp.stream(min_chunk_size=CHUNK):
            yield bytes(chunk)

    def write_chunks(self, path: str, chunks: Iterable[bytes]) -> None:
        """Write an object from chunks; object_store uploads in parts, atomically."""
        obstore.put(self.store, path, iter(chunks), chunk_size=CHUNK)

    async def stream_to(
        self, path: str, dst: ObstoreStorage, dst_path: str, *, hash_md5: bool = True
    ) -> Copied:
        """Copy one object to another obstore-backed store chunk by chunk, hashing on the way.

        Only one chunk per copy is in memory; object_store writes the target atomically
        (local: temp file and rename; clouds: single put or completed multipart upload).
        Without ``hash_md5`` (when neither store could give an MD5 to compare with) the
        chunks go straight from reader to writer and ``Copied.md5`` is empty.
        """
        try:
            resp = await obstore.get_async(self.store, path)
        except (NotFoundError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc
        source = self._info(resp.meta)
        digest = hashlib.md5(usedforsecurity=False)

        async def hashed() -> AsyncIterator[bytes]:
            async for chunk in resp.stream(min_chunk_size=CHUNK):
                digest.update(chunk)
                yield chunk  # type: ignore[misc]

        if source.size == 0:
            await obstore.put_async(dst.store, dst_path, b"")
        elif not hash_md5:
            await obstore.put_async(
                dst.store, dst_path, resp.stream(min_chunk_size=CHUNK), chunk_size=CHUNK
            )
            return Copied(source.size, "", source.md5)
        else:
            await obstore.put_async(dst.store, dst_path, hashed(), chunk_size=CHUNK)
        return Copied(source.size, digest.hexdigest(), source.md5)


def gives_md5(storage: Storage) -> bool:
    """True when the store reports content MD5s (S3 single-part ETags, GCS md5Hash)."""
    return isinstance(storage, GcsJsonStorage) or bool(getattr(storage, "etag_is_md5", False))


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
        endpoint = options["GCS_EMULATOR_ENDPOINT"]
        self.client = storage.Client(
            project="lakehouse",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=endpoint),
        )
        self.bucket = self.client.bucket(parsed.netloc)

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def list(self, prefix: str = "", offset: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in lexical order, those after ``offset`` only if given."""
        kwargs: dict[str, Any] = {
            "prefix": self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else None)
        }
        if offset:
            kwargs["start_offset"] = self._key(offset)
        blobs = sorted(self.client.list_blobs(self.bucket, **kwargs), key=lambda b: b.name)
        for b in blobs:
            rel = self._rel(b.name)
            if offset and rel <= offset:
                continue
            yield ObjectInfo(rel, int(b.size or 0), b.etag, _gcs_md5(b.md5_hash))

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
            return bytes(self.bucket.blob(self._key(path)).download_as_bytes())
        except NotFound as exc:
            raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc

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

        try:
            self.bucket.blob(self._key(path)).delete()
        except NotFound:
            pass


def open_storage(uri: str, options: dict[str, str] | None = None) -> Storage:
    """The storage backend for a URI and its storage options."""
    opts = dict(options or {})
    if uri.startswith("gs://") and "GCS_EMULATOR_ENDPOINT" in opts:
        return GcsJsonStorage(uri, opts)
    return ObstoreStorage(uri, opts)


def _gcs_md5(value: str | None) -> str | None:
    return base64.b64decode(value).hex() if value else None


def stream_copy(src: Storage, path: str, dst: Storage, dst_path: str | None = None) -> Copied:
    """Copy one object between any two stores chunk by chunk (blocking), hashing on the way."""
    target = dst_path or path
    if isinstance(src, ObstoreStorage) and isinstance(dst, ObstoreStorage):
        return asyncio.run(src.stream_to(path, dst, target))
    digest = hashlib.md5(usedforsecurity=False)
    size = 0

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for chunk in src.read_chunks(path):
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    dst.write_chunks(target, hashed())
    return Copied(size, digest.hexdigest(), None)


def copy_object(src: Storage, path: str, dst: Storage, dst_path: str | None = None) -> int:
    """Copy one object between any two stores, streaming; return its size."""
    return stream_copy(src, path, dst, dst_path).size


def md5_hex(data: bytes) -> str:
    """MD5 of a small object, to compare commits across stores."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
