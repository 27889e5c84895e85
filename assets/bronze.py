"""Bronze: landing objects ingested into each region's Delta tables, with a quarantine."""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.keys import Keys, keyed, rekeyed
from assets.partitions import Partitions, date_region_key, date_region_of
from assets.sovereignty import declare, require_jurisdiction
from data_quality import gx
from data_quality.suites import Suite, Suites
from pipelines.ingest import partition as ingest
from pipelines.ingest.batch import IngestResult, empty_result
from pipelines.ingest.events import record_rules
from pipelines.ingest.planning import BATCH_BYTES, BATCH_OBJECTS
from pipelines.lake import delta, tables
from resources.lake import LakeResource
from resources.pii import PiiKeyResource

RECONCILIATION_CHECK = "bronze_events_reconciliation"
# A runless ingest's seconds (the worker's, the demo's), on its bronze materialization: it has
# no run steps to time; the health view reads them here (assets/health.py observe)
COMPUTE_SECONDS = "compute_seconds"


class BronzeConfig(dg.Config):
    """How a run ingests its partition (the defaults suit the sensor's runs)."""

    full: bool = False  # re-ingest the whole partition (a changed schema, a fixed bug)
    batch_objects: int = BATCH_OBJECTS  # objects per batch
    batch_bytes: int = BATCH_BYTES  # landed bytes per batch: bounds the run's memory


# Reads the landing area's raw capture objects, writes both personal-data tables.
BRONZE_DATA = declare(writes=(tables.BRONZE.name, tables.QUARANTINE.name, tables.LEDGER.name))


def build_bronze(parts: Partitions, suites: Suites, keys: Keys) -> dg.AssetsDefinition:
    """The bronze multi-asset: events and quarantine of one (date, region), with their checks.

    Keyed as ``keys`` says (by jurisdiction with one code location per jurisdiction).
    """
    events, quarantine = suites[tables.BRONZE.name], suites[tables.QUARANTINE.name]

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                tables.BRONZE.name,
                group_name="bronze",
                kinds={"delta", "python"},
                description=tables.BRONZE.description,
                metadata={
                    "partition_columns": ", ".join(tables.BRONZE.partition_by),
                    **BRONZE_DATA.metadata(),
                },
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
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        pii: PiiKeyResource,
        config: BronzeConfig,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Ingest the new objects of one landing date of one region, exactly once each."""
        keys = date_region_of(context.partition_key)
        day = dt.date.fromisoformat(keys["date"])
        location = lake.location_for_region(keys["region"])
        # before any byte of the landing area or the tables is read
        where = require_jurisdiction(context, lake, "bronze", [location], BRONZE_DATA)
        rules = record_rules(lake.config())
        validated: list[tuple[dg.AssetCheckResult, dg.AssetCheckResult]] = []

        def validate(batch: IngestResult) -> None:
            # each batch as it is appended: memory stays bounded by a batch
            validated.append(_batch_checks(batch, events, quarantine))

        done = ingest.ingest_partition(
            location,
            lake.storage_options(location),
            day,
            rules,
            full=config.full,
            batch_objects=config.batch_objects,
            batch_bytes=config.batch_bytes,
            keep_rows=False,
            on_batch=validate,
            # a closed day grouped by a keyed customer bucket (no key set: left as one file)
            cluster=delta.bronze_clustering(lake.config().privacy, pii.key or None),
        )
        context.log.info(f"ingested {location.name} {day}: {done.report()}")
        if not validated:  # nothing new: the suites see the (empty) batch appended
            validated.append(_batch_checks(empty_result(location.region, day), events, quarantine))
        results = partition_results(done, location.name, where, validated)
        yield from rekeyed(results, context.assets_def.keys)

    return keyed(bronze, keys)


def partition_results(
    done: ingest.PartitionIngest,
    location: str,
    where: dict[str, Any],
    validated: list[tuple[dg.AssetCheckResult, dg.AssetCheckResult]] | None,
) -> list[dg.MaterializeResult | dg.AssetCheckResult]:
    """What a partition's ingest reports: both materializations and the three check results.

    The asset yields them from its run; the ingest worker (``lakehouse/worker.py``) reports the
    same to Dagster without a run (``validated=None``: the materializations alone, the worker
    evaluating the checks once over several commits).
    """
    if validated is None:
        return [*_materializations(done, location, where)]
    # the partition the checks judged, in their metadata: the check's history names the day
    # and region of each evaluation (the worker's runless evaluations carry no partition field)
    key = date_region_key(done.result.landing_date.isoformat(), done.result.region)
    named = {"partition": str(key)}
    return [
        *_materializations(done, location, where),
        _combined([v[0] for v in validated], named),
        _combined([v[1] for v in validated], named),
        _reconciliation(done, named),
    ]


def batch_checks(
    batch: IngestResult, events: Suite, quarantine: Suite
) -> tuple[dg.AssetCheckResult, dg.AssetCheckResult]:
    """Both tables' suites on one batch's rows, as appended."""
    return _batch_checks(batch, events, quarantine)


def _materializations(
    done: ingest.PartitionIngest, location: str, where: dict[str, Any]
) -> list[dg.MaterializeResult]:
    """The partition's totals (from the ledger) and what this run added."""
    res, tot = done.result, done.totals
    return [
        dg.MaterializeResult(
            asset_key=tables.BRONZE.name,
            metadata={
                "location": location,
                "table_uri": done.bronze_uri,
                "delta_version": done.bronze_version,
                "ledger_uri": done.ledger_uri,
                "landed": tot["landed"],
                "ingested": tot["ingested"],
                "quarantined": tot["quarantined"],
                "duplicates_dropped": tot["duplicates_dropped"],
                "objects": tot["objects"],
                "reconciled": done.reconciled,
                "run_objects": res.objects,
                "run_landed": res.landed,
                "run_ingested": res.ingested,
                "run_quarantined": res.quarantined,
                "run_duplicates_dropped": res.duplicates,
                "batches": dg.MetadataValue.json(done.batches),
                "compacted": done.compacted,
                "records_with_rescued_data": res.rescued,
                "rescued_fields": dg.MetadataValue.json(dict(sorted(res.rescued_fields.items()))),
                "unconfigured_streams": dg.MetadataValue.json(list(res.unconfigured_streams)),
                "dagster/row_count": done.table_rows.get("bronze", tot["ingested"]),
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
                "run_quarantined": res.quarantined,
                "dagster/row_count": done.table_rows.get("quarantine", tot["quarantined"]),
                **where,
            },
        ),
    ]


@dataclass(frozen=True)
class BatchRows:
    """What the bronze suites read of committed batches: samples of their rows, exact counts.

    ``expected``: the bronze rows the batches should hold (landed - quarantined - duplicates);
    ``batches``: how many batches it covers. One batch's, or several batches' joined (the
    ingest worker evaluates the suites once over the batches committed since the last time).
    """

    bronze: gx.Sampled
    quarantine: gx.Sampled
    expected: int
    quarantined: int
    batches: int = 1

    @staticmethod
    def of(batch: IngestResult, events: Suite, quarantine: Suite) -> "BatchRows":
        """A batch's rows as the suites read them (a sample of each); the full rows not kept."""
        return BatchRows(
            gx.Sampled.of(batch.bronze, events.sample_rows),
            gx.Sampled.of(batch.quarantine, quarantine.sample_rows),
            batch.landed - batch.quarantined - batch.duplicates,
            batch.quarantined,
        )

    @staticmethod
    def joined(parts: list["BatchRows"]) -> "BatchRows":
        """Several batches' rows as one evaluation reads them."""
        return BatchRows(
            gx.Sampled.joined([p.bronze for p in parts]),
            gx.Sampled.joined([p.quarantine for p in parts]),
            sum(p.expected for p in parts),
            sum(p.quarantined for p in parts),
            sum(p.batches for p in parts),
        )


def rows_checks(
    rows: BatchRows, events: Suite, quarantine: Suite
) -> tuple[dg.AssetCheckResult, dg.AssetCheckResult]:
    """Both tables' suites on batches' rows (:class:`BatchRows`), once."""
    counted = {"batches_in_evaluation": rows.batches}
    return (
        gx.check_result(
            events,
            gx.validate(events, rows.bronze, {"expected_rows": rows.expected}),
            **counted,
        ),
        gx.check_result(
            quarantine,
            gx.validate(quarantine, rows.quarantine, {"expected_rows": rows.quarantined}),
            **counted,
        ),
    )


def _batch_checks(
    batch: IngestResult, events: Suite, quarantine: Suite
) -> tuple[dg.AssetCheckResult, dg.AssetCheckResult]:
    """Both tables' suites on one batch's rows, as appended."""
    return rows_checks(BatchRows.of(batch, events, quarantine), events, quarantine)


def _combined(results: list[dg.AssetCheckResult], named: dict[str, str]) -> dg.AssetCheckResult:
    """One check result for a run's batches: the first that failed, else the last."""
    failed = [r for r in results if not r.passed]
    pick = (failed or results)[-1 if not failed else 0]
    return dg.AssetCheckResult(
        asset_key=pick.asset_key,
        check_name=pick.check_name,
        passed=pick.passed,
        severity=pick.severity,
        description=pick.description,
        metadata={
            **named,
            **(pick.metadata or {}),
            "batches_validated": len(results),
            "batches_failed": len(failed),
        },
    )


def _reconciliation(done: ingest.PartitionIngest, named: dict[str, str]) -> dg.AssetCheckResult:
    """Exact at two levels: every object's records, and the partition against its tables."""
    tot = done.totals
    unreconciled = [o.key for o in done.objects if not o.reconciled]
    return dg.AssetCheckResult(
        asset_key=tables.BRONZE.name,
        check_name=RECONCILIATION_CHECK,
        passed=done.reconciled,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            **named,
            **{k: tot[k] for k in ("landed", "ingested", "quarantined", "duplicates_dropped")},
            "objects": tot["objects"],
            "objects_unreconciled": len(unreconciled),
            "first_unreconciled_objects": dg.MetadataValue.json(unreconciled[:20]),
            "bronze_table_rows": done.table_rows.get("bronze", -1),
            "quarantine_table_rows": done.table_rows.get("quarantine", -1),
        },
    )
