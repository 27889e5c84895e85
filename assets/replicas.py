"""Replicas: each configured table copied from its region's location into the ML home."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.sovereignty import declare, require_jurisdiction
from data_quality import gx
from data_quality.suites import Suite, Suites
from pipelines.lake import delta
from pipelines.lake.config import LakeConfig, Replica
from pipelines.replication.plan import SyncReport
from pipelines.replication.sync import sync, table_fingerprint
from resources.lake import LakeResource


def consistency_check_name(name: str) -> str:
    """Name of a replica's source-vs-replica check."""
    return f"{name}_consistency"


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
        "egress_usd": dg.MetadataValue.float(report.egress_usd),
        "seconds": dg.MetadataValue.float(report.seconds),
        # the content scan before the border (docs/privacy.md): what it read, no value
        "content_files_scanned": report.content_files_scanned,
        "content_bytes_read": report.content_bytes_read,
    }


def build_replica_asset(name: str, table: str, source: str, suite: Suite) -> dg.AssetsDefinition:
    """The asset of one replica, with its consistency and Great Expectations checks."""
    data = declare(reads=(table,), writes=(table,))

    @dg.asset(
        name=name,
        group_name="replication",
        deps=[dg.AssetKey(table)],
        kinds={"delta", "python"},
        description=f"{table} of {source}, replicated into the ML home by the Delta-log sync.",
        metadata={"table": table, "source_location": source, **data.metadata()},
        tags=data.tags(),
        check_specs=[
            dg.AssetCheckSpec(
                consistency_check_name(name),
                asset=name,
                blocking=True,
                description="Source and replica at the replica's version: same rows and hash.",
            ),
            gx.check_spec(suite),
        ],
    )
    def replica_asset(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Bring the replica up to its source's latest version, then compare the two."""
        replica = _find(lake, name)
        where = require_jurisdiction(context, lake, name, [replica.source], data)
        src_opts = lake.storage_options(replica.source)
        dst_opts = lake.storage_options(replica.target)
        report = sync(
            lake.config(),
            replica.source_uri,
            replica.target_uri,
            table=table,
            source_options=src_opts,
            target_options=dst_opts,
        )
        context.log.info(f"sync {replica.source_uri} -> {replica.target_uri}: {report.as_dict()}")
        version = report.target_version_after
        yield dg.MaterializeResult(metadata={**_sync_metadata(replica, report), **where})
        src_rows, src_hash = table_fingerprint(replica.source_uri, src_opts, version)
        dst_rows, dst_hash = table_fingerprint(replica.target_uri, dst_opts, version)
        yield dg.AssetCheckResult(
            asset_key=name,
            check_name=consistency_check_name(name),
            passed=(src_rows, src_hash) == (dst_rows, dst_hash),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "version": version,
                "source_rows": src_rows,
                "replica_rows": dst_rows,
                "source_hash": src_hash,
                "replica_hash": dst_hash,
            },
        )
        rows = delta.read_partition(replica.target_uri, dst_opts, version=version)
        yield gx.check(suite, rows, {"expected_rows": src_rows})

    return replica_asset


def build_replicas(cfg: LakeConfig, suites: Suites) -> list[dg.AssetsDefinition]:
    """One asset per replica the environment's ``replication:`` rules configure."""
    return [
        build_replica_asset(r.name, r.table, r.source.name, suites[r.name]) for r in cfg.replicas()
    ]
