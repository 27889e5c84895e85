"""The artifact scan of an erasure against a real ``mlflow server`` proxying its artifact store.

The experiment's artifacts live behind the server (``mlflow-artifacts:/``): listed, read and
deleted over HTTP, as a remote tracking server's clients see them.
"""

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.erasure.models import scan_artifacts
from pipelines.ml import tracking
from tests.integration.servers import free_port, stop, wait_for_port

pytestmark = pytest.mark.mlflow
NEEDLES = {"req-1": [b"subject-000042", b"subject42@eu.example.com"]}


@pytest.fixture
def proxied_server(tmp_path):
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination", str(tmp_path / "served"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )  # fmt: skip
    try:
        wait_for_port(port, proc, timeout=120)
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{url}/health", timeout=30) as resp:
            assert resp.status == 200
        yield url, tmp_path / "served"
    finally:
        stop(proc)
        log.close()


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
