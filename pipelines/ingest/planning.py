"""Batch planning: which landed objects the next batch of a partition takes.

An incremental run takes the objects the ledger does not hold, in key order, cut by count and
bytes (and by shard); a full re-ingest replays the ledger's own batches, then what is new.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from pipelines.ingest import capture, ledger
from pipelines.ingest.batch import _printable
from pipelines.lake.storage import ObjectInfo

# Objects of a partition ingested per batch, and their landed bytes: a batch's objects are
# held in memory at once (each inflated about 5x), so these bound the ingest's memory whatever
# the day's size. 32 MiB of gzip (about 560,000 events) peaks at about 820 MB a process.
BATCH_OBJECTS = 256
BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class _Todo:
    """The next batch: objects to read, and those rewritten since they were ingested."""

    infos: list[ObjectInfo]
    rewritten: list[tuple[ObjectInfo, ledger.ObjectEntry]]
    replace: bool = False


def _batches(infos: list[ObjectInfo], most_objects: int, most_bytes: int) -> list[list[ObjectInfo]]:
    """``infos`` in order, cut into batches of at most so many objects and landed bytes."""
    out: list[list[ObjectInfo]] = []
    size = 0
    for info in infos:
        if not out or len(out[-1]) >= most_objects or size + info.size > most_bytes:
            if not out or out[-1]:
                out.append([])
            size = 0
        out[-1].append(info)
        size += min(info.size, capture.MAX_OBJECT_BYTES)
    return out


def _in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    return (
        shard is None or zlib.crc32(key.encode("utf-8", "surrogateescape")) % shard[1] == shard[0]
    )


def _next_batch(
    state: ledger.LedgerState,
    infos: list[ObjectInfo],
    limits: tuple[int, int],
    shard: tuple[int, int] | None,
) -> _Todo:
    """The objects not ingested yet (in key order), and those rewritten in place.

    Objects an erasure has fenced (:func:`ledger.fence`) are left for a later run.
    """
    done, keys = state.identities(), {o.key: o for o in state.objects}
    new: list[ObjectInfo] = []
    rewritten: list[tuple[ObjectInfo, ledger.ObjectEntry]] = []
    for info in infos:
        key = _printable(info.path)
        if (key, info.etag, info.size) in done or not _in_shard(key, shard):
            continue
        if key in state.erasing:  # an erasure is rewriting it: taken once it is done
            continue
        if key in keys:
            rewritten.append((info, keys[key]))
        else:
            new.append(info)
    batches = _batches(new, *limits)
    return _Todo(batches[0] if batches else [], rewritten)


def _full_plan(
    state: ledger.LedgerState, infos: list[ObjectInfo], limits: tuple[int, int]
) -> list[list[ObjectInfo]]:
    """A full re-ingest's batches: the ledger's own batches again, then objects never ingested.

    Replaying the batches the incremental runs made keeps the first occurrence of each event
    id where they kept it, so the rows come out the same.
    """
    by_key = {_printable(i.path): i for i in infos}
    missing = sorted(k for k in state.key_set() if k not in by_key)
    if missing:
        raise IngestError(
            f"full re-ingest refused: {len(missing)} ingested objects are gone from the landing "
            f"area (first: {missing[0]}); their rows cannot be read again"
        )
    groups = [[by_key[k] for k in group] for group in state.groups()]
    known = state.key_set()
    return groups + _batches([i for i in infos if _printable(i.path) not in known], *limits)


class IngestError(RuntimeError):
    """A request the ingest refuses; the message (one line) says what and why."""
