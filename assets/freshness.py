"""Freshness policies where staleness matters: bronze, replicas, features, the forecast.

Applied by group name or asset key, so a group added later (``replication``, ``features``,
``ml``) gets its policy by being listed in ``ASSETS``; the UI shows each asset's lag against it.
"""

import datetime as dt
from collections.abc import Iterable, Mapping

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
    if by_key is not None:
        return by_key
    return FRESHNESS_BY_GROUP.get(spec.group_name or "")


def _with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.freshness_policy is not None:  # an asset's own policy wins
        return spec
    policy = policy_for(spec)
    return spec if policy is None else spec.replace_attributes(freshness_policy=policy)


def with_freshness(
    assets: Iterable[dg.AssetsDefinition | dg.AssetSpec],
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """The same assets with the freshness policies above applied to every spec they hold."""
    out: list[dg.AssetsDefinition | dg.AssetSpec] = []
    for item in assets:
        if isinstance(item, dg.AssetSpec):
            out.append(_with_policy(item))
        else:
            out.append(item.map_asset_specs(_with_policy))
    return out
