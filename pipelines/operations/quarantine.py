"""One day's quarantine of one location: its reasons, counted, with sample object keys.

What an operator reads after a quarantine spike. Only the reason, the landing object's key and
the record's index in it are read: the raw record may hold personal data and is never opened.
Free of Dagster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pipelines.ingest.reasons import reason_kind
from pipelines.lake import delta, tables
from pipelines.lake.config import ConfigError, LakeLocation

SAMPLE_KEYS = 3


@dataclass
class Reason:
    """One reason kind: how many records, in how many objects, and a few of their keys."""

    reason: str
    records: int = 0
    objects: set[str] = field(default_factory=set)

    def as_dict(self, samples: int = SAMPLE_KEYS) -> dict[str, Any]:
        """JSON-ready form: counts and a few object keys (sorted, so reruns agree)."""
        return {
            "reason": self.reason,
            "records": self.records,
            "objects": len(self.objects),
            "sample_objects": sorted(self.objects)[:samples],
        }


def day_reasons(
    loc: LakeLocation, options: dict[str, str], day: dt.date, table: str | None = None
) -> tuple[int, list[Reason]]:
    """Records quarantined on ``day`` in ``loc`` (and how many), by reason kind, commonest first.

    ``table`` is the quarantine table's name (default the registry's); only that day's partition
    is read, and only its reason and object key columns.
    """
    uri = loc.table_uri(table or tables.QUARANTINE.name)
    if table is not None and delta.table_version(uri, options) is None:
        # a table named that is not there is a typo, not a day without rejected records
        raise ConfigError(f"no Delta table {table!r} at location {loc.name} ({uri})")
    rows = delta.read_between(
        uri, options, "landing_date", day, day, ["landing_date", "source_object", "reason"]
    )
    by_kind: dict[str, Reason] = {}
    if not rows.num_rows:
        return 0, []
    cols = rows.to_pydict()
    total = 0
    for when, key, reason in zip(
        cols["landing_date"], cols["source_object"], cols["reason"], strict=True
    ):
        if when != day:
            continue
        total += 1
        # the kind, not the full reason: an error's words may quote the record it refused
        kind = reason_kind(str(reason))
        entry = by_kind.setdefault(kind, Reason(kind))
        entry.records += 1
        entry.objects.add(str(key))
    return total, sorted(by_kind.values(), key=lambda r: (-r.records, r.reason))
