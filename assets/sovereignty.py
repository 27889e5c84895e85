"""Which assets process personal data, declared as data, and the check each runs first.

An asset that reads or writes a table the registry marks as personal data
(:mod:`pipelines.lake.tables`) declares it: the tag ``lakehouse/reads_personal_data: "true"``
and the tables in its metadata (``lakehouse/tables_read``, ``lakehouse/tables_written``). The
jurisdiction it needs is that of the location holding each partition's region. Its first act
is :func:`require_jurisdiction`, before it opens a store or submits a Spark step: the worker
must be allowed to process that jurisdiction's personal data
(:mod:`pipelines.sovereignty.compute`), or the step fails naming step, jurisdictions and rule.
``tests/test_sovereignty.py`` walks the definitions: an asset whose parents or own table are
personal data and that does not declare it fails the build.

Gold reads silver, which is pseudonymized and still personal data (the registry says so), so
gold is a personal-data step too; replicas, features, the model, the forecast and drift read
only PII-free tables and run wherever ``policy.allowed_routes`` lets their data go.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from pipelines.lake.config import LakeLocation
from pipelines.sovereignty import compute
from resources.lake import LakeResource

READS_PERSONAL_DATA = "lakehouse/reads_personal_data"
TABLES_READ = "lakehouse/tables_read"
TABLES_WRITTEN = "lakehouse/tables_written"
# An asset partitioned by location, each one jurisdiction's (the erasure receipts): a
# per-jurisdiction code location defines its own jurisdiction's, as it does the assets
# partitioned by region (jobs/jurisdiction.py ``region_scoped``).
PARTITIONED_BY = "lakehouse/partitioned_by"


@dataclass(frozen=True)
class Declaration:
    """The tables an asset reads and writes, as it declares them."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    @property
    def personal(self) -> tuple[str, ...]:
        """The registry personal-data tables among them."""
        return tuple(compute.personal_tables([*self.reads, *self.writes]))

    def tags(self) -> dict[str, str]:
        """The asset tags (searchable in the UI: ``tag:lakehouse/reads_personal_data=true``)."""
        return {READS_PERSONAL_DATA: "true" if self.personal else "false"}

    def metadata(self) -> dict[str, Any]:
        """The asset metadata naming the tables."""
        return {
            TABLES_READ: dg.MetadataValue.json(list(self.reads)),
            TABLES_WRITTEN: dg.MetadataValue.json(list(self.writes)),
        }


def declare(reads: Sequence[str] = (), writes: Sequence[str] = ()) -> Declaration:
    """A declaration of the tables an asset reads and writes."""
    return Declaration(tuple(reads), tuple(writes))


def _names(value: Any) -> tuple[str, ...]:
    raw = value.value if isinstance(value, dg.MetadataValue) else value
    if isinstance(raw, str):
        raw = json.loads(raw)
    return tuple(str(v) for v in raw or ())


def declared(tags: Mapping[str, str], metadata: Mapping[str, Any]) -> Declaration | None:
    """The declaration an asset carries in its tags and metadata (None when it has none)."""
    if READS_PERSONAL_DATA not in tags:
        return None
    return Declaration(_names(metadata.get(TABLES_READ)), _names(metadata.get(TABLES_WRITTEN)))


def reads_personal_data(tags: Mapping[str, str]) -> bool:
    """True when an asset's tags declare that it processes personal data."""
    return tags.get(READS_PERSONAL_DATA) == "true"


def require_jurisdiction(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    step: str,
    locations: Iterable[LakeLocation],
    declaration: Declaration,
) -> dict[str, Any]:
    """Refuse the step unless this worker may process every location's data; log and report.

    Call it first, before any store is opened or any Spark step submitted: it reads only the
    configuration and ``LAKEHOUSE_COMPUTE_JURISDICTION``. Returns the metadata the step's
    materializations record (the worker's jurisdiction, the data's, the rule).
    """
    cfg = lake.config()
    worker = compute.worker_jurisdictions(cfg)
    if worker.notice:
        context.log.warning(worker.notice)
    grants = compute.check_locations(
        cfg, step, locations, declaration.reads, declaration.writes, worker
    )
    data = sorted({g.data_jurisdiction for g in grants})
    context.log.info(
        f"compute sovereignty: {step} on a worker declaring {worker.describe()} processes "
        f"{', '.join(f'{g.location} ({g.data_jurisdiction})' for g in grants)}: "
        f"{'; '.join(dict.fromkeys(g.rule for g in grants))}"
    )
    return {
        "lakehouse/worker_jurisdiction": worker.describe(),
        "lakehouse/data_jurisdiction": ",".join(data),
        "lakehouse/compute_rule": "; ".join(dict.fromkeys(g.rule for g in grants)),
    }
