"""Freshness: policies where staleness matters, and per-region freshness checks on bronze.

Applied by group name or asset key with Dagster's public ``map_asset_specs`` and
``apply_freshness_policy``; an asset's own policy wins. The UI shows each asset's lag.
"""

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence

import dagster as dg

from assets.partitions import date_region_of
from pipelines.lake import tables
from pipelines.operations import advice

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
    tables.FORECAST.name: dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=28), warn_window=dt.timedelta(hours=26)
    ),
}


def policy_for(spec: dg.AssetSpec) -> dg.FreshnessPolicy | None:
    """The freshness policy of an asset: by key first, then by group; None if staleness is fine."""
    by_key = FRESHNESS_BY_KEY.get(spec.key.path[-1])
    return by_key if by_key is not None else FRESHNESS_BY_GROUP.get(spec.group_name or "")


def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
    policy = policy_for(spec)
    if policy is None:
        return spec
    return dg.apply_freshness_policy(spec, policy, overwrite_existing=False)


def with_freshness(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The same assets with the freshness policies above applied to every spec they hold."""
    return list(dg.map_asset_specs(_apply, assets))


# Bronze is ingested hourly: a day's partition is due two hours after the day closes (the
# bronze fail window above).
REGION_DEADLINE = dt.timedelta(hours=2)
REGION_CHECKS = "bronze_events_region_freshness"


def region_check_name(region: str) -> str:
    """Name of one region's freshness check on bronze."""
    return f"{tables.BRONZE.name}_freshness_{region}"


def _date_region(key: str) -> tuple[str, dt.date] | None:
    try:
        dims = date_region_of(key)
        return dims["region"], dt.date.fromisoformat(dims["date"])
    except ValueError:
        return None


def build_region_freshness(
    regions: Sequence[str], bronze: dg.AssetKey | None = None
) -> dg.AssetChecksDefinition:
    """One freshness check per region on bronze: each region's own newest partition.

    Dagster's ``build_time_partition_freshness_checks`` judges an asset by its newest time
    partition, which needs a time-window partitioning; bronze is date x region, where one
    region's fresh partition would hide another's late one. Same rule, per region.
    """
    bronze = bronze or dg.AssetKey(tables.BRONZE.name)  # a jurisdiction's key (assets/keys.py)
    specs = [
        dg.AssetCheckSpec(
            region_check_name(r),
            asset=bronze,
            description=f"Region {r}'s newest landing date is ingested by "
            f"{int(REGION_DEADLINE.total_seconds() // 3600)} h after the day closes.",
        )
        for r in regions
    ]
    by_name = {region_check_name(r): r for r in regions}

    @dg.multi_asset_check(specs=specs, name=REGION_CHECKS, can_subset=True)
    def region_freshness(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        """Each region's newest ingested partition against the one due by now.

        A clock check, not a check of rows just written: a run that materializes assets (an
        ingest or a backfill of past days, whose selection Dagster widens to the asset's
        checks) leaves it to ``freshness_checks_job``, or every backfill would alert.
        """
        if context.run.asset_selection:
            context.log.info("region freshness is judged by freshness_checks_job, not here")
            return
        keys = context.instance.get_materialized_partitions(bronze)
        latest = advice.latest_by_region(p for k in keys if (p := _date_region(k)) is not None)
        now = dt.datetime.now(dt.UTC)
        expected = advice.expected_date(now, REGION_DEADLINE)
        wanted = [by_name[k.name] for k in context.selected_asset_check_keys]
        for verdict in advice.region_freshness(latest, wanted, expected):
            yield dg.AssetCheckResult(
                asset_key=bronze,
                check_name=region_check_name(verdict.region),
                passed=verdict.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "latest_partition": str(verdict.latest or "none"),
                    "expected_partition": str(verdict.expected),
                    "alert": verdict.describe(),
                },
            )

    return region_freshness
