"""The obstore backend: local folders, S3, Azure and GCS through Rust's object_store."""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError
from obstore.store import LocalStore, from_url

from pipelines.lake.storage.interface import (
    _CLIENT_OPTIONS,
    _MD5_ETAG,
    _RETRY_OPTIONS,
    _SKIP,
    _STAGED,
    CHUNK,
    Copied,
    ObjectInfo,
    StorageError,
    check_key,
    count_listed,
    count_read,
    one_line,
    stable_etag,
)


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
                scanned = _scan_local(self.local_root, base)
            except OSError as exc:
                raise self._fail("list", prefix, exc) from None
            count_listed(self.uri, len(scanned))
            return iter([i for i in scanned if offset is None or i.path > offset])
        try:
            stream = obstore.list(self.store, prefix=prefix or None, offset=offset, chunk_size=1000)
            items = [m for chunk in stream for m in chunk]
        except NotFoundError:
            return iter(())
        except BaseError as exc:
            raise self._fail("list", prefix, exc) from None
        count_listed(self.uri, len(items))
        # a store that ignores the offset (Azurite ignores startFrom) sends older keys too
        items = [m for m in items if offset is None or m["path"] > offset]
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
        if self.local_root is not None:  # as the local listing gives it: no inode
            etag = stable_etag(etag)
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

    def get_range(self, path: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the object's end): a ranged read."""
        if length <= 0:
            return b""
        os_path = self._os_path(path)
        if os_path is not None:
            with open(os_path, "rb") as fh:
                fh.seek(start)
                data = fh.read(length)
        else:
            key = self._key(path)
            try:
                if self.store is None:
                    raise FileNotFoundError(path)
                data = bytes(obstore.get_range(self.store, key, start=start, length=length))
            except (NotFoundError, FileNotFoundError) as exc:
                raise FileNotFoundError(f"{self.uri}/{path} does not exist") from exc
            except BaseError as exc:
                raise self._fail("get", path, exc) from None
        count_read(self.uri, len(data))
        return data

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


def _scan_local(root: Path, base: str) -> list[ObjectInfo]:
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
                # object_store's local etag without its inode (stable_etag): a copied lake
                # keeps its files' times and sizes, never their inodes
                etag = f"{st.st_mtime_ns // 1000:x}-{st.st_size:x}"
                out.append(ObjectInfo(key, st.st_size, etag, None, st.st_mtime))
    out.sort(key=lambda i: i.path)
    return out
