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
from assets.health import build_health, build_region_health
from assets.keys import UNPREFIXED, Keys
from assets.ml import build_ml_assets
from assets.partitions import Partitions
from assets.replicas import build_full_checks, build_replicas
from assets.silver import build_silver
from data_quality.suites import Suites
from pipelines.lake import tables
from pipelines.lake.config import LakeConfig


def build_assets(
    cfg: LakeConfig, parts: Partitions, suites: Suites, keys: Keys = UNPREFIXED
) -> list[dg.AssetsDefinition]:
    """Every asset of the environment, with freshness policies and automation conditions.

    Also the health view over all of them (measured per region, rolled up in the ML home), the
    per-region freshness checks of bronze, each replica's weekly full comparison with its
    source, and the erasure of data subjects (served by its sensor, not by automation) with its
    deadline check. ``keys``: the region tables' keys (by jurisdiction: assets/keys.py).
    """
    replicas = build_replicas(cfg, suites, keys)
    region = [build_bronze(parts, suites, keys), build_silver(parts, suites, keys)]
    region.append(build_gold(parts, suites, keys))
    home = [
        *replicas,
        build_features(
            parts,
            suites,
            [a.key for a in replicas],
            keys.of(tables.GOLD.name, cfg.home.jurisdiction),
        ),
        *build_ml_assets(parts, suites),
    ]
    built = with_automation(with_freshness([*region, *home]), cfg.compute.pools)
    region_keys = [key for a in built[: len(region)] for key in a.keys]
    home_keys = [key for a in built[len(region) :] for key in a.keys]
    region_health = build_region_health(cfg, parts, suites, keys, region_keys)
    measured = [*keys.every(cfg, tables.REGION_HEALTH.name), *(a.key for a in replicas)]
    health = build_health(cfg, suites, measured, home_keys)
    erasure = build_erasure(cfg, suites[tables.ERASURE_RECEIPTS.name], keys)
    return [
        *built,
        region_health,
        health,
        erasure,
        build_deadline_check(cfg, keys),
        build_region_freshness(keys.regions or cfg.region_codes, keys.of(tables.BRONZE.name)),
        *build_full_checks(cfg),
    ]
