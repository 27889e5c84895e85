"""Helpers that start and stop servers on 127.0.0.1 for the integration tests.

One implementation: the emulators, ports and process handling live in devtools/emulators.py,
which ``make run-emulated`` uses too.
"""

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.emulators import (
    AZURITE_CONN,
    free_port,
    stop,
    wait_for_port,
)
from pipelines.lake.config import PROJECT_ROOT as ROOT

__all__ = ["AZURITE_CONN", "ROOT", "free_port", "mlflow_server", "stop", "wait_for_port"]


@contextmanager
def mlflow_server(workdir: Path, *store_args: str) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite backend in ``workdir``: its URL.

    ``store_args`` say where artifacts go (``--default-artifact-root DIR`` for clients writing
    directly, ``--artifacts-destination DIR`` for a proxying server).
    """
    port = free_port()
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}", *store_args,
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
        yield url
    finally:
        stop(proc)
        log.close()
