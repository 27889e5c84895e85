"""Weekly table upkeep: one run per table and location (a partition of ``maintenance_job``).

The engine is :mod:`pipelines.operations.maintenance`; each run records its report (the retention
floor and the replica or model that set it, what compaction, VACUUM and log cleanup did) as an
observation of the table's asset, so the floor shows in the asset's page. ``lakehouse maintain
--table T --location L`` runs the same upkeep from the command line.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from pipelines.lake.config import LakeConfig
from pipelines.operations import maintenance
from pipelines.sovereignty import compute
from resources.lake import LakeResource
from resources.mlflow import MLflowResource

SEP = "@"


def partition_key(target: maintenance.Target) -> str:
    """``<table or replica>@<location>``: one partition per table where it lives."""
    return f"{target.name}{SEP}{target.location.name}"


def report_metadata(report: maintenance.MaintenanceReport) -> dict[str, Any]:
    """What the asset's page shows of one upkeep run."""
    setter = report.floor_set_by
    return {
        "location": report.location,
        "role": report.role,
        "retention_floor_version": report.retention_floor_version,
        "floor_set_by": f"{setter['kind']} {setter['name']}".strip(),
        "floor_set_by_detail": dg.MetadataValue.json(setter),
        "pinned_versions": dg.MetadataValue.json(report.pinned_versions),
        "version_after": report.version_after,
        "files_deleted": report.vacuum["files_deleted"],
        "bytes_reclaimed": report.vacuum["bytes_reclaimed"],
        "kept_for_floor": report.vacuum["kept_for_floor"],
        "compaction": dg.MetadataValue.json(report.compaction),
        "log_entries_deleted": report.log_cleanup.get("entries_deleted", 0),
        "dry_run": report.dry_run,
    }


class MaintainConfig(dg.Config):
    """Options of one upkeep run (``sweep``: the orphan sweep lists every object, monthly)."""

    dry_run: bool = False
    sweep: bool = False


@dg.op(description="Compact, VACUUM under the retention floor, checkpoint, clean the log.")
def maintain_table(
    context: dg.OpExecutionContext,
    config: MaintainConfig,
    lake: LakeResource,
    mlflow: MLflowResource,
) -> dg.Output[dict[str, Any]]:
    """Upkeep of the partition's table at its location; the report is the output."""
    name, location = context.partition_key.rsplit(SEP, 1)
    cfg = lake.config()
    target = maintenance.find_target(cfg, name, location)
    # Compaction rewrites rows: a personal-data table is processed only where it may be.
    compute.check_compute(cfg, "maintenance_job", target.location, tables_written=(target.table,))
    report = maintenance.maintain(
        cfg,
        name,
        location,
        model_pins_of=maintenance.registry_pins(mlflow.tracking(), cfg.maintenance),
        options_for=lake.storage_options,
        dry_run=config.dry_run,
        sweep=config.sweep,
    )
    context.log_event(dg.AssetObservation(asset_key=name, metadata=report_metadata(report)))
    return dg.Output(report.as_dict(), metadata=report_metadata(report))


def build_maintenance(
    cfg: LakeConfig,
) -> tuple[dg.JobDefinition, dg.ScheduleDefinition, dg.ScheduleDefinition]:
    """The upkeep job (a partition per table and location) and its two schedules.

    The weekly one plans VACUUM from the log; the orphan sweep's runs the same job with
    ``sweep`` (every object of the table listed).
    """
    targets = maintenance.targets(cfg)
    parts = dg.StaticPartitionsDefinition([partition_key(t) for t in targets])

    @dg.job(
        name="maintenance_job",
        partitions_def=parts,
        description="Table upkeep of one table at one location (docs/maintenance.md).",
    )
    def maintenance_job() -> None:
        maintain_table()

    def schedule(name: str, cron: str, sweep: bool, what: str) -> dg.ScheduleDefinition:
        @dg.schedule(
            name=name,
            cron_schedule=cron,
            job=maintenance_job,
            execution_timezone="UTC",
            description=what,
        )
        def upkeep(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
            """One run per table and replica, each on its jurisdiction's pool."""
            day = context.scheduled_execution_time.strftime("%Y-%m-%d")
            config = {"ops": {"maintain_table": {"config": {"sweep": True}}}} if sweep else None
            for t in targets:
                key = partition_key(t)
                yield dg.RunRequest(
                    run_key=f"{key}:{day}" + (":sweep" if sweep else ""),
                    partition_key=key,
                    run_config=config,
                    tags={cfg.compute.routing_tag: t.location.jurisdiction},
                )

        return upkeep

    weekly = schedule(
        "weekly_maintenance_schedule",
        cfg.maintenance.schedule,
        False,
        "Weekly upkeep of every table and replica (VACUUM planned from the log).",
    )
    sweep = schedule(
        "monthly_orphan_sweep_schedule",
        cfg.maintenance.sweep_schedule,
        True,
        "The orphan sweep: upkeep listing every object of each table (docs/maintenance.md).",
    )
    return maintenance_job, weekly, sweep
