"""The ingest ledger: which landed objects a (date, region) partition holds, and how.

One Delta table per location (``bronze_ingest_ledger``, partitioned like bronze) with three
kinds of rows, all appended:

- ``object``: one per landed object ingested: its identity (key, etag, size) and what became of
  its records (``records = ingested + quarantined + duplicates``), with the batch it went in;
- ``batch``: one per object batch: the bronze and quarantine files staged for it (their add
  actions, as JSON), whether it replaces the partition (a full re-ingest), and the 64-bit
  hashes of the event ids it added to bronze (the partition's de-duplication state);
- ``commit``: written once the batch's bronze and quarantine commits are in: their versions;
- ``abandon``: written instead when a pending batch's staged files are gone (removed by upkeep
  or by hand before anyone committed them): its objects count as not ingested, and the next
  batch takes them again. A commit never names a file that does not exist;
- ``erasure``: a landing object an erasure is about to rewrite (:func:`fence`), written with a
  batch of its own (so an ingest that planned that batch number loses its claim and reads the
  ledger again); an ingest takes no fenced object. A ``released`` row of the same batch and key
  lifts the fence once the erasure has rewritten the object and moved its ``object`` rows to
  the new identity (:func:`release`).

Batches are numbered per partition. The ``object`` and ``batch`` rows of batch *n* are one
commit carrying the Delta transaction id ``(lakehouse-ingest:<date>|<region>, n)``: delta-rs
fails a commit whose transaction id a concurrent commit carries too, and a writer first checks
that the table does not hold *n* already, so exactly one writer claims batch *n*. Its files are
then committed to bronze and to quarantine under the same transaction id, each once (a table
holding *n* is skipped). A writer that dies between the claim and those commits leaves a
pending batch: the next run of the partition finishes it from the recorded add actions before
it claims anything, so batches reach bronze in order and the transaction version of a table
says which batches it holds. The ``commit`` row is the last thing written. Upkeep keeps the
files a pending batch names (:func:`pending_files`).

The ledger is checked against the tables it describes: bronze or quarantine holding a batch
the ledger never claimed (a ledger restored from an older snapshot, a damaged log) stops the
ingest with :class:`LedgerError` instead of skipping new objects as already committed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake.transaction import AddAction

from pipelines.lake import delta, tables
from pipelines.lake.schemas import BRONZE_PARTITION_BY, LEDGER_SCHEMA
from pipelines.lake.storage import Storage, stable_etag, stream_copy

LEDGER_TABLE = tables.LEDGER.name
# the event ids' hashes are read on their own (:func:`read_hashes`), by a run about to ingest
_STATE_COLUMNS = [
    n for n in LEDGER_SCHEMA.names if n not in (*BRONZE_PARTITION_BY, "event_id_hashes")
]


def app_id(partition: Mapping[str, object]) -> str:
    """The Delta transaction id of a partition's ingest batches (same in all three tables)."""
    return f"lakehouse-ingest:{partition['landing_date']}|{partition['region']}"


@dataclass(frozen=True)
class ObjectEntry:
    """What the ledger says about one ingested object."""

    key: str
    etag: str | None
    size: int
    batch: int
    records: int
    ingested: int
    quarantined: int
    duplicates: int
    reason: str | None = None

    @property
    def identity(self) -> tuple[str, str | None, int]:
        """Key, etag and size: a rewritten object keeps its key, not the rest."""
        return (self.key, self.etag, self.size)

    @property
    def reconciled(self) -> bool:
        """True when the object's records are all accounted for."""
        return self.records == self.ingested + self.quarantined + self.duplicates


@dataclass(frozen=True)
class Batch:
    """A claimed batch: the staged files it commits and whether it replaces the partition."""

    number: int
    replace: bool
    bronze: list[AddAction]
    quarantine: list[AddAction]


class LedgerError(RuntimeError):
    """The ledger disagrees with the tables it describes; the message names both."""


@dataclass
class LedgerState:
    """A partition's ledger as of one read."""

    objects: list[ObjectEntry] = field(default_factory=list)
    batches: dict[int, Batch] = field(default_factory=dict)
    committed: dict[int, tuple[int, int]] = field(default_factory=dict)
    abandoned: set[int] = field(default_factory=set)
    # the highest batch bronze or quarantine holds (read before the ledger): numbers go above it
    tables_hold: int = 0
    # landing keys an erasure fenced (:func:`fence`): no ingest takes them until released
    erasing: set[str] = field(default_factory=set)
    # every landing key an erasure ever fenced: it may have been rewritten since a run listed it
    erased: set[str] = field(default_factory=set)

    @property
    def last_batch(self) -> int:
        """The highest batch number claimed or held by the tables (0 when none)."""
        return max(max(self.batches, default=0), self.tables_hold)

    def identities(self) -> set[tuple[str, str | None, int]]:
        """Every (key, etag, size) ingested."""
        return {o.identity for o in self.objects}

    def key_set(self) -> set[str]:
        """Every key ingested."""
        return {o.key for o in self.objects}

    def pending(self) -> list[Batch]:
        """Claimed batches neither committed nor abandoned, oldest first."""
        done = self.committed.keys() | self.abandoned
        return [b for n, b in sorted(self.batches.items()) if n not in done]

    def groups(self) -> list[list[str]]:
        """The keys of each batch in batch order: the order a full re-ingest replays."""
        by: dict[int, list[str]] = {}
        for o in self.objects:
            by.setdefault(o.batch, []).append(o.key)
        return [sorted(by[n]) for n in sorted(by)]

    def totals(self) -> dict[str, int]:
        """The partition's counts: objects, landed, ingested, quarantined, duplicates."""
        return {
            "objects": len(self.objects),
            "landed": sum(o.records for o in self.objects),
            "ingested": sum(o.ingested for o in self.objects),
            "quarantined": sum(o.quarantined for o in self.objects),
            "duplicates_dropped": sum(o.duplicates for o in self.objects),
        }


def _adds(plan: list[dict[str, Any]]) -> list[AddAction]:
    return [
        AddAction(
            path=a["path"],
            size=a["size"],
            partition_values=a["partition_values"],
            modification_time=a["modification_time"],
            data_change=True,
            stats=a["stats"],
        )
        for a in plan
    ]


def _plan(adds: list[AddAction]) -> list[dict[str, Any]]:
    return [
        {
            "path": a.path,
            "size": a.size,
            "partition_values": dict(a.partition_values),
            "modification_time": a.modification_time,
            "stats": a.stats,
        }
        for a in adds
    ]


def state_reader() -> delta.PartitionReader:
    """A reader of one partition's ledger that reads each of its files once (a worker's)."""
    return delta.PartitionReader(pa.schema([LEDGER_SCHEMA.field(n) for n in _STATE_COLUMNS]))


def read_state(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    reader: delta.PartitionReader | None = None,
) -> LedgerState:
    """The partition's ledger (empty when the table or the partition has none), but its hashes.

    ``reader``: the partition's :func:`state_reader`, kept by a caller that reads it often.
    """
    rows = (
        delta.read_partition(uri, options, dict(partition), columns=_STATE_COLUMNS)
        if reader is None
        else reader.read(uri, options, partition)
    )
    state = LedgerState()
    if not rows.num_rows:
        return state
    state.abandoned = _abandoned(rows)
    rows = _without_abandoned(rows, state.abandoned, keep_kinds=("batch", "abandon"))
    kinds = rows["kind"].to_pylist()
    if "erasure" in kinds:
        state.erasing = _fenced(rows)
        fences = rows.filter(pc.equal(rows["kind"], "erasure"))
        state.erased = set(fences["source_object"].to_pylist())
    for kind, table in (
        ("object", rows.filter(pc.equal(rows["kind"], "object"))),
        ("batch", rows.filter(pc.equal(rows["kind"], "batch"))),
        ("commit", rows.filter(pc.equal(rows["kind"], "commit"))),
    ):
        if kind not in kinds:
            continue
        _read_kind(state, kind, table)
    return state


def _fenced(rows: pa.Table) -> set[str]:
    """Keys an ``erasure`` row fences and no ``released`` row of the same batch releases."""

    def pairs(kind: str) -> set[tuple[str, int]]:
        picked = rows.filter(pc.equal(rows["kind"], kind))
        keys, batches = picked["source_object"].to_pylist(), picked["batch"].to_pylist()
        return set(zip(keys, batches, strict=True))

    return {k for k, _ in pairs("erasure") - pairs("released")}


def _abandoned(rows: pa.Table) -> set[int]:
    """Batch numbers the ledger's ``abandon`` rows name."""
    return set(rows.filter(pc.equal(rows["kind"], "abandon"))["batch"].to_pylist())


def _without_abandoned(
    rows: pa.Table, abandoned: set[int], keep_kinds: tuple[str, ...] = ()
) -> pa.Table:
    """Rows but those of abandoned batches (rows of ``keep_kinds`` stay whatever their batch)."""
    if not abandoned:
        return rows
    gone = pc.is_in(rows["batch"], pa.array(sorted(abandoned), pa.int64()))
    if keep_kinds:
        gone = pc.and_(gone, pc.invert(pc.is_in(rows["kind"], pa.array(list(keep_kinds)))))
    return rows.filter(pc.invert(pc.fill_null(gone, False)))


def identities(
    uri: str, options: Mapping[str, str], partition: Mapping[str, object]
) -> set[tuple[str, str | None, int]]:
    """The (key, etag, size) of every object the partition's ledger holds (a narrow read)."""
    cols = ["kind", "batch", "source_object", "etag", "size"]
    rows = delta.read_partition(uri, options, dict(partition), columns=cols)
    if not rows.num_rows:
        return set()
    rows = _without_abandoned(rows, _abandoned(rows))
    rows = rows.filter(pc.equal(rows["kind"], "object"))
    return set(
        zip(
            rows["source_object"].to_pylist(),
            [stable_etag(e) for e in rows["etag"].to_pylist()],
            rows["size"].to_pylist(),
            strict=True,
        )
    )


def _read_kind(state: LedgerState, kind: str, table: pa.Table) -> None:
    if kind == "object":
        cols = ["source_object", "etag", "size", "batch", "records", "ingested", "quarantined"]
        cols += ["duplicates", "reason"]
        values = [table[c].to_pylist() for c in cols]
        seen: set[tuple[str, str | None, int]] = set()
        for key, etag, *counts in zip(*values, strict=True):
            # an etag recorded with a local file's inode compares as listings give it now
            entry = ObjectEntry(key, stable_etag(etag), *counts)
            if entry.identity not in seen:  # a finished batch may be re-read, never doubled
                seen.add(entry.identity)
                state.objects.append(entry)
        return
    if kind == "batch":
        for n, replace, plan in zip(
            table["batch"].to_pylist(),
            table["replace"].to_pylist(),
            table["plan"].to_pylist(),
            strict=True,
        ):
            files = json.loads(plan)
            state.batches[n] = Batch(
                n, bool(replace), _adds(files["bronze"]), _adds(files["quarantine"])
            )
        return
    for n, vb, vq in zip(
        table["batch"].to_pylist(),
        table["bronze_version"].to_pylist(),
        table["quarantine_version"].to_pylist(),
        strict=True,
    ):
        state.committed[n] = (vb, vq)


def read_hashes(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    batches: Collection[int] | None = None,
) -> np.ndarray:
    """The 64-bit hashes of every event id the partition's batches hold, sorted.

    Read apart from :func:`read_state`: only a run about to ingest a batch needs them, and on a
    large day they are most of what the ledger holds (8 bytes an event). ``batches``: of those
    batches only (the files of others, by the log's statistics, are not opened).
    """
    rows = _hash_rows(uri, options, partition, batches)
    return _sorted_hashes(rows["event_id_hashes"]) if rows.num_rows else np.zeros(0, np.uint64)


def read_batch_hashes(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    batches: Collection[int],
) -> list[tuple[int, np.ndarray]]:
    """Each of ``batches``' event-id hashes apart, sorted, by batch number (none abandoned)."""
    rows = _hash_rows(uri, options, partition, batches)
    numbers = rows["batch"].to_pylist() if rows.num_rows else []
    return sorted(
        (
            (int(n), _sorted_hashes(rows.slice(i, 1)["event_id_hashes"]))
            for i, n in enumerate(numbers)
        ),
        key=lambda got: got[0],
    )


def _hash_rows(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    batches: Collection[int] | None,
) -> pa.Table:
    """The ledger's batch rows (number, hashes) of ``batches`` (all when None), none abandoned."""
    cols = ["kind", "batch", "event_id_hashes"]
    if batches is not None and not batches:
        return pa.table({c: [] for c in cols})
    where = None if batches is None else [("batch", "in", sorted(batches))]
    rows = delta.read_partition(uri, options, dict(partition), columns=cols, where=where)
    if not rows.num_rows:
        return rows
    rows = _without_abandoned(rows, _abandoned(rows))
    return rows.filter(pc.equal(rows["kind"], "batch"))


# A run of kept hashes is merged with newer ones up to this size (32 MB): a 20M-event day is
# then about five runs to look a batch's ids up in, and no merge holds the day twice.
MERGED_RUN_HASHES = 4_000_000


class SeenHashes:
    """One partition's event-id hashes kept by a long-lived ingest between its batches.

    A worker ingesting a partition batch after batch would otherwise read every hash of the
    day again for each batch (8 bytes an event: a cost that grows with the day). Here each
    batch's hashes are added as this process claims it, and only the batches other writers
    claimed since are read (:func:`read_batch_hashes` of those numbers). Sorted runs, each at
    most half the size of the one before, so a batch is merged a few times, not once per batch;
    runs stop growing at :data:`MERGED_RUN_HASHES`, so a merge never copies the day. Beside
    each run, the batch each hash came from (``numbers``, 2 bytes an event): a hash found again
    is then confirmed by reading that batch's files, not the day's (:class:`batch.Seen`).
    """

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []
        self.numbers: list[np.ndarray] = []
        self.batches: set[int] = set()

    def current(
        self,
        uri: str,
        options: Mapping[str, str],
        partition: Mapping[str, object],
        state: LedgerState,
    ) -> list[np.ndarray]:
        """The hashes of every batch of ``state`` not abandoned, as :func:`read_hashes` reads."""
        want = set(state.batches) - state.abandoned
        if not self.batches <= want:  # a batch held here was abandoned since: read afresh
            self.runs, self.numbers, self.batches = [], [], set()
        new = want - self.batches
        if new:
            for number, hashes in read_batch_hashes(uri, options, partition, new):
                self.add([number], hashes)
            self.batches |= new  # an empty batch too: it holds nothing to read again
        return self.runs

    def add(self, batches: Collection[int], hashes: np.ndarray) -> None:
        """Hold the sorted ``hashes`` of ``batches`` (a batch this process has just claimed).

        With more than one batch, the hashes are kept under the highest number: a hash found
        again is then confirmed against the whole partition (its batch is not known).
        """
        self.batches |= set(batches)
        if not len(hashes):
            return
        self.runs.append(hashes)
        number = max(batches) if len(batches) == 1 else UNKNOWN_BATCH
        self.numbers.append(np.full(len(hashes), min(number, UNKNOWN_BATCH), np.uint16))
        while (
            len(self.runs) > 1
            and 2 * len(self.runs[-1]) > len(self.runs[-2])
            and len(self.runs[-2]) < MERGED_RUN_HASHES
        ):
            newer, older = self.runs.pop(), self.runs.pop()
            merged = np.concatenate([older, newer])
            order = np.argsort(merged, kind="stable")
            self.runs.append(merged[order])
            del merged
            newer_n, older_n = self.numbers.pop(), self.numbers.pop()
            self.numbers.append(np.concatenate([older_n, newer_n])[order])

    def batches_of(self, needles: np.ndarray) -> set[int] | None:
        """The batches holding any of the hashes ``needles`` (None: some batch is not known)."""
        found: set[int] = set()
        for run, numbers in zip(self.runs, self.numbers, strict=True):
            lo = np.searchsorted(run, needles, side="left")
            hi = np.searchsorted(run, needles, side="right")
            for a, b in zip(lo[hi > lo].tolist(), hi[hi > lo].tolist(), strict=True):
                found.update(numbers[a:b].tolist())  # every batch a colliding hash is in
        return None if UNKNOWN_BATCH in found else found


# the number kept for hashes whose batch is not known (see SeenHashes.add), or above it (a
# day of more batches than a 16-bit number holds: those hashes are confirmed against the day)
UNKNOWN_BATCH = int(np.iinfo(np.uint16).max)


@dataclass
class Memo:
    """What a long-lived ingest keeps of one partition's ledger from one call to the next."""

    hashes: SeenHashes = field(default_factory=SeenHashes)
    reader: delta.PartitionReader = field(default_factory=state_reader)


def _sorted_hashes(blobs: pa.ChunkedArray) -> np.ndarray:
    """Every batch's event-id hashes as one sorted array, read from the blobs' own buffers.

    One copy of 8 bytes an event: no Python bytes per batch, no second array to sort, so the
    ledger's read does not grow the ingest's peak memory with the day.
    """
    parts = []
    for chunk in blobs.cast(pa.large_binary()).chunks:
        chunk = chunk.drop_null()
        if not len(chunk):
            continue
        offsets = np.frombuffer(chunk.buffers()[1], np.int64)[chunk.offset :][: len(chunk) + 1]
        data = np.frombuffer(chunk.buffers()[2], np.uint8)
        parts.append(data[offsets[0] : offsets[-1]].view(np.uint64))
    hashes = np.concatenate([np.zeros(0, np.uint64), *parts])
    hashes.sort(kind="stable")  # in place: a radix sort of 64-bit keys
    return hashes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rows(partition: Mapping[str, object], rows: list[dict[str, Any]]) -> pa.Table:
    now = _now()
    return pa.Table.from_pylist(
        [{"recorded_at": now, **dict(partition), **r} for r in rows], schema=LEDGER_SCHEMA
    )


def claim(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    number: int,
    objects: list[ObjectEntry],
    batch: Batch,
    hashes: np.ndarray,
) -> bool:
    """Record batch ``number`` (its objects, files and event-id hashes) in one commit.

    Returns False, recording nothing, when another writer claimed ``number`` first. A batch
    that replaces the partition (a full re-ingest) replaces the ledger's partition too.
    """
    rows: list[dict[str, Any]] = [
        {
            "kind": "object",
            "batch": number,
            "source_object": o.key,
            "etag": o.etag,
            "size": o.size,
            "records": o.records,
            "ingested": o.ingested,
            "quarantined": o.quarantined,
            "duplicates": o.duplicates,
            "reason": o.reason,
        }
        for o in objects
    ]
    plan = {"bronze": _plan(batch.bronze), "quarantine": _plan(batch.quarantine)}
    rows.append(
        {
            "kind": "batch",
            "batch": number,
            "replace": batch.replace,
            "plan": json.dumps(plan, separators=(",", ":")),
            "event_id_hashes": np.ascontiguousarray(hashes, np.uint64).tobytes(),
        }
    )
    return _claim_rows(uri, options, partition, number, rows, batch.replace)


def _claim_rows(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    number: int,
    rows: list[dict[str, Any]],
    replace: bool,
) -> bool:
    """Commit ``rows`` as batch ``number`` (its transaction id): False when it was taken."""
    table = _rows(partition, rows)
    adds = delta.stage_files(uri, table, partition, options, partition_by=BRONZE_PARTITION_BY)
    claimed = delta.commit_files(
        uri,
        adds,
        LEDGER_SCHEMA,
        partition,
        options,
        replace=replace,
        app_id=app_id(partition),
        app_version=number,
        partition_by=BRONZE_PARTITION_BY,
        once=True,
    )
    if not claimed:
        delta.discard_files(uri, options, adds)
    return claimed


def fence(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    number: int,
    keys: list[str],
) -> bool:
    """Claim batch ``number`` for an erasure about to rewrite the landing objects ``keys``.

    The batch holds no files (nothing reaches bronze) and is recorded as committed at once; its
    ``erasure`` rows keep every ingest off those objects until :func:`release`. False, writing
    nothing, when another writer claimed ``number`` first (read the ledger again, take the next).
    """
    empty: dict[str, list[object]] = {"bronze": [], "quarantine": []}
    rows: list[dict[str, Any]] = [
        {"kind": "erasure", "batch": number, "source_object": k} for k in sorted(set(keys))
    ]
    rows.append(
        {
            "kind": "batch",
            "batch": number,
            "replace": False,
            "plan": json.dumps(empty),
            "event_id_hashes": b"",
        }
    )
    if not _claim_rows(uri, options, partition, number, rows, False):
        return False
    record_commit(uri, options, partition, number, (-1, -1))
    return True


def release(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    number: int,
    keys: list[str],
) -> None:
    """Lift fence ``number`` from ``keys`` (their objects rewritten, their rows moved).

    A plain append of ``released`` rows, the product's own commit path on every cloud: the
    fence of batch ``number`` is over for each key it names.
    """
    rows = [{"kind": "released", "batch": number, "source_object": k} for k in sorted(set(keys))]
    if rows:
        _append(uri, options, partition, _rows(partition, rows))


def record_commit(
    uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    number: int,
    versions: tuple[int, int],
) -> None:
    """The batch's ``commit`` row, the last thing written for it (a plain append)."""
    table = _rows(
        partition,
        [
            {
                "kind": "commit",
                "batch": number,
                "bronze_version": versions[0],
                "quarantine_version": versions[1],
            }
        ],
    )
    _append(uri, options, partition, table)


def _append(
    uri: str, options: Mapping[str, str], partition: Mapping[str, object], table: pa.Table
) -> None:
    """Append ledger rows in a plain commit (no transaction id: a row that only adds)."""
    adds = delta.stage_files(uri, table, partition, options, partition_by=BRONZE_PARTITION_BY)
    delta.commit_files(
        uri,
        adds,
        LEDGER_SCHEMA,
        partition,
        options,
        replace=False,
        app_id=None,
        partition_by=BRONZE_PARTITION_BY,
    )


def held(uri: str, options: Mapping[str, str], partition: Mapping[str, object]) -> int:
    """The highest batch of the partition a table holds (its transaction version; 0 if none)."""
    table = delta.open_table(uri, options)
    version = table.transaction_version(app_id(partition)) if table is not None else None
    return int(version or 0)


def abandon(
    uri: str, options: Mapping[str, str], partition: Mapping[str, object], number: int
) -> None:
    """Record that batch ``number`` will never be committed (its objects are taken again)."""
    table = _rows(partition, [{"kind": "abandon", "batch": number}])
    _append(uri, options, partition, table)


def finish(
    targets: Mapping[str, tuple[str, pa.Schema]],
    ledger_uri: str,
    options: Mapping[str, str],
    partition: Mapping[str, object],
    batch: Batch,
) -> tuple[int, int] | None:
    """Commit a claimed batch's files to bronze and quarantine (each once), then its row.

    ``targets`` maps ``bronze`` and ``quarantine`` to (table URI, schema). Safe to run by
    several writers at once and after a crash at any point: each table takes batch *n* once.
    Returns None, committing nothing, when the batch's staged files are gone and neither table
    holds it: the batch is abandoned (its objects are ingested again by a later batch).
    """
    app = app_id(partition)
    missing: list[str] = []
    holds = False
    for name, adds in (("bronze", batch.bronze), ("quarantine", batch.quarantine)):
        uri = targets[name][0]
        if held(uri, options, partition) >= batch.number:
            holds = True
        else:
            missing += delta.missing_files(uri, options, adds)
    if missing and holds:
        raise LedgerError(
            f"batch {batch.number} of {_where(partition)}: one table holds it but "
            f"{len(missing)} staged file(s) of the other are gone (e.g. {missing[0]})"
        )
    if missing:
        abandon(ledger_uri, options, partition, batch.number)
        return None
    versions = []
    for name, adds in (("bronze", batch.bronze), ("quarantine", batch.quarantine)):
        uri, schema = targets[name]
        if not adds and not batch.replace:
            versions.append(-1)  # nothing to append: no commit (an empty append changes nothing)
            continue
        delta.commit_files(
            uri,
            adds,
            schema,
            partition,
            options,
            replace=batch.replace,
            app_id=app,
            app_version=batch.number,
            partition_by=BRONZE_PARTITION_BY,
            once=True,
        )
        versions.append(delta.version_of(uri, options, app, batch.number))
    record_commit(ledger_uri, options, partition, batch.number, (versions[0], versions[1]))
    return versions[0], versions[1]


def _where(partition: Mapping[str, object]) -> str:
    return f"partition {partition['landing_date']}|{partition['region']}"


def check_tables(
    state: LedgerState, tables_hold: int, ledger_uri: str, partition: Mapping[str, object]
) -> None:
    """Raise :class:`LedgerError` when bronze or quarantine holds a batch the ledger lacks.

    ``tables_hold`` must be read before ``state``: a batch reaches the tables only after the
    ledger claimed it, so a ledger read after the tables always holds what they hold, however
    many writers run at once. More in the tables means the ledger lost commits (restored from
    an older snapshot, a damaged log): new objects would be skipped as already committed.
    """
    claimed = max(state.batches, default=0)
    if tables_hold > claimed:
        raise LedgerError(
            f"{_where(partition)}: bronze holds batch {tables_hold} but the ingest ledger "
            f"{ledger_uri} has claimed only up to {claimed} (rolled back or damaged); "
            "nothing was ingested: re-ingest the partition in full to rebuild its ledger"
        )


def pending_files(uri: str, options: Mapping[str, str]) -> dict[str, set[str]]:
    """Paths of the staged files every pending batch of every partition names, per table.

    What upkeep must keep: ``bronze`` and ``quarantine`` files that a claim names and no
    commit holds yet. A narrow read of the whole ledger, then its plans for the few partitions
    that have a pending batch.
    """
    out: dict[str, set[str]] = {"bronze": set(), "quarantine": set()}
    cols = ["kind", "batch", *BRONZE_PARTITION_BY]
    rows = delta.read_partition(uri, options, None, columns=cols)
    if not rows.num_rows:
        return out
    keys: dict[tuple[object, ...], dict[str, set[int]]] = {}
    values = [rows[c].to_pylist() for c in cols]
    for row in zip(*values, strict=True):
        keys.setdefault(tuple(row[2:]), {}).setdefault(row[0], set()).add(row[1])
    for part, kinds in keys.items():
        open_ = kinds.get("batch", set()) - kinds.get("commit", set()) - kinds.get("abandon", set())
        if not open_:
            continue
        state = read_state(uri, options, dict(zip(BRONZE_PARTITION_BY, part, strict=True)))
        for batch in state.pending():
            out["bronze"].update(a.path for a in batch.bronze)
            out["quarantine"].update(a.path for a in batch.quarantine)
    return out


def _bare(etag: str | None) -> str | None:
    """An etag without its quotes (a store's listing and its HEAD may differ in them)."""
    return etag.strip('"') if etag else etag


@dataclass
class Expired:
    """What :func:`expire_landed` did: objects past retention, and those it left alone."""

    listed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # rewritten since ingested: kept
    missing: list[str] = field(default_factory=list)  # already gone


def expire_landed(
    ledger_uri: str,
    storage: Storage,
    options: Mapping[str, str],
    older_than: dt.timedelta,
    *,
    archive_prefix: str | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> Expired:
    """Delete (or move under ``archive_prefix``) landed objects ingested before ``older_than``.

    Only objects the ledger holds, and only while the store still lists them with the etag and
    size they were ingested with: an object rewritten since (quarantined as ``object_rewritten``)
    is kept for a full re-ingest to read. Off unless called: a removed object can no longer be
    re-ingested (``--full`` refuses its partition), so retention is the user's choice.
    """
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    cols = ["kind", "source_object", "etag", "size", "recorded_at"]
    table = delta.open_table(ledger_uri, options)
    out = Expired()
    if table is None:
        return out
    rows = delta.read_partition(ledger_uri, options, None, columns=cols)
    rows = rows.filter(pc.equal(rows["kind"], "object"))
    rows = rows.filter(pc.less(rows["recorded_at"], pa.scalar(cutoff, pa.timestamp("us", "UTC"))))
    for key, etag, size in zip(
        rows["source_object"].to_pylist(),
        rows["etag"].to_pylist(),
        rows["size"].to_pylist(),
        strict=True,
    ):
        out.listed.append(key)
        info = storage.head(key)
        if info is None:
            out.missing.append(key)
        elif (_bare(info.etag), info.size) != (_bare(stable_etag(etag)), size):
            out.changed.append(key)
        elif not dry_run:
            if archive_prefix:
                stream_copy(storage, key, storage, f"{archive_prefix.strip('/')}/{key}")
            storage.delete(key)
            out.removed.append(key)
    return out
