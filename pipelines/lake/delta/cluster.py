"""Files of a partition grouped by a keyed bucket of the customer, so an erasure rewrites few.

A day of bronze or silver written as one file holds some event of nearly every customer active
that day: erasing a few of them rewrites the whole day. Grouped into ``k`` files by a bucket of
the customer (``bucket = first 32 bits of HMAC-SHA256(key, customer) mod k``), a subject's rows
sit in one file per day, and a delete rewrites only the files whose bucket holds a subject.

The bucket is keyed: silver's ``customer_hash`` is already the HMAC of the customer under the
pseudonymization key, and bronze's raw ``customer_id`` is hashed under that same key, so a
subject falls in the same bucket in both tables. A raw id is never in a file name or in
statistics; the file name carries only the bucket number and ``k``
(``part-b0007-k0064-<uuid>.snappy.parquet``), which is how a clustered file is told from
others (a later compaction leaves a clustered partition alone).

``k`` is sized for the erasure, not only for readers (:meth:`Clustering.buckets_for`): a
partition is cut into ``buckets`` files whatever its size, so an erasure of ``s`` subjects
rewrites about ``s / buckets`` of it; never into files smaller than ``min_file_bytes`` (a small
partition gets fewer), and into more when files would be bigger than ``target_file_bytes``
(at most ``max_buckets``). The cost is on the read side: ``k`` files a partition instead of one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lake.config import PrivacySettings

CLUSTERED_NAME = re.compile(r"(?:^|/)part-b(\d{4})-k(\d{4})-[0-9a-f-]{36}\.snappy\.parquet$")
MAX_BUCKETS = 1024
MAX_FILE_BYTES = 1 << 62


class ClusteringError(ValueError):
    """A clustering that cannot be applied (no key for a raw column, a missing column)."""


@dataclass(frozen=True)
class Clustering:
    """How a table's partitions are grouped into files: by a keyed bucket of ``column``.

    ``key``: the HMAC key hashing a raw ``column`` (bronze's ``customer_id``); None when the
    column already holds keyed hashes as hex (silver's ``customer_hash``). ``buckets`` and
    ``min_file_bytes``: see :meth:`buckets_for` (their defaults: ``k`` from the size alone).
    """

    column: str
    target_file_bytes: int
    key: str | None = field(default=None, repr=False)
    max_buckets: int = 256
    buckets: int = 1
    min_file_bytes: int = 1
    # rows whose column equals this apart from the rest (two files, whatever the size): the
    # ingest ledger's ``object`` rows, which an erasure updates, apart from its event hashes
    apart: str | None = None

    def __post_init__(self) -> None:
        if self.target_file_bytes < 1:
            raise ClusteringError(f"target_file_bytes {self.target_file_bytes} is below 1")
        if not 1 <= self.max_buckets <= MAX_BUCKETS:
            raise ClusteringError(f"max_buckets {self.max_buckets} is not in 1..{MAX_BUCKETS}")
        if self.buckets < 1 or self.min_file_bytes < 1:
            raise ClusteringError(
                f"buckets {self.buckets} and min_file_bytes {self.min_file_bytes} must be 1 or more"
            )

    def buckets_for(self, partition_bytes: int) -> int:
        """``k`` for a partition of ``partition_bytes``.

        ``buckets`` files, fewer when they would be smaller than ``min_file_bytes``, more when
        they would be bigger than ``target_file_bytes`` (the larger wins); 1 to ``max_buckets``.
        """
        if self.apart is not None:
            return 2
        by_erasure = min(self.buckets, partition_bytes // self.min_file_bytes)
        by_size = math.ceil(partition_bytes / self.target_file_bytes)
        return max(1, min(self.max_buckets, max(by_size, by_erasure)))

    def bucket_of(self, rows: pa.Table, k: int) -> np.ndarray:
        """Each row's bucket in ``0..k-1`` (a null customer: bucket 0)."""
        if self.column not in rows.column_names:
            raise ClusteringError(f"rows have no column {self.column!r} to cluster by")
        if self.apart is not None:
            same = pc.fill_null(pc.equal(rows.column(self.column), self.apart), False)
            return np.where(same.to_numpy(zero_copy_only=False), 0, 1).astype(np.uint64)
        values = rows.column(self.column).to_pylist()
        if self.key is None:
            top = [int(v[:8], 16) if v else 0 for v in values]
        else:
            secret = self.key.encode()
            top = [
                int(hmac.new(secret, str(v).encode(), hashlib.sha256).hexdigest()[:8], 16)
                if v is not None
                else 0
                for v in values
            ]
        return np.asarray(top, dtype=np.uint64) % np.uint64(k)


def file_name(bucket: int, k: int) -> str:
    """A clustered file's name: its bucket and ``k``, never a value of the rows."""
    return f"part-b{bucket:04d}-k{k:04d}-{uuid.uuid4()}.snappy.parquet"


def is_clustered(path: str) -> bool:
    """True for a file written by a clustered rewrite."""
    return CLUSTERED_NAME.search(path) is not None


def all_clustered(paths: Iterable[str]) -> bool:
    """True when every path is a clustered file (and there is at least one)."""
    listed = list(paths)
    return bool(listed) and all(is_clustered(p) for p in listed)


def split_by_bucket(rows: pa.Table, buckets: np.ndarray) -> dict[int, pa.Table]:
    """The rows of each bucket present, in their order."""
    out = {}
    order = np.argsort(buckets, kind="stable")
    ordered = rows.take(pa.array(order))
    sorted_buckets = buckets[order]
    edges = np.flatnonzero(np.diff(sorted_buckets)) + 1
    for lo, hi in zip(
        np.concatenate(([0], edges)), np.concatenate((edges, [len(order)])), strict=True
    ):
        if hi > lo:
            out[int(sorted_buckets[lo])] = ordered.slice(int(lo), int(hi - lo))
    return out


# The ingest ledger's closed days: ``object`` rows in a file of their own, so the erasure's
# update of a rewritten object's rows rewrites that small file, not the day's event hashes.
LEDGER_OBJECTS_APART = Clustering("kind", MAX_FILE_BYTES, apart="object")


def bronze_clustering(privacy: PrivacySettings, key: str | None) -> Clustering | None:
    """Bronze grouped by ``customer_id`` hashed under the pseudonymization key (None: no key).

    Silver's ``customer_hash`` is that same hash (:func:`silver_clustering`), so a subject's
    bucket is the same in both tables.
    """
    if not key:
        return None
    return _clustering("customer_id", key, privacy)


def silver_clustering(privacy: PrivacySettings) -> Clustering:
    """Silver grouped by ``customer_hash``, a keyed hash already: no key needed."""
    return _clustering("customer_hash", None, privacy)


def _clustering(column: str, key: str | None, privacy: PrivacySettings) -> Clustering:
    return Clustering(
        column,
        privacy.cluster_file_bytes,
        key,
        max_buckets=privacy.cluster_max_buckets,
        buckets=privacy.cluster_buckets,
        min_file_bytes=privacy.cluster_min_file_bytes,
    )
