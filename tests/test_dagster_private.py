"""The Dagster internals the backfill client uses still exist with the shape it relies on.

A Dagster upgrade that moves or changes them fails here, naming the internal, rather than in a
user's `lakehouse backfill`.
"""

import inspect

import dagster as dg

from lakehouse import dagster_private as private


def test_backfill_internals_have_the_expected_shape():
    params = inspect.signature(private.PartitionBackfill.from_asset_graph_subset).parameters
    assert {
        "backfill_id",
        "backfill_timestamp",
        "tags",
        "dynamic_partitions_store",
        "asset_graph_subset",
        "title",
        "description",
        "run_config",
    } <= set(params), "PartitionBackfill.from_asset_graph_subset changed its parameters"
    subset_params = inspect.signature(private.AssetGraphSubset).parameters
    assert {"partitions_subsets_by_asset_key", "non_partitioned_asset_keys"} <= set(subset_params)
    backfill_id = private.make_new_backfill_id()
    assert isinstance(backfill_id, str) and len(backfill_id) >= 8
    assert private.BulkActionStatus.COMPLETED_SUCCESS in private.BULK_ACTION_TERMINAL_STATUSES
    assert private.BulkActionStatus.REQUESTED not in private.BULK_ACTION_TERMINAL_STATUSES


def test_an_asset_graph_subset_round_trips_through_a_stored_backfill():
    daily = dg.DailyPartitionsDefinition(start_date="2026-10-01")

    @dg.asset(partitions_def=daily)
    def a() -> None: ...

    graph = dg.Definitions(assets=[a]).resolve_asset_graph()
    assert isinstance(graph, private.BaseAssetGraph)
    subset = private.AssetGraphSubset(
        partitions_subsets_by_asset_key={
            a.key: daily.empty_subset().with_partition_keys(["2026-10-01", "2026-10-02"])
        },
        non_partitioned_asset_keys=set(),
    )
    instance = dg.DagsterInstance.ephemeral()
    backfill = private.PartitionBackfill.from_asset_graph_subset(
        backfill_id=private.make_new_backfill_id(),
        backfill_timestamp=0.0,
        tags={},
        dynamic_partitions_store=instance,
        asset_graph_subset=subset,
        title="t",
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    stored = instance.get_backfill(backfill.backfill_id)
    data = stored.get_asset_backfill_data(graph)
    assert len(data.target_subset.get_partitions_subset(a.key)) == 2
