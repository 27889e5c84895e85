"""The production instance (deploy/dagster-prod.yaml) on a real PostgreSQL server.

PostgreSQL comes from the ``pgserver`` wheel (its own binaries; nothing system-wide), started
here on 127.0.0.1 and stopped here. Compute logs go to S3 on the moto server, as in prod.
"""

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.servers import ROOT, free_port, wait_for_port

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

DAY = dt.date(2026, 10, 5)
LOG_BUCKET = "lakehouse-dagster-logs"


@pytest.fixture
def postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL 16 server from the pgserver wheel, listening on 127.0.0.1 only."""
    pgserver = pytest.importorskip(
        "pgserver", reason="pgserver is a dev dependency: `make setup` installs it"
    )
    from pgserver._commands import pg_ctl

    # not under pytest's tmp_path: that is private to root, and PostgreSQL refuses to run as root
    base = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    base.chmod(0o755)
    pgdata = base / "pgdata"
    pgdata.mkdir()
    # pgserver runs initdb (as an unprivileged user when we are root) and starts the server on a
    # Unix socket only; restart it listening on 127.0.0.1, as a PostgreSQL server in prod would.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    user = server.system_user
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    port = free_port()
    log = pgdata / "server.log"
    pg_ctl(
        ["-w", "-o", f"-h 127.0.0.1 -p {port} -k ''", "-l", str(log), "start"],
        pgdata=pgdata,
        user=user,
        timeout=60,
    )
    try:
        wait_for_port(port, timeout=30)
        yield {
            "DAGSTER_PG_USERNAME": "postgres",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": "postgres",
        }
    finally:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_prod_instance_on_postgres_materializes_a_bronze_partition(tmp_path, postgres, s3_endpoint):
    import boto3
    import psycopg2

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=LOG_BUCKET)

    home = tmp_path / "dagster"
    home.mkdir()
    config = yaml.safe_load((ROOT / "deploy" / "dagster-prod.yaml").read_text())
    assert "postgres" in config["storage"]
    # moto stands in for S3: the one change from prod is the endpoint
    config["compute_logs"]["config"]["endpoint_url"] = s3_endpoint
    config["compute_logs"]["config"]["upload_interval"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))

    env = {
        **os.environ,
        **postgres,
        "DAGSTER_HOME": str(home),
        "DAGSTER_COMPUTE_LOG_BUCKET": LOG_BUCKET,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "LAKEHOUSE_HOME": str(tmp_path),
        "LAKEHOUSE_ENV": "local",
        "PYTHONPATH": str(ROOT),
    }
    bin_dir = Path(sys.executable).parent
    landed = subprocess.run(
        [str(bin_dir / "python"), "-m", "lakehouse.cli", "simulate", "--from", DAY.isoformat(),
         "--to", DAY.isoformat(), "--events-per-day", "200", "--location", "aws-us"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert landed.returncode == 0, landed.stderr
    partition = f"{DAY.isoformat()}|us"
    run = subprocess.run(
        [str(bin_dir / "dg"), "launch", "--assets", "bronze_events,bronze_quarantine",
         "--partition", partition],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    # the instance's run, its materialization and its check results live in PostgreSQL
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=int(postgres["DAGSTER_PG_PORT"]),
        user="postgres",
        dbname="postgres",
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select count(*) from event_logs where asset_key = %s and partition = %s"
                " and dagster_event_type = 'ASSET_MATERIALIZATION'",
                ('["bronze_events"]', partition),
            )
            assert cur.fetchone()[0] == 1
            cur.execute("select status from runs")
            assert [r[0] for r in cur.fetchall()] == ["SUCCESS"]
            cur.execute(
                "select count(*) from asset_check_executions where asset_key = %s"
                " and execution_status = 'SUCCEEDED'",
                ('["bronze_events"]',),
            )
            assert cur.fetchone()[0] == 2  # GX expectations and the reconciliation
    finally:
        conn.close()

    # and the step's compute logs were uploaded to the bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LOG_BUCKET).get("Contents", [])]
    assert any(k.startswith("dagster/compute-logs/") for k in keys), keys
