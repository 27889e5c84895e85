"""Known-harmless library output is filtered where it is emitted; real warnings stay visible."""

import io
import warnings

import dagster as dg

from lakehouse.quiet import quiet_libraries
from pipelines.spark import session as spark


def test_the_dagster_apis_used_on_purpose_are_quiet_other_warnings_are_not():
    quiet_libraries()
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn(
            "Parameter `backfill_policy` of function `asset` is currently in beta",
            dg.BetaWarning,
            stacklevel=1,
        )
        warnings.warn("Class `SomethingElse` is currently in beta", dg.BetaWarning, stacklevel=1)
        warnings.warn(
            "The specified dataset source can be interpreted in multiple ways",
            UserWarning,
            stacklevel=1,
        )
        warnings.warn("a real problem the user can act on", UserWarning, stacklevel=1)
    shown = [str(w.message) for w in caught]
    assert shown == [
        "Class `SomethingElse` is currently in beta",
        "a real problem the user can act on",
    ]


def test_the_jvm_line_nobody_can_act_on_is_dropped_real_warnings_are_forwarded(capsys):
    jvm = io.BytesIO(
        b"WARNING: Using incubator modules: jdk.incubator.vector\n"
        b"26/12/02 16:59:29 WARN Executor: Issue communicating with driver in heartbeater\n"
        b"26/12/02 16:59:30 ERROR Inbox: Ignoring error\n"
    )
    spark._forward(jvm)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "26/12/02 16:59:29 WARN Executor: Issue communicating with driver in heartbeater",
        "26/12/02 16:59:30 ERROR Inbox: Ignoring error",
    ]


def test_spark_logs_warnings_without_the_banner_nor_the_native_library_note():
    text = spark.log4j2_file().read_text()
    assert "rootLogger.level = warn" in text
    assert "logger.native.name = org.apache.hadoop.util.NativeCodeLoader" in text
    assert "logger.native.level = error" in text
