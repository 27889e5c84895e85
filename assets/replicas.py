"""Replicas: each configured table copied from its region's location into the ML home."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.keys import UNPREFIXED, Keys
from assets.sovereignty import declare, require_jurisdiction
from data_quality import gx
from data_quality.suites import Suite, Suites
from pipelines.lake.config import LakeConfig, Replica
from pipelines.lake.delta import table_version
from pipelines.lake.storage import bytes_read, bytes_read_since, bytes_under, one_line
from pipelines.replication.deltalog import BYTES_PER_GB, Remedy, SyncError
from pipelines.replication.options import SyncOptions
from pipelines.replication.plan import SyncReport
from pipelines.replication.sync import sync
from pipelines.replication.verify import CopyCheck, compare_tables, verify_copy
from resources.lake import LakeResource

FULL_CHECK_CRON = "0 4 * * 0"  # weekly, Sunday 04:00 UTC: the full source-vs-replica comparison


class ReplicaConfig(dg.Config):
    """Run config of a replica asset: what an operator may ask of its sync."""

    reseed: bool = False  # restart the replica from the source (same table only)


def remedy_hint(name: str, remedy: Remedy) -> str:
    """How this asset says a remedy a sync error carries: its run config, not the CLI's flags."""
    if remedy is Remedy.RESEED:
        return (
            "to restart the replica from the source, launch this asset with run config "
            f"ops: {{{name}: {{config: {{reseed: true}}}}}}"
        )
    # This asset never destroys another table's log.
    return "another table occupies the replica's place: move it away, then launch this asset"


def sync_failure(name: str, exc: SyncError) -> dg.Failure:
    """A refused sync as a one-line failure saying what an operator of this asset can do."""
    hint = f"; {remedy_hint(name, exc.remedy)}" if exc.remedy else ""
    return dg.Failure(description=one_line(exc) + hint, allow_retries=False)


def consistency_check_name(name: str) -> str:
    """Name of a replica's per-run check of what the sync copied."""
    return f"{name}_consistency"


def full_check_name(name: str) -> str:
    """Name of a replica's weekly full source-vs-replica comparison."""
    return f"{name}_full_consistency"


def _find(lake: LakeResource, name: str) -> Replica:
    for replica in lake.config().replicas():
        if replica.name == name:
            return replica
    raise dg.DagsterInvariantViolationError(
        f"replica {name!r} is not configured in environment {lake.environment!r} "
        "(lakehouse.yaml replication:)"
    )


def _sync_metadata(replica: Replica, report: SyncReport) -> dict[str, Any]:
    return {
        "source_uri": replica.source_uri,
        "replica_uri": replica.target_uri,
        "route": report.route,
        "source_version": report.source_version,
        "replica_version": report.target_version_after,
        "versions_behind": report.versions_behind_after,
        "versions_behind_before": report.versions_behind_before,
        "files_copied": report.files_copied,
        "bytes_copied": report.bytes_copied,
        "seconds": dg.MetadataValue.float(report.seconds),
        # the content scan before the border (docs/privacy.md): what it read, no value
        "content_files_scanned": report.content_files_scanned,
        "content_bytes_read": report.content_bytes_read,
    }


def _egress(report: SyncReport, copy: CopyCheck, from_source: int) -> dict[str, Any]:
    """What the route carried: every byte this step read from the source's location.

    That is the copy, the logs the planner read there (commits, a checkpoint for the schema in
    effect), and what verification read there: the storage layer's counter, not an estimate.
    """
    total = max(from_source, report.bytes_copied)
    return {
        "egress_bytes": total,
        "verify_egress_bytes": copy.source_bytes_read,
        "egress_usd": dg.MetadataValue.float(total / BYTES_PER_GB * report.egress_usd_per_gb),
    }


def bytes_read_by_location(lake: LakeResource, counts: dict[str, int]) -> dict[str, Any]:
    """Run metadata: bytes this step read through the storage layer, per lake location."""
    out = {}
    for location in lake.config().locations.values():
        read = bytes_under(counts, location.root_uri())
        if read:
            out[location.name] = read
    return {"bytes_read": dg.MetadataValue.json(out), "bytes_read_total": sum(out.values())}


def build_replica_asset(
    name: str, table: str, source: str, suite: Suite, upstream: dg.AssetKey | None = None
) -> dg.AssetsDefinition:
    """The asset of one replica, with its consistency and Great Expectations checks.

    ``upstream``: the key of the source's table (default: the table's name).
    """
    data = declare(reads=(table,), writes=(table,))

    @dg.asset(
        name=name,
        group_name="replication",
        deps=[upstream or dg.AssetKey(table)],
        kinds={"delta", "python"},
        description=f"{table} of {source}, replicated into the ML home by the Delta-log sync.",
        metadata={"table": table, "source_location": source, **data.metadata()},
        tags=data.tags(),
        check_specs=[
            dg.AssetCheckSpec(
                consistency_check_name(name),
                asset=name,
                blocking=True,
                description=(
                    "What this run's sync copied: each file's size and MD5 against the "
                    "source's, the touched partitions' rows against the log."
                ),
            ),
            gx.check_spec(suite),
        ],
    )
    def replica_asset(
        context: dg.AssetExecutionContext, config: ReplicaConfig, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Bring the replica up to its source's latest version, then verify what was copied."""
        before = bytes_read()
        replica = _find(lake, name)
        where = require_jurisdiction(context, lake, name, [replica.source], data)
        src_opts = lake.storage_options(replica.source)
        dst_opts = lake.storage_options(replica.target)
        options = SyncOptions(table=table, reseed=config.reseed)
        try:
            report = sync(
                lake.config(),
                replica.source_uri,
                replica.target_uri,
                options,
                source_options=src_opts,
                target_options=dst_opts,
            )
        except SyncError as exc:
            raise sync_failure(name, exc) from exc
        context.log.info(f"sync {replica.source_uri} -> {replica.target_uri}: {report.as_dict()}")
        version = report.target_version_after
        copy = (
            verify_copy(
                replica.source_uri, src_opts, replica.target_uri, dst_opts, report.changes, version
            )
            if report.changes is not None
            else CopyCheck(version)
        )
        counts = bytes_read_since(before)
        metadata = {
            **_sync_metadata(replica, report),
            **_egress(report, copy, bytes_under(counts, replica.source.root_uri())),
            **bytes_read_by_location(lake, counts),
            **where,
        }
        yield dg.MaterializeResult(metadata=metadata)
        yield dg.AssetCheckResult(
            asset_key=name,
            check_name=consistency_check_name(name),
            passed=copy.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=copy.metadata(),
        )
        yield gx.check(suite, copy.rows, {"expected_rows": copy.source_rows})

    return replica_asset


def build_replicas(
    cfg: LakeConfig, suites: Suites, keys: Keys = UNPREFIXED
) -> list[dg.AssetsDefinition]:
    """One asset per replica the environment's ``replication:`` rules configure.

    Each depends on its table's key in its source's jurisdiction (``keys``).
    """
    return [
        build_replica_asset(
            r.name, r.table, r.source.name, suites[r.name], keys.of(r.table, r.source.jurisdiction)
        )
        for r in cfg.replicas()
    ]


def build_full_check(name: str, table: str) -> dg.AssetChecksDefinition:
    """The weekly full comparison of one replica with its source (its own scheduled job)."""

    @dg.asset_check(
        asset=name,
        name=full_check_name(name),
        blocking=False,
        description=(
            "Weekly: every partition of source and replica at the replica's version, row "
            "count and content hash, streamed file by file."
        ),
    )
    def full_check(
        context: dg.AssetCheckExecutionContext, lake: LakeResource
    ) -> dg.AssetCheckResult:
        """Compare the whole replica with its source at the replica's version."""
        before = bytes_read()
        replica = _find(lake, name)
        src_opts = lake.storage_options(replica.source)
        dst_opts = lake.storage_options(replica.target)
        version = table_version(replica.target_uri, dst_opts)
        result = compare_tables(replica.source_uri, src_opts, replica.target_uri, dst_opts, version)
        price = lake.config().egress_price(replica.source, replica.target)
        context.log.info(f"full check of {name} at version {version}: {result.metadata()}")
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **result.metadata(),
                "table": table,
                "egress_bytes": result.source_bytes_read,
                "egress_usd": dg.MetadataValue.float(
                    result.source_bytes_read / BYTES_PER_GB * price
                ),
                **bytes_read_by_location(lake, bytes_read_since(before)),
            },
        )

    return full_check


def build_full_checks(cfg: LakeConfig) -> list[dg.AssetChecksDefinition]:
    """One weekly full check per configured replica."""
    return [build_full_check(r.name, r.table) for r in cfg.replicas()]
