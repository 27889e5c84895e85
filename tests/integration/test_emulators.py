"""The emulators ``make run-emulated`` starts are stopped on failure and on SIGTERM/Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

import pytest

from devtools import emulators
from tests.integration.servers import ROOT

pytestmark = pytest.mark.gcs

# What run-emulated does around its servers: SIGTERM unwinds like Ctrl-C, then `with` stops.
CHILD = """
import sys, time
from devtools import emulators
from devtools.run_emulated import _terminate_as_interrupt
try:
    with _terminate_as_interrupt(), emulators.fake_gcs(["bucket-a"]) as endpoint:
        print(endpoint, flush=True)
        time.sleep(600)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _server_pids(port: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True
    )
    return [
        int(line.split()[0])
        for line in out.stdout.splitlines()
        if "fake-gcs-server" in line and f"-port {port}" in line
    ]


def test_a_failure_inside_stops_the_server():
    with pytest.raises(RuntimeError, match="boom"), emulators.fake_gcs(["bucket-b"]) as endpoint:
        port = int(endpoint.rsplit(":", 1)[1])
        (pid,) = _server_pids(port)
        raise RuntimeError("boom")
    assert not emulators.port_in_use(port)
    assert not _alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_stops_every_server_started(sig):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        endpoint = child.stdout.readline().strip()
        port = int(endpoint.rsplit(":", 1)[1])
        (pid,) = _server_pids(port)
        child.send_signal(sig)
        assert child.wait(30) == 130
        assert child.stdout.read().strip() == "interrupted"
        deadline = time.time() + 10
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.2)
        assert not _alive(pid)
        assert not emulators.port_in_use(port)
    finally:
        if child.poll() is None:
            child.kill()
