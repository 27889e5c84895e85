"""A real two-jurisdiction Dagster deployment on 127.0.0.1: runs execute where their data may go.

Two code servers serve the same code location under different names and declarations
(``lakehouse-us`` with ``LAKEHOUSE_COMPUTE_JURISDICTION=US``, ``lakehouse-eu`` with ``EU``),
with ``compute.pools: per_jurisdiction`` as in production; the daemon runs the queue and the
sensors, the webserver serves the GraphQL API runs are submitted through. Runs of a gRPC code
location execute in a child of its server (the default run launcher), so a run inherits the
server's declaration, as a run pod inherits its user-code deployment's in Kubernetes.
"""

import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from deltalake import write_deltalake

from tests.helpers import gold_rows
from tests.integration.dagster_env import BIN, lakehouse, make_env
from tests.integration.servers import ROOT, free_port, wait_for_port

pytestmark = [pytest.mark.dagster, pytest.mark.spark]

TAG = "lakehouse/jurisdiction"
# Old enough that neither Declarative Automation nor the chain sensor (two-day look-back) runs
# anything on their own: every run here is one the test asked for or the ingest sensor's.
DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=10)
START = DAY - dt.timedelta(days=1)
REPO = "__repository__"  # the name Dagster gives a module's @dg.definitions
EU_KEY = f"{DAY.isoformat()}|eu"


def _environment(tmp: Path) -> dict[str, str]:
    env = make_env(tmp, START)
    config = yaml.safe_load((ROOT / "lakehouse.yaml").read_text())
    config["environments"]["local"]["compute"] = {"pools": "per_jurisdiction"}
    (tmp / "lakehouse.yaml").write_text(yaml.safe_dump(config))
    env["LAKEHOUSE_CONFIG"] = str(tmp / "lakehouse.yaml")
    env.pop("LAKEHOUSE_COMPUTE_JURISDICTION", None)
    env.setdefault("PYSPARK_PYTHON", str(BIN / "python"))  # Spark's Python workers: this venv
    jars = ROOT / ".cache" / "jars"
    if not env.get("LAKEHOUSE_JARS") and not jars.exists():
        pytest.fail(f"{jars} is missing: run `make setup` (or set LAKEHOUSE_JARS)")
    return env


@contextmanager
def _process(cmd: list[str], env: dict[str, str], log: Path, port: int | None) -> Iterator[None]:
    """A Dagster process in its own session; SIGINT (clean stop), then the group is killed."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            if port is not None:
                wait_for_port(port, proc, timeout=180)
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _deployment(stack: ExitStack, env: dict[str, str], tmp: Path) -> DagsterGraphQLClient:
    ports = {"US": free_port(), "EU": free_port()}
    workspace = tmp / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": name}}
                    for name, port in (("lakehouse-us", ports["US"]), ("lakehouse-eu", ports["EU"]))
                ]
            }
        )
    )
    for jurisdiction, port in ports.items():
        server_env = {**env, "LAKEHOUSE_COMPUTE_JURISDICTION": jurisdiction}
        cmd = [str(BIN / "dagster"), "api", "grpc", "-m", "lakehouse.definitions"]
        cmd += ["-h", "127.0.0.1", "-p", str(port)]
        stack.enter_context(_process(cmd, server_env, tmp / f"server-{jurisdiction}.log", port))
    web = free_port()
    cmd = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web), "-w", str(workspace)]
    stack.enter_context(_process(cmd, env, tmp / "webserver.log", web))
    cmd = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
    stack.enter_context(_process(cmd, env, tmp / "daemon.log", None))
    return DagsterGraphQLClient("127.0.0.1", port_number=web)


def _wait(instance: dg.DagsterInstance, find, what: str, timeout: float = 240) -> dg.DagsterRun:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = find()
        if run is not None and run.is_finished:
            return run
        time.sleep(1)
    raise TimeoutError(f"{what} did not finish within {timeout}s")


def _run(instance: dg.DagsterInstance, run_id: str, what: str) -> dg.DagsterRun:
    return _wait(instance, lambda: instance.get_run_by_id(run_id), what)


def _location(run: dg.DagsterRun) -> str:
    return run.remote_job_origin.location_name


def _materialization(instance: dg.DagsterInstance, asset: str, run: dg.DagsterRun) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey.from_user_string(asset), storage_ids=None),
        limit=50,
    ).records
    mine = [r for r in records if r.run_id == run.run_id]
    assert mine, f"run {run.run_id} materialized no {asset}"
    return {k: v.value for k, v in mine[0].asset_materialization.metadata.items()}


def _errors(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """Every step failure's error chain of a run, as ``Class: message`` lines."""
    out = []
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.step_failure_data.error
        while error is not None:
            out.append(f"{error.cls_name}: {error.message.strip()}")
            error = error.cause
    return out


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under a folder with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_runs_execute_on_the_workers_of_their_jurisdiction(tmp_path):
    env = _environment(tmp_path)
    landed = lakehouse(
        env, "simulate", "--from", DAY.isoformat(), "--to", DAY.isoformat(),
        "--events-per-day", "300", "--location", "azure-eu",
    )  # fmt: skip
    assert landed.returncode == 0, landed.stderr
    eu_root = tmp_path / ".lake" / "azure-eu"
    # EU gold, as an earlier EU gold run would have left it: the PII-free replica reads it
    write_deltalake(
        str(eu_root / "tables" / "gold_daily_demand"), gold_rows(DAY), partition_by=["date"]
    )

    with ExitStack() as stack, dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        client = _deployment(stack, env, tmp_path)
        # a PII-free step on the US server, while the EU ingest runs: EU gold into the US home
        replica_id = client.submit_job_execution(
            "sync_job",
            repository_location_name="lakehouse-us",
            repository_name=REPO,
            asset_selection=["gold_daily_demand_replica_azure_eu"],
            tags={TAG: "any"},
        )

        # 1. the EU ingest: requested by the EU location's landed-objects sensor (the US
        #    location's sensor does not list EU objects), queued, run on the EU server. The
        #    simulator delivers a few events a day late: the next day is ingested too.
        by_sensor = dg.RunsFilter(tags={"dagster/sensor_name": "landed_objects_sensor"})
        ingest = _wait(
            instance,
            lambda: next(
                (r for r in instance.get_runs(by_sensor) if r.tags["dagster/partition"] == EU_KEY),
                None,
            ),
            "the EU ingest the sensor requests",
        )
        sensor_runs = [
            _run(instance, r.run_id, "an ingest the sensor requested")
            for r in instance.get_runs(by_sensor)
        ]
        assert ingest.status == dg.DagsterRunStatus.SUCCESS, _errors(instance, ingest)
        assert {
            (_location(r), r.tags[TAG], r.tags["dagster/partition"][-2:]) for r in sensor_runs
        } == {("lakehouse-eu", "EU", "eu")}
        # each location defines its own jurisdiction's keys (assets/keys.py)
        bronze = _materialization(instance, "eu/bronze_events", ingest)
        assert bronze["lakehouse/worker_jurisdiction"] == "EU"
        assert bronze["lakehouse/data_jurisdiction"] == "EU"

        # 2. the EU silver run, submitted to the EU location through the queue
        silver = _run(
            instance,
            client.submit_job_execution(
                "spark_job",
                repository_location_name="lakehouse-eu",
                repository_name=REPO,
                asset_selection=[dg.AssetKey(["eu", "silver_events"])],
                tags={"dagster/partition": EU_KEY, TAG: "EU"},
            ),
            "silver on lakehouse-eu",
        )
        assert silver.status == dg.DagsterRunStatus.SUCCESS, _errors(instance, silver)
        assert _location(silver) == "lakehouse-eu"
        meta = _materialization(instance, "eu/silver_events", silver)
        assert meta["lakehouse/worker_jurisdiction"] == "EU"
        assert meta["dagster/row_count"] > 0

        # 3. the PII-free step ran on the US server
        replica = _run(instance, replica_id, "the replica sync on lakehouse-us")
        assert replica.status == dg.DagsterRunStatus.SUCCESS, _errors(instance, replica)
        assert _location(replica) == "lakehouse-us"
        meta = _materialization(instance, "gold_daily_demand_replica_azure_eu", replica)
        assert meta["lakehouse/worker_jurisdiction"] == "US"
        assert meta["lakehouse/data_jurisdiction"] == "EU"

        # 4. EU personal data forced onto the US server. The EU root becomes a file: any
        #    listing, read or write of the EU store would now fail with a storage error, so a
        #    refusal that names the jurisdictions and nothing else happened before any access.
        #    The US location's keys have no EU partition: Dagster refuses such a run when it is
        #    submitted, or the run fails; either way before the EU store is touched.
        before = _snapshot(eu_root)
        shutil.move(eu_root, tmp_path / "azure-eu.kept")
        eu_root.write_text("not a folder: the EU store must not be touched from the US\n")
        forced = {}
        for job, selection in (("ingest_job", None), ("spark_job", ["us/silver_events"])):
            try:
                forced[job] = client.submit_job_execution(
                    job,
                    repository_location_name="lakehouse-us",
                    repository_name=REPO,
                    asset_selection=[dg.AssetKey.from_user_string(k) for k in selection or []]
                    or None,
                    tags={"dagster/partition": EU_KEY, TAG: "EU"},
                )
            except DagsterGraphQLClientError as exc:  # refused by Dagster: no run at all
                assert "eu" in str(exc), exc
        for job, run_id in forced.items():
            run = _run(instance, run_id, f"{job} forced onto lakehouse-us")
            assert run.status == dg.DagsterRunStatus.FAILURE
            assert _location(run) == "lakehouse-us"
            errors = _errors(instance, run)
            refusals = [e for e in errors if e.startswith("ComputeSovereigntyError: ")]
            if not refusals:  # Dagster stopped it first: the partition is not the location's
                assert any("partition" in e.lower() for e in errors), errors
                continue
            assert "refused on this worker" in refusals[0]
            assert "jurisdiction EU" in refusals[0] and "declares jurisdiction US" in refusals[0]
            storage = [e for e in errors if "Storage" in e or "NotADirectory" in e]
            assert storage == [], errors
        assert eu_root.read_text().startswith("not a folder")
        eu_root.unlink()
        shutil.move(tmp_path / "azure-eu.kept", eu_root)
    # the EU store is exactly as the EU runs left it
    assert _snapshot(eu_root) == before
    assert before  # the control: there was something to touch
