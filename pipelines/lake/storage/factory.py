"""Opening the store a URI names, and copying between any two stores."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from pipelines.lake.storage.gcs_json import GcsJsonStorage, gcs_emulator_endpoint
from pipelines.lake.storage.interface import (
    Copied,
    Storage,
)
from pipelines.lake.storage.obstore_backend import ObstoreStorage


def gives_md5(storage: Storage) -> bool:
    """True when the store reports content MD5s (S3 single-part ETags, GCS md5Hash)."""
    return isinstance(storage, GcsJsonStorage) or bool(getattr(storage, "etag_is_md5", False))


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
