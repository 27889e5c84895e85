"""Freshness policies where staleness matters: bronze, replicas, features, the forecast.

Applied by group name or asset key with Dagster's public ``map_asset_specs`` and
``apply_freshness_policy``; an asset's own policy wins. The UI shows each asset's lag.
"""

import datetime as dt
from collections.abc import Mapping, Sequence

import dagster as dg

# Landing is continuous and ingested hourly: warn after 75 minutes, fail after 2 hours.
# Daily tables (replicas, features) are rebuilt once a day: fail when a day and a bit old.
# The forecast is scored daily after the features.
FRESHNESS_BY_GROUP: Mapping[str, dg.FreshnessPolicy] = {
    "bronze": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=2), warn_window=dt.timedelta(minutes=75)
    ),
    "replication": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=25)
    ),
    "features": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=25)
    ),
}
FRESHNESS_BY_KEY: Mapping[str, dg.FreshnessPolicy] = {
    "demand_forecast": dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=28), warn_window=dt.timedelta(hours=26)
    ),
}


def policy_for(spec: dg.AssetSpec) -> dg.FreshnessPolicy | None:
    """The freshness policy of an asset: by key first, then by group; None if staleness is fine."""
    by_key = FRESHNESS_BY_KEY.get(spec.key.to_user_string())
    return by_key if by_key is not None else FRESHNESS_BY_GROUP.get(spec.group_name or "")


def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
    policy = policy_for(spec)
    if policy is None:
        return spec
    return dg.apply_freshness_policy(spec, policy, overwrite_existing=False)


def with_freshness(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The same assets with the freshness policies above applied to every spec they hold."""
    return list(dg.map_asset_specs(_apply, assets))
