"""The same transforms over Spark Connect (``sc://``) as on local Spark, with the same answers.

A Spark Connect server is started from the pyspark installation (``spark-submit --class
org.apache.spark.sql.connect.service.SparkConnectServer``) on 127.0.0.1 with the Delta jars.
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.lake import delta
from pipelines.spark import transforms as T
from pipelines.spark.session import DELTA_CONF, delta_jars
from tests.integration.servers import ROOT, free_port, wait_for_port
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


CLIENT = r"""
import json, sys
from pipelines.spark.session import build_session
from tests.integration import test_spark_connect as t
session = build_session(sys.argv[1])
out = {"module": type(session).__module__, "features": t._features(session),
       "hashes": t._hashes(session)}
t._write_features(session, sys.argv[3])
with open(sys.argv[2], "w") as fh:
    json.dump(out, fh, default=str)
session.stop()
"""


def _gold():
    rows = [gold_row(n, (n * 3) % 7 + 1, price=1.0 + n % 3, sku=s, region=r)
            for n in range(0, 45, 2) for s in ("S1", "S2") for r in ("us", "eu")]  # fmt: skip
    rows += [gold_row(n, 4, sku="S9", region="us") for n in (30, 31, 40, 44)]
    return rows


def _feature_frame(session):
    gold = session.createDataFrame(_gold(), GOLD_DDL)
    hol = T.holiday_frame(session, {"us": "US", "eu": "DE"}, day(28), day(44))
    return T.demand_features(gold, hol, day(28), day(44))


def _features(session):
    return sorted([str(v) for v in r] for r in _feature_frame(session).collect())


def _hashes(session):
    df = session.createDataFrame([("alice",), ("bob",), (None,)], "v string")
    out = T.pseudonymize(df, T.pii_key_frame(session, KEY), {"v": "h"})
    return [r.h for r in out.collect()]


def _write_features(session, uri):
    from pipelines.spark.session import write_replace

    pred = "date >= '2026-10-29' AND date <= '2026-11-14'"
    write_replace(_feature_frame(session), uri, pred, ["date"])


@pytest.fixture(scope="module")
def remote_run(connect_url, tmp_path_factory):
    """The transforms run by a client process whose only session is the sc:// one.

    PySpark picks classic or Connect column objects per process, so a process that holds a
    local session cannot also build Connect plans; a code location pointed at sc:// has none.
    """
    work = tmp_path_factory.mktemp("client")
    out, uri = work / "out.json", work / "features"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, connect_url, str(out), str(uri)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), uri


def test_features_over_spark_connect_equal_local(spark, remote_run):
    got, _ = remote_run
    assert got["module"].startswith("pyspark.sql.connect")
    local = _features(spark)
    assert len(local) > 20
    assert got["features"] == local


def test_pseudonymization_and_delta_writes_over_spark_connect(spark, remote_run):
    got, uri = remote_run
    assert got["hashes"] == _hashes(spark)
    table = delta.read_partition(str(uri), {})
    assert table.num_rows == len(_features(spark))
    assert min(table.column("date").to_pylist()) == dt.date(2026, 10, 29)
