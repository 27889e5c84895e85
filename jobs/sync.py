"""The replication job and the sensor that syncs a replica when its source has new versions."""

import json

import dagster as dg

from assets.replicas import REPLICA_KEYS
from pipelines.storage import open_storage
from pipelines.sync import latest_version
from resources.lake import LakeResource

sync_job = dg.define_asset_job(
    "sync_job",
    selection=dg.AssetSelection.assets(*REPLICA_KEYS),
    description="Bring replicas up to their sources' latest versions and check them.",
)


@dg.sensor(job=sync_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def source_versions_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource
) -> dg.SensorResult:
    """Requests a replica's sync once per new source version (cursor: versions requested)."""
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    names = {k.to_user_string() for k in REPLICA_KEYS}
    requests = []
    for replica in lake.config().replicas():
        if replica.name not in names:
            continue
        source = latest_version(
            open_storage(replica.source_uri, lake.storage_options(replica.source))
        )
        if source is None:
            continue
        target = latest_version(
            open_storage(replica.target_uri, lake.storage_options(replica.target))
        )
        done = max(cursor.get(replica.name, -1), -1 if target is None else target)
        if source > done:
            requests.append(
                dg.RunRequest(
                    run_key=f"{replica.name}@{source}",
                    asset_selection=[dg.AssetKey(replica.name)],
                    tags={"replica": replica.name, "source_version": str(source)},
                )
            )
            cursor[replica.name] = source
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
