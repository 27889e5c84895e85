"""Landing and ingestion against real object-store emulators on 127.0.0.1."""

import pyarrow.compute as pc
import pytest

from pipelines.ingest import partition as ingest
from pipelines.ingest.events import bronze_partition
from pipelines.lake import delta, tables
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from pipelines.simulation.simulate import SimulationConfig
from tests.helpers import DAY, land, landed_records

CASES = [
    pytest.param("aws-us", marks=pytest.mark.s3),
    pytest.param("azure-eu", marks=pytest.mark.azure),
    pytest.param("gcp-apac", marks=pytest.mark.gcs),
]


@pytest.mark.parametrize("location", CASES)
def test_ingest_on_emulated_cloud(emulated_env, location):
    sim = SimulationConfig(
        start=DAY,
        end=DAY,
        events_per_day=400,
        late_share=0.0,
        bad_rate=0.03,
        corrupt_objects_per_day=1,
        seed=11,
    )
    (report,) = land(location, sim, env="emulated")
    loc = load_config("emulated").location(location)
    assert loc.root_uri().split("://")[0] in ("s3", "az", "gs")
    opts = loc.storage_options()
    first = ingest.ingest_partition(loc, opts, DAY)
    again = ingest.ingest_partition(loc, opts, DAY)
    res = first.result
    assert res.reconciled, res.report()
    # read back as a user of the format would: a corrupt object counts once, whole
    storage = open_storage(loc.root_uri(), opts)
    good = [
        o.path for o in storage.list(loc.landing.prefix) if o.path not in report.corrupt_objects
    ]
    assert len(good) == report.objects - 1 and len(report.corrupt_objects) == 1
    records = sum(len(landed_records(loc.landing.format, storage.get(p))) for p in good)
    assert res.landed == records + 1 < report.records
    assert res.corrupt_objects == 1
    rows = delta.read_partition(first.bronze_uri, opts)
    assert rows.num_rows == res.ingested == again.totals["ingested"]
    assert again.batches == [] and again.bronze_version == first.bronze_version
    assert first.reconciled and again.reconciled, first.report()
    assert pc.count_distinct(rows["event_id"]).as_py() == rows.num_rows
    assert delta.read_partition(first.quarantine_uri, opts).num_rows == res.quarantined
    # The same partitioned layout as production on every store, the GCS emulator's included:
    # partition columns in the log, each data file under its Hive partition folder.
    for uri in (first.bronze_uri, first.quarantine_uri):
        table = delta.open_table(uri, opts)
        assert table.metadata().partition_columns == list(tables.BRONZE.partition_by)
        files = delta.file_actions(uri, opts)
        assert files.num_rows and all(
            p.startswith(f"landing_date={DAY.isoformat()}/region={loc.region}/")
            for p in files["path"].to_pylist()
        ), files["path"].to_pylist()
    assert delta.partition_files(first.bronze_uri, opts, bronze_partition(DAY, loc.region)) >= 1
    assert any(
        o.path.startswith("tables/bronze_events/_delta_log/")
        for o in storage.list("tables/bronze_events/_delta_log/")
    )
