"""The only module that touches Dagster internals: storing an asset backfill from the CLI.

Dagster 1.13 has no public API (nor CLI) to create an asset backfill outside the web UI's
GraphQL; the backfill client needs these five names. Keeping them here means a Dagster
upgrade breaks one import, which ``tests/test_dagster_private.py`` exercises loudly.
"""

from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.execution.backfill import (
    BULK_ACTION_TERMINAL_STATUSES,
    BulkActionStatus,
    PartitionBackfill,
)
from dagster._core.utils import make_new_backfill_id

__all__ = [
    "BULK_ACTION_TERMINAL_STATUSES",
    "AssetGraphSubset",
    "BaseAssetGraph",
    "BulkActionStatus",
    "PartitionBackfill",
    "make_new_backfill_id",
]
