"""The GCS emulator's backend: the GCS JSON API through google-cloud-storage.

GCS emulators on PyPI and npm do not speak the XML upload API that object_store uses (see
docs/), so a location whose options name ``GCS_EMULATOR_ENDPOINT`` (and the
``gcs-json-emulator`` adapter) goes through the JSON API instead; real GCS goes through obstore
like the rest.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

from pipelines.lake.config import ADAPTER_OPTION, GCS_JSON_EMULATOR
from pipelines.lake.storage.interface import (
    CHUNK,
    ObjectInfo,
    check_key,
    count_listed,
    count_read,
)


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
        count_listed(self.uri, len(blobs))
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

    def get_range(self, path: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the object's end): a ranged read."""
        from google.api_core.exceptions import NotFound

        if length <= 0:
            return b""
        blob = self.bucket.blob(self._key(path))
        try:  # the JSON API's end is inclusive
            data = bytes(blob.download_as_bytes(start=start, end=start + length - 1))
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


def _gcs_md5(value: str | None) -> str | None:
    return base64.b64decode(value).hex() if value else None
