"""A bounded sample of a Delta table's data files, scanned by the content detectors.

What the sync is about to copy is judged by what it holds: at most ``max_files`` of the data
files (spread evenly over them), at most ``rows_per_file`` rows of each, every column a reader
would see in the file. Rows a deletion vector hides are scanned too: the file crosses the
border with them. Partition values live in paths, not in files, and are not scanned here.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lake.storage import Storage
from pipelines.privacy.detect import BUILTIN_DETECTORS, Detector, ScanReport, scan_table


class SampleError(RuntimeError):
    """A sampled data file cannot be read as Parquet; the message names it."""


@dataclass(frozen=True)
class ContentScan:
    """How much of a table a content scan reads, and with which detectors."""

    detectors: tuple[Detector, ...] = BUILTIN_DETECTORS
    max_files: int = 8
    rows_per_file: int = 1_000


@dataclass
class FileSample:
    """A scan of sampled files: the detectors' report and what was read to make it."""

    report: ScanReport = field(default_factory=ScanReport)
    files: list[str] = field(default_factory=list)
    files_available: int = 0
    files_missing: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (counts and names, never a value)."""
        return {
            **self.report.as_dict(),
            "files_scanned": len(self.files),
            "files_available": self.files_available,
            "files_missing": self.files_missing,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
        }


def pick(paths: Iterable[str], limit: int) -> list[str]:
    """At most ``limit`` of the Parquet files among ``paths``, spread evenly over them (sorted)."""
    files = sorted(p for p in paths if p.endswith(".parquet"))
    if len(files) <= limit:
        return files
    step = len(files) / limit
    return [files[int(i * step)] for i in range(limit)]


def read_rows(data: bytes, rows: int, where: str) -> pa.Table:
    """The first ``rows`` rows of a Parquet file held in memory."""
    try:
        reader = pq.ParquetFile(io.BytesIO(data))
        batch = next(reader.iter_batches(batch_size=rows), None)
    except (pa.ArrowException, OSError) as exc:
        raise SampleError(f"{where} is not a readable Parquet file: {exc}") from None
    if batch is None:
        return reader.schema_arrow.empty_table()
    return pa.Table.from_batches([batch])


def scan_files(storage: Storage, paths: Sequence[str], scan: ContentScan) -> FileSample:
    """Read a bounded sample of ``paths`` (data files under ``storage``) and scan it."""
    t0 = time.perf_counter()
    chosen = pick(paths, scan.max_files)
    # A file the log names may be gone (a vacuumed source): the next one is read instead, and
    # the copy that follows reports the missing file in its own words.
    spare = [p for p in pick(paths, len(paths)) if p not in set(chosen)]
    sample = FileSample(files_available=sum(p.endswith(".parquet") for p in paths))
    for path in [*chosen, *spare]:
        if len(sample.files) >= scan.max_files:
            break
        try:
            data = storage.get(path)
        except FileNotFoundError:
            sample.files_missing += 1
            continue
        sample.files.append(path)
        sample.bytes_read += len(data)
        rows = read_rows(data, scan.rows_per_file, f"{storage.uri}/{path}")
        sample.report.merge(scan_table(rows, scan.detectors))
    sample.seconds = time.perf_counter() - t0
    return sample


class NoTableError(FileNotFoundError):
    """There is no Delta table where a scan was asked for."""


def scan_delta(
    uri: str, options: dict[str, str], scan: ContentScan, version: int | None = None
) -> tuple[int, FileSample]:
    """Scan a bounded sample of a Delta table's live files at ``version`` (default: latest).

    Returns the version scanned and the sample. Time travel reads an older version's files:
    what that version still holds, as a reader of it would find it.
    """
    from pipelines.lake.delta import open_table
    from pipelines.lake.storage import open_storage

    table = open_table(uri, options, version)
    if table is None:
        raise NoTableError(f"{uri} is not a Delta table")
    files = pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()
    storage = open_storage(uri, options, create=False)
    return table.version(), scan_files(storage, files, scan)
