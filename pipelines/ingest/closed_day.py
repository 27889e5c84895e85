"""Closed days: the compaction of a day no more objects land in, and the backlog check.

A day is closed :data:`DAY_CLOSES_AFTER` after it ends; its partition of bronze, quarantine and
the ledger is then compacted once it holds many small files; with a clustering, bronze's
partition is rewritten into files grouped by a keyed customer bucket (one rewrite a day, and
again only if objects land late), so an erasure rewrites only the files of the subjects' buckets.
:func:`backlog` is what the hourly safety net asks of a partition.
"""

from __future__ import annotations

import datetime as dt

from pipelines.ingest import ledger
from pipelines.ingest.batch import BRONZE_TABLE, _printable
from pipelines.ingest.events import bronze_partition
from pipelines.ingest.landing import landing_listing
from pipelines.lake import delta
from pipelines.lake.config import LakeLocation
from pipelines.lake.delta.cluster import LEDGER_OBJECTS_APART, Clustering
from pipelines.lake.storage import open_storage

# A day is closed (no more objects land in its folders) this long after it ends.
DAY_CLOSES_AFTER = dt.timedelta(hours=1)
# A closed day's partition is compacted when it has more files than this.
COMPACT_ABOVE_FILES = 4


def backlog(
    location: LakeLocation,
    options: dict[str, str],
    landing_date: dt.date,
    now: dt.datetime | None = None,
) -> str | None:
    """Why a partition needs an ingest run, or None: what the hourly safety net asks.

    Costs one listing of the date's folders and a narrow read of the ledger: objects listed
    but not in the ledger (new or rewritten), or a closed day whose bronze still has many files.
    """
    storage = open_storage(location.root_uri(), options)
    infos = landing_listing(storage, location.landing, landing_date)[0]
    part = bronze_partition(landing_date, location.region)
    done = ledger.identities(location.table_uri(ledger.LEDGER_TABLE), options, part)
    new = sum((_printable(i.path), i.etag, i.size) not in done for i in infos)
    if new:
        return f"{new} landed objects not ingested"
    closes = dt.datetime.combine(landing_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    if (now or dt.datetime.now(dt.UTC)) >= closes + DAY_CLOSES_AFTER and (
        delta.partition_files(location.table_uri(BRONZE_TABLE), options, part, unclustered=True)
        > COMPACT_ABOVE_FILES
    ):
        return "closed day with small files to compact"
    return None


def _compact_if_closed(
    uris: tuple[str, ...],
    options: dict[str, str],
    part: dict[str, object],
    landing_date: dt.date,
    now: dt.datetime | None,
    cluster: Clustering | None = None,
) -> bool:
    """Compact a closed day's partition of the three tables once it has many small files.

    ``cluster`` applies to the first (bronze): its partition is clustered once any of its
    files is not; the quarantine holds no customer column to group by. The ledger's (the
    third) ``object`` rows are written apart from its other rows (an erasure updates them).
    """
    closes = dt.datetime.combine(landing_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    if (now or dt.datetime.now(dt.UTC)) < closes + DAY_CLOSES_AFTER:
        return False
    return any(
        [
            delta.compact_partition(
                uri, options, part, COMPACT_ABOVE_FILES, (cluster, None, LEDGER_OBJECTS_APART)[i]
            )
            for i, uri in enumerate(uris)
        ]
    )
