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
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import obstore
from obstore.exceptions import AlreadyExistsError, NotFoundError
from obstore.store import LocalStore, from_url

_CLIENT_OPTIONS = {
    "aws_allow_http": "allow_http",
    "azure_allow_http": "allow_http",
    "allow_http": "allow_http",
}
_SKIP = {"aws_s3_allow_unsafe_rename", "aws_conditional_put"}


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about one object."""

    path: str
    size: int
    etag: str | None = None


class StorageError(RuntimeError):
    """An object-store operation failed; the message names the URI."""


class Storage(Protocol):
    """The operations every backend offers."""

    uri: str

    def list(self, prefix: str = "", offset: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in lexical order, those after ``offset`` only if given."""
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
        if "://" not in uri or uri.startswith("file://"):
            path = Path(uri.removeprefix("file://"))
            path.mkdir(parents=True, exist_ok=True)
            self.store: Any = LocalStore(prefix=path)
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
        items.sort(key=lambda m: m["path"])
        return iter(ObjectInfo(m["path"], int(m["size"]), m.get("e_tag")) for m in items)

    def head(self, path: str) -> ObjectInfo | None:
        """The object's size and etag, or None when it does not exist."""
        try:
            m = obstore.head(self.store, path)
        except (NotFoundError, FileNotFoundError):
            return None
        return ObjectInfo(m["path"], int(m["size"]), m.get("e_tag"))

    def get(self, path: str) -> bytes:
        """The whole object."""
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

    async def stream_to(self, path: str, dst: ObstoreStorage, dst_path: str) -> int:
        """Copy one object to another obstore-backed store chunk by chunk; return its size."""
        resp = await obstore.get_async(self.store, path)
        size = int(resp.meta["size"])
        await obstore.put_async(dst.store, dst_path, resp.stream(min_chunk_size=8 * 1024 * 1024))
        return size


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
            yield ObjectInfo(rel, int(b.size or 0), b.etag)

    def head(self, path: str) -> ObjectInfo | None:
        """The object's size and etag, or None when it does not exist."""
        blob = self.bucket.get_blob(self._key(path))
        return None if blob is None else ObjectInfo(path, int(blob.size or 0), blob.etag)

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


def copy_object(src: Storage, path: str, dst: Storage, dst_path: str | None = None) -> int:
    """Copy one object between any two stores, streaming where both are obstore-backed."""
    target = dst_path or path
    if isinstance(src, ObstoreStorage) and isinstance(dst, ObstoreStorage):
        return asyncio.run(src.stream_to(path, dst, target))
    data = src.get(path)
    dst.put(target, data)
    return len(data)


def md5_hex(data: bytes) -> str:
    """MD5 of a small object, to compare commits across stores."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
