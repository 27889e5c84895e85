"""A private lake and Dagster instance, the Dagster processes on it, and the webserver's GraphQL."""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.integration.servers import ROOT, free_port, wait_for_port

BIN = Path(sys.executable).parent


def make_env(tmp: Path, start: dt.date) -> dict[str, str]:
    """Environment for subprocesses: local lake under tmp, Dagster instance in tmp/dagster."""
    home = tmp / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "deploy" / "dagster-local.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(tmp),
        "LAKEHOUSE_ENV": "local",
        "LAKEHOUSE_START_DATE": start.isoformat(),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SLACK_BOT_TOKEN", None)
    return env


def lakehouse(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the ``lakehouse`` CLI in the project folder."""
    return subprocess.run(
        [str(BIN / "python"), "-m", "lakehouse.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def dagster_process(env: dict[str, str], kind: str, log: Path) -> Iterator[int | None]:
    """``dg dev`` (webserver and daemon, as make ui; yields its port) or ``dagster-daemon run``."""
    port = free_port() if kind == "dev" else None
    if kind == "dev":
        cmd = [str(BIN / "dg"), "dev", "--host", "127.0.0.1"]
        cmd += ["--port", str(port)]
    else:
        cmd = [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            if port is not None:
                wait_for_port(port, proc, timeout=300)
            else:
                wait_for_daemon(env["DAGSTER_HOME"], proc, log)
            yield port
        finally:
            # SIGINT is how dg dev and dagster-daemon shut down cleanly (they stop their
            # webserver, daemon and code servers); anything left in the group is then killed.
            proc.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for_daemon(home: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    """Until the daemon's first heartbeat is in the instance (it exiting first fails at once)."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(home) as instance:
        while not instance.get_daemon_heartbeats():
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no daemon heartbeat in {timeout:.0f}s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.2)


def graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """One GraphQL request to the webserver, as the UI sends it; the whole response."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())
