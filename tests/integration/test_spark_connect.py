"""The same transforms over Spark Connect (``sc://``) as on local Spark, with the same answers.

A Spark Connect server is started from the pyspark installation (``spark-submit --class
org.apache.spark.sql.connect.service.SparkConnectServer``) on 127.0.0.1 with the Delta jars.
"""

import datetime as dt
import os
import signal
import subprocess
from pathlib import Path

import pytest

from pipelines import delta
from pipelines import transforms as T
from pipelines.spark import DELTA_CONF, delta_jars
from tests.integration.conftest import ROOT, free_port, wait_for_port
from tests.integration.test_transforms import GOLD_DDL, KEY, day, gold_row

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    port = free_port()
    conf = {
        **DELTA_CONF,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": "1g",
        "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
        "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
    }
    cmd = [
        str(spark_home / "bin" / "spark-submit"),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name",
        "lakehouse-connect-test",
        "--master",
        "local[2]",
        "--jars",
        ",".join(str(j) for j in delta_jars()),
        *[arg for k, v in conf.items() for arg in ("--conf", f"{k}={v}")],
        "spark-internal",
    ]
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1"}
    log = tmp_path_factory.mktemp("connect") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    try:
        try:
            wait_for_port(port, proc, timeout=180)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; server log:\n{log.read_text()[-3000:]}") from None
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def remote(connect_url):
    from pipelines.spark import build_session

    session = build_session(connect_url)
    yield session
    session.stop()


def _gold():
    rows = [gold_row(n, (n * 3) % 7 + 1, price=1.0 + n % 3, sku=s, region=r)
            for n in range(0, 45, 2) for s in ("S1", "S2") for r in ("us", "eu")]  # fmt: skip
    rows += [gold_row(n, 4, sku="S9", region="us") for n in (30, 31, 40, 44)]
    return rows


def _features(session):
    gold = session.createDataFrame(_gold(), GOLD_DDL)
    hol = T.holiday_frame(session, {"us": "US", "eu": "DE"}, day(28), day(44))
    df = T.demand_features(gold, hol, day(28), day(44))
    return sorted(tuple(r) for r in df.collect())


def test_features_over_spark_connect_equal_local(spark, remote):
    assert type(remote).__module__.startswith("pyspark.sql.connect")
    local, over_connect = _features(spark), _features(remote)
    assert len(local) > 20
    assert over_connect == local


def test_pseudonymization_and_delta_writes_over_spark_connect(spark, remote, tmp_path):
    values = [("alice",), ("bob",), (None,)]

    def hashes(session):
        df = session.createDataFrame(values, "v string")
        out = T.pseudonymize(df, T.pii_key_frame(session, KEY), {"v": "h"})
        return [r.h for r in out.collect()]

    assert hashes(remote) == hashes(spark)
    uri = str(tmp_path / "features")
    gold = remote.createDataFrame(_gold(), GOLD_DDL)
    hol = T.holiday_frame(remote, {"us": "US", "eu": "DE"}, day(28), day(44))
    feats = T.demand_features(gold, hol, day(28), day(44))
    from pipelines.spark import write_replace

    write_replace(feats, uri, "date >= '2026-10-29' AND date <= '2026-11-14'", ["date"])
    table = delta.read_partition(uri, {})
    assert table.num_rows == len(_features(spark))
    assert min(table.column("date").to_pylist()) == dt.date(2026, 10, 29)
