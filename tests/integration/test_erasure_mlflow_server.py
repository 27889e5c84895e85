"""The artifact scan of an erasure against a real ``mlflow server`` proxying its artifact store.

The experiment's artifacts live behind the server (``mlflow-artifacts:/``): listed, read and
deleted over HTTP, as a remote tracking server's clients see them.
"""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.erasure.models import scan_artifacts
from pipelines.ml import tracking
from tests.integration.servers import mlflow_server

pytestmark = pytest.mark.mlflow
NEEDLES = {"req-1": [b"subject-000042", b"subject42@eu.example.com"]}


@pytest.fixture
def proxied_server(tmp_path):
    served = tmp_path / "served"
    with mlflow_server(tmp_path, "--artifacts-destination", str(served)) as url:
        yield url, served


def test_an_artifact_holding_a_subject_is_removed_through_the_server(proxied_server, tmp_path):
    url, served = proxied_server
    t = tracking.Tracking(tracking_uri=url, experiment="erasure_scan")
    with t.session() as client:
        run = client.create_run(t.experiment_id())
        rows = pa.table({"customer_id": ["subject-000042", "other-1"], "qty": [1, 2]})
        pq.write_table(rows, tmp_path / "raw.parquet")  # compressed: found decoded, not raw
        pq.write_table(rows.drop(["customer_id"]), tmp_path / "clean.parquet")
        client.log_artifact(run.info.run_id, str(tmp_path / "raw.parquet"), "samples")
        client.log_artifact(run.info.run_id, str(tmp_path / "clean.parquet"), "samples")
        client.set_terminated(run.info.run_id)
    first = scan_artifacts(t, NEEDLES, remove=True)
    assert first.root.startswith("mlflow-artifacts:")
    assert first.files_scanned == 2 and first.bytes_scanned > 0
    assert [p.endswith("samples/raw.parquet") for p in first.removed] == [True]
    assert first.found == {"req-1": first.removed}
    on_disk = sorted(p.name for p in served.rglob("*.parquet"))
    assert on_disk == ["clean.parquet"]  # gone from the server's store, the other kept
    again = scan_artifacts(t, NEEDLES, remove=False)
    assert again.files_scanned == 1 and again.found == {}
