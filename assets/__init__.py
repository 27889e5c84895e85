"""Dagster assets: thin wrappers that read, call an engine in pipelines/, write and report.

Every asset is built by a function from one environment's configuration (partitions, suites,
replicas); :func:`build_assets` assembles them. Nothing here reads configuration at import.
"""

import dagster as dg

from assets.automation import with_automation
from assets.bronze import build_bronze
from assets.erasure import build_deadline_check, build_erasure
from assets.features import build_features
from assets.freshness import build_region_freshness, with_freshness
from assets.gold import build_gold
from assets.health import build_health
from assets.ml import build_ml_assets
from assets.partitions import Partitions
from assets.replicas import build_full_checks, build_replicas
from assets.silver import build_silver
from data_quality.suites import Suites
from pipelines.lake import tables
from pipelines.lake.config import LakeConfig


def build_assets(cfg: LakeConfig, parts: Partitions, suites: Suites) -> list[dg.AssetsDefinition]:
    """Every asset of the environment, with freshness policies and automation conditions.

    Also the health view over all of them, the per-region freshness checks of bronze, each
    replica's weekly full comparison with its source, and the erasure of data subjects (served
    by its sensor, not by automation) with its deadline check.
    """
    replicas = build_replicas(cfg, suites)
    assets = [
        build_bronze(parts, suites),
        build_silver(parts, suites),
        build_gold(parts, suites),
        *replicas,
        build_features(parts, suites, [a.key for a in replicas]),
        *build_ml_assets(parts, suites),
    ]
    built = with_automation(with_freshness(assets), cfg.compute.pools)
    measured = [dg.AssetKey(tables.BRONZE.name), dg.AssetKey(tables.QUARANTINE.name)]
    measured += [a.key for a in replicas]
    timed = [key for a in built for key in a.keys]
    health = build_health(cfg, suites, measured, timed)
    erasure = build_erasure(cfg, suites[tables.ERASURE_RECEIPTS.name])
    return [
        *built,
        health,
        erasure,
        build_deadline_check(cfg),
        build_region_freshness(cfg.region_codes),
        *build_full_checks(cfg),
    ]
