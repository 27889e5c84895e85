"""The replication job: bring every replica up to its source's latest version, and check it.

Replicas are synced by Declarative Automation when their source's gold updates (see
assets/automation.py); this job is for operators (launchpad, CLI) and the demo.
"""

import dagster as dg

sync_job = dg.define_asset_job(
    "sync_job",
    selection=dg.AssetSelection.groups("replication"),
    description="Bring replicas up to their sources' latest versions and check them.",
)
