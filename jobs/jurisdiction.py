"""Routing by jurisdiction: the run tag, and the chain sensor of per-jurisdiction code locations.

Every run that processes personal data carries the routing tag (``compute.routing_tag``,
``lakehouse/jurisdiction``) with the data's jurisdiction; run queues limit runs per value
(deploy/dagster-prod.yaml, deploy/helm/values.yaml).

With ``compute.pools: per_jurisdiction`` every jurisdiction has its own code location (same
image, ``LAKEHOUSE_COMPUTE_JURISDICTION`` set). A sensor's runs execute in the sensor's own code
location, so each location routes its own partitions: the ingest sensor and schedule request
only partitions its workers may process, and :func:`jurisdiction_chain_sensor` runs the
personal-data steps of the chain (silver after bronze, gold after silver, region_health after
bronze) for them. Declarative Automation is left the PII-free assets: its runs carry one
routing tag for every partition (jobs/automation.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from assets.automation import LOOK_BACK, SPARK_TAG, is_automated
from assets.partitions import Partitions, date_region_of
from assets.sovereignty import PARTITIONED_BY, reads_personal_data
from pipelines.lake.config import PER_JURISDICTION, ConfigError, LakeConfig
from pipelines.sovereignty import compute

# Parent materializations read per parent and tick; the rest on the next tick.
BATCH = 500


@dataclass(frozen=True)
class ChainLink:
    """A personal-data asset of the automated chain and the parents whose updates run it."""

    child: dg.AssetKey
    parents: tuple[dg.AssetKey, ...]
    spark: bool


def pii_chain(assets: Sequence[dg.AssetsDefinition]) -> list[ChainLink]:
    """The automated assets that declare personal data (silver, gold), with their parents."""
    links = []
    for spec in (s for a in assets for s in a.specs):
        if is_automated(spec) and reads_personal_data(spec.tags):
            parents = tuple(dep.asset_key for dep in spec.deps)
            links.append(ChainLink(spec.key, parents, "spark" in (spec.kinds or set())))
    return links


def _dims(key: str) -> tuple[str, str] | None:
    """``(date, region)`` of a ``date|region`` key, else None."""
    try:
        dims = date_region_of(key)
    except ValueError:
        return None
    return dims["date"], dims["region"]


def _jurisdiction(cfg: LakeConfig, region: str) -> str | None:
    try:
        return cfg.jurisdiction_of_region(region)
    except ConfigError:
        return None  # a region no longer configured: nothing to route


def chain_requests(
    cfg: LakeConfig,
    instance: dg.DagsterInstance,
    chain: Sequence[ChainLink],
    cursor: dict[str, int],
    earliest: dt.date,
    worker: compute.Worker,
) -> tuple[list[dg.RunRequest], dict[str, int]]:
    """Run requests for the children of new parent materializations this worker may process.

    ``cursor`` maps a parent's key to the last event storage id seen; partitions before
    ``earliest`` (the look-back of the automation) are skipped, like ``eager`` does.
    """
    cursor = dict(cursor)
    wanted: dict[tuple[dg.AssetKey, str], tuple[int, str, bool]] = {}
    for link in chain:
        for parent in link.parents:
            name = parent.to_user_string()
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=parent, after_storage_id=cursor.get(name)),
                limit=BATCH,
                ascending=True,
            )
            for record in result.records:
                cursor[name] = max(cursor.get(name, 0), record.storage_id)
                dims = _dims(record.partition_key or "")
                where = _jurisdiction(cfg, dims[1]) if dims else None
                if dims is None or where is None or not worker.serves(where):
                    continue
                if dt.date.fromisoformat(dims[0]) < earliest:
                    continue
                wanted[(link.child, record.partition_key or "")] = (
                    record.storage_id,
                    where,
                    link.spark,
                )
    requests = [
        dg.RunRequest(
            run_key=f"{child.to_user_string()}|{key}|{storage_id}",
            asset_selection=[child],
            partition_key=key,
            tags={
                cfg.compute.routing_tag: where,
                "lakehouse/trigger": "jurisdiction_chain_sensor",
                **({SPARK_TAG: "true"} if spark else {}),
            },
        )
        for (child, key), (storage_id, where, spark) in sorted(
            wanted.items(), key=lambda kv: kv[1][0]
        )
    ]
    return requests, cursor


def jurisdiction_chain_sensor(
    cfg: LakeConfig, parts: Partitions, assets: Sequence[dg.AssetsDefinition]
) -> dg.SensorDefinition | None:
    """The per-location sensor that runs the chain's personal-data steps (per_jurisdiction).

    None when the environment's code locations are shared (Declarative Automation runs them).
    """
    chain = pii_chain(assets)
    if cfg.compute.pools != PER_JURISDICTION or not chain:
        return None

    @dg.sensor(
        name="jurisdiction_chain_sensor",
        target=dg.AssetSelection.assets(*(link.child for link in chain)),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs silver, gold and region_health for new bronze and silver partitions of "
        "the jurisdictions this code location's workers may process "
        "(LAKEHOUSE_COMPUTE_JURISDICTION).",
    )
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        worker = compute.worker_jurisdictions(cfg)
        last = dt.date.fromisoformat(parts.daily.get_last_partition_key() or "1970-01-01")
        requests, cursor = chain_requests(
            cfg,
            context.instance,
            chain,
            json.loads(context.cursor) if context.cursor else {},
            last - LOOK_BACK,
            worker,
        )
        mine = set(parts.regions.get_partition_keys())  # the partitions this location's assets hold
        requests = [r for r in requests if (_dims(r.partition_key or "") or ("", ""))[1] in mine]
        context.log.info(
            f"worker {worker.describe()}: {len(requests)} run(s) of the personal-data chain"
        )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return sensor


# --- which assets a per-jurisdiction code location defines --------------------------------------
#
# Dagster allows one materializable definition per asset key across code locations (it warns on
# every load otherwise, and gives the key's automation and asset backfills to one of them). So
# with one location per jurisdiction, an asset whose partitions carry the region (bronze, the
# quarantine, silver, gold, region_health) is built by every location under its jurisdiction's
# key (assets/keys.py: ``eu/bronze_events``, partitioned by its own regions); every other asset
# (replicas, features, the model, scoring, drift, the health roll-up) belongs to the ML home's
# location alone. An asset the location's pool would refuse (personal
# data of jurisdictions it may not process, not split by region) is left out of every location,
# visibly (a warning when the location loads): no run of it could succeed in any pool.


def region_scoped(asset: dg.AssetsDefinition) -> bool:
    """True when the asset's partitions carry the region (a location can run only its own).

    By a ``region`` dimension, or by one partition per location (the erasure receipts:
    :data:`assets.sovereignty.PARTITIONED_BY`), each location being one region's.
    """
    part = asset.partitions_def
    if bool(asset.specs) and all(
        spec.tags.get(PARTITIONED_BY) == "location" for spec in asset.specs
    ):
        return isinstance(part, dg.StaticPartitionsDefinition)
    return isinstance(part, dg.MultiPartitionsDefinition) and "region" in {
        d.name for d in part.partitions_defs
    }


def refusal(cfg: LakeConfig, worker: compute.Worker, asset: dg.AssetsDefinition) -> str | None:
    """Why this worker's pool would refuse every run of ``asset``, or None when it would not.

    A personal-data asset split by region runs in a location only for the regions its workers
    may process (the sensors request no other); one that is not split processes every region's
    personal data in one run, so it needs a worker that may process every jurisdiction.
    """
    if not any(reads_personal_data(spec.tags) for spec in asset.specs):
        return None
    if region_scoped(asset):
        return None
    missing = [j for j in cfg.jurisdictions if not worker.serves(j)]
    if not missing:
        return None
    names = ", ".join(k.to_user_string() for k in asset.keys)
    return (
        f"{names} processes personal data of every region in one run, but workers of "
        f"{worker.describe()} may not process {', '.join(missing)} "
        f"(compute.may_process); it needs a run per region in each region's own pool"
    )


def owned_by_location(
    cfg: LakeConfig, worker: compute.Worker, asset: dg.AssetsDefinition, owned: set[dg.AssetKey]
) -> bool:
    """True when a per-jurisdiction location of ``worker`` defines ``asset``.

    ``owned``: keys of assets already found owned (a definition of checks only follows the
    assets it checks).
    """
    if not asset.specs:  # asset checks only: with the asset they check
        targets = {spec.asset_key for spec in asset.check_specs}
        return bool(targets) and targets <= owned
    if refusal(cfg, worker, asset):
        return False
    if region_scoped(asset):
        return True
    return cfg.home.jurisdiction in worker.declared


def location_assets(
    cfg: LakeConfig, assets: Sequence[dg.AssetsDefinition]
) -> tuple[list[dg.AssetsDefinition], list[str]]:
    """The assets this process's code location defines, and why the others are left out.

    Everything when the environment's locations are shared (``compute.pools: shared``) or the
    process declares no jurisdiction (a laptop; in prod the runs refuse anyway).
    """
    if cfg.compute.pools != PER_JURISDICTION:
        return list(assets), []
    try:
        worker = compute.worker_jurisdictions(cfg)
    except ConfigError:
        return list(assets), []
    if not worker.is_declared:
        return list(assets), []
    kept: list[dg.AssetsDefinition] = []
    owned: set[dg.AssetKey] = set()
    refused = []
    for asset in sorted(assets, key=lambda a: not a.specs):  # checks after their assets
        why = refusal(cfg, worker, asset) if asset.specs else None
        if why:
            refused.append(why)
        if owned_by_location(cfg, worker, asset, owned):
            kept.append(asset)
            owned.update(asset.keys)
    return kept, refused
