"""Bronze: landing objects ingested into each region's Delta tables, with a quarantine."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.partitions import Partitions, date_region_of
from assets.sovereignty import declare, require_jurisdiction
from data_quality import gx
from data_quality.suites import Suite, Suites
from pipelines import ingest, tables
from pipelines.events import record_rules
from resources.lake import LakeResource

RECONCILIATION_CHECK = "bronze_events_reconciliation"
# Reads the landing area's raw capture objects, writes both personal-data tables.
BRONZE_DATA = declare(writes=(tables.BRONZE.name, tables.QUARANTINE.name))


def build_bronze(parts: Partitions, suites: Suites) -> dg.AssetsDefinition:
    """The bronze multi-asset: events and quarantine of one (date, region), with their checks."""
    events, quarantine = suites[tables.BRONZE.name], suites[tables.QUARANTINE.name]

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                tables.BRONZE.name,
                group_name="bronze",
                kinds={"delta", "python"},
                description=tables.BRONZE.description,
                metadata={"partition_columns": "landing_date, region", **BRONZE_DATA.metadata()},
                tags=BRONZE_DATA.tags(),
            ),
            dg.AssetSpec(
                tables.QUARANTINE.name,
                group_name="bronze",
                kinds={"delta", "python"},
                description=tables.QUARANTINE.description,
                metadata=BRONZE_DATA.metadata(),
                tags=BRONZE_DATA.tags(),
            ),
        ],
        check_specs=[
            gx.check_spec(events),
            gx.check_spec(quarantine),
            dg.AssetCheckSpec(
                RECONCILIATION_CHECK,
                asset=tables.BRONZE.name,
                blocking=True,
                description="landed = ingested + quarantined + duplicates dropped, exactly.",
            ),
        ],
        partitions_def=parts.date_region,
        can_subset=False,
    )
    def bronze(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Ingest one landing date of one region: parse, validate, de-duplicate, write."""
        keys = date_region_of(context.partition_key)
        day = dt.date.fromisoformat(keys["date"])
        location = lake.location_for_region(keys["region"])
        # before any byte of the landing area or the tables is read
        where = require_jurisdiction(context, lake, "bronze", [location], BRONZE_DATA)
        rules = record_rules(lake.config())
        done = ingest.ingest_partition(location, lake.storage_options(location), day, rules)
        context.log.info(f"ingested {location.name} {day}: {done.result.report()}")
        yield from _materializations(done, location.name, where)
        yield from _checks(done, events, quarantine)

    return bronze


def _materializations(
    done: ingest.PartitionIngest, location: str, where: dict[str, Any]
) -> list[dg.MaterializeResult]:
    res = done.result
    return [
        dg.MaterializeResult(
            asset_key=tables.BRONZE.name,
            metadata={
                "location": location,
                "table_uri": done.bronze_uri,
                "delta_version": done.bronze_version,
                "landed": res.landed,
                "ingested": res.ingested,
                "quarantined": res.quarantined,
                "duplicates_dropped": res.duplicates,
                "objects": res.objects,
                "reconciled": res.reconciled,
                "records_with_rescued_data": res.rescued,
                "unconfigured_streams": dg.MetadataValue.json(list(res.unconfigured_streams)),
                "dagster/row_count": res.ingested,
                **where,
            },
        ),
        dg.MaterializeResult(
            asset_key=tables.QUARANTINE.name,
            metadata={
                "table_uri": done.quarantine_uri,
                "delta_version": done.quarantine_version,
                "corrupt_objects": res.corrupt_objects,
                "reasons": dg.MetadataValue.json(res.report()["quarantine_reasons"]),
                "dagster/row_count": res.quarantined,
                **where,
            },
        ),
    ]


def _checks(
    done: ingest.PartitionIngest, events: Suite, quarantine: Suite
) -> list[dg.AssetCheckResult]:
    """Both tables' suites on the rows just written, and the exact reconciliation."""
    res = done.result
    report = res.report()
    expected = res.landed - res.quarantined - res.duplicates
    return [
        gx.check(events, res.bronze, {"expected_rows": expected}),
        gx.check(quarantine, res.quarantine, {"expected_rows": res.quarantined}),
        dg.AssetCheckResult(
            asset_key=tables.BRONZE.name,
            check_name=RECONCILIATION_CHECK,
            passed=res.reconciled,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                k: report[k] for k in ("landed", "ingested", "quarantined", "duplicates_dropped")
            },
        ),
    ]
