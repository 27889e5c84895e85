"""The Spark resource: a Delta-enabled session built on first use, never at import."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from pipelines import spark as spark_engine

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@functools.cache
def _session(master: str, conf: tuple[tuple[str, str], ...]) -> SparkSession:
    return spark_engine.build_session(master=master, conf=dict(conf))


class SparkResource(dg.ConfigurableResource):
    """Spark with Delta: ``local[2]`` by default, a master URL, or Spark Connect ``sc://``."""

    master: str = Field(default="local[2]", description="local[N], spark://…, or sc://…")
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings.")

    def session(self) -> SparkSession:
        """The session, started the first time it is asked for and then reused."""
        return _session(self.master, tuple(sorted(self.conf.items())))

    def read_delta(self, uri: str, version: int | None = None) -> DataFrame:
        """A Delta table as a Spark DataFrame (at a version if given)."""
        reader = self.session().read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(uri)
