"""Asset keys of the region tables: one set per jurisdiction when each has its own code location.

Dagster allows one materializable definition of an asset key per workspace (it warns on every
load otherwise, "Only one materialization node is allowed per asset key", and gives the key's
automation and asset backfills to one location). With one code location per jurisdiction
(``compute.pools: per_jurisdiction``) the tables every region holds (bronze, the quarantine,
silver, gold, the region's health, the erasure receipts) are therefore keyed by jurisdiction,
``eu/bronze_events``, and each location defines its own jurisdiction's, partitioned by its own
regions (or locations) only. The ML home's assets (replicas, features, the model, the health
roll-up) depend on the keys of the jurisdictions they read. With one location for all
(``local``, ``emulated``, a laptop loading ``prod`` without
``LAKEHOUSE_COMPUTE_JURISDICTION``) the keys are the table names, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import dagster as dg

from pipelines.lake import tables
from pipelines.lake.config import PER_JURISDICTION, ConfigError, LakeConfig
from pipelines.sovereignty import compute

# The tables of every region's own location that an asset of each jurisdiction writes.
REGION_TABLES = frozenset(
    t.name
    for t in (
        tables.BRONZE,
        tables.QUARANTINE,
        tables.SILVER,
        tables.GOLD,
        tables.REGION_HEALTH,
        tables.ERASURE_RECEIPTS,
    )
)


@dataclass(frozen=True)
class Keys:
    """The asset keys of one code location (:func:`location_keys`).

    ``jurisdiction``: the one its region assets serve (None: every jurisdiction, keys unprefixed);
    ``regions``: the regions their partitions hold.
    """

    jurisdiction: str | None
    regions: tuple[str, ...]

    def of(self, table: str, jurisdiction: str | None = None) -> dg.AssetKey:
        """The key of ``table`` written by ``jurisdiction``'s location (default: this one's)."""
        where = jurisdiction or self.jurisdiction
        if self.jurisdiction is None or where is None or table not in REGION_TABLES:
            return dg.AssetKey(table)
        return dg.AssetKey([where.lower(), table])

    def every(self, cfg: LakeConfig, table: str) -> list[dg.AssetKey]:
        """``table``'s key in every jurisdiction's location (one key when unprefixed)."""
        return list(dict.fromkeys(self.of(table, j) for j in cfg.jurisdictions))


# One location for every jurisdiction: keys are the table names.
UNPREFIXED = Keys(None, ())


def _declared(cfg: LakeConfig) -> compute.Worker | None:
    """This process's declared worker when the keys carry a jurisdiction, else None.

    None with one location for every jurisdiction, and for a process that declares none (a
    laptop loading prod: every asset, as one location; its runs refuse anyway).
    """
    if cfg.compute.pools != PER_JURISDICTION:
        return None
    try:
        worker = compute.worker_jurisdictions(cfg)
    except ConfigError:
        return None
    return worker if worker.is_declared else None


def location_keys(cfg: LakeConfig) -> Keys:
    """The keys this process's code location defines (read ``LAKEHOUSE_COMPUTE_JURISDICTION`` now).

    Prefixed by jurisdiction only with ``compute.pools: per_jurisdiction`` and a declared worker;
    such a location declares one jurisdiction (a ConfigError, one line, otherwise).
    """
    worker = _declared(cfg)
    if worker is None:
        return Keys(None, tuple(cfg.region_codes))
    if len(worker.declared) != 1:
        raise ConfigError(
            f"{compute.COMPUTE_ENV}={worker.raw!r}: with compute.pools per_jurisdiction each code "
            "location serves one jurisdiction (its assets are keyed by it); run one location "
            f"per jurisdiction, one of {', '.join(cfg.jurisdictions)}"
        )
    return keys_of_jurisdiction(cfg, worker.declared[0])


def keys_of_jurisdiction(cfg: LakeConfig, jurisdiction: str) -> Keys:
    """The keys the code location of ``jurisdiction`` defines, as this process sees the deployment.

    What a process outside the locations (the ingest worker's runless reports) names: keyed by
    jurisdiction under the same condition as :func:`location_keys` (per_jurisdiction, declared).
    """
    if _declared(cfg) is None:
        return Keys(None, tuple(cfg.region_codes))
    regions = tuple(r for r in cfg.region_codes if cfg.jurisdiction_of_region(r) == jurisdiction)
    return Keys(jurisdiction, regions)


def keyed(asset: dg.AssetsDefinition, keys: Keys) -> dg.AssetsDefinition:
    """``asset`` with its region tables, its checks and its deps on them under ``keys``."""
    mapping = {dg.AssetKey(t): keys.of(t) for t in REGION_TABLES}
    mapping = {old: new for old, new in mapping.items() if old != new}
    return asset.with_attributes(asset_key_replacements=mapping) if mapping else asset


def table_of(key: dg.AssetKey) -> str:
    """The table an asset key names (its last part: ``eu/bronze_events`` -> ``bronze_events``)."""
    return key.path[-1]


Result = TypeVar("Result", bound=dg.MaterializeResult | dg.AssetCheckResult)


def rekeyed(results: Iterable[Result], keys: Iterable[dg.AssetKey]) -> Iterator[Result]:
    """``results`` named by table, re-addressed to the step's own keys of those tables."""
    by_table: Mapping[str, dg.AssetKey] = {table_of(k): k for k in keys}
    for result in results:
        key = result.asset_key
        if key is not None and table_of(key) in by_table and key != by_table[table_of(key)]:
            result = result._replace(asset_key=by_table[table_of(key)])  # type: ignore[assignment]
        yield result
