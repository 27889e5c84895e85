"""The Spark resource: a Delta-enabled session built on first use, never at import."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from pipelines import spark as spark_engine

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkResource(dg.ConfigurableResource):
    """Spark with Delta: ``local[2]`` by default, a master URL, or Spark Connect ``sc://``."""

    master: str = Field(default="local[2]", description="local[N], spark://…, or sc://…")
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings.")
    _session: Any = PrivateAttr(default=None)

    def session(self) -> SparkSession:
        """The session, started the first time this resource is asked for it.

        Spark keeps one session per process (``getOrCreate``): a second run in the same
        process reuses the JVM instead of paying its start-up again.
        """
        if self._session is None:
            self._session = spark_engine.build_session(master=self.master, conf=dict(self.conf))
        return self._session  # type: ignore[no-any-return]

    def read_delta(self, uri: str, version: int | None = None) -> DataFrame:
        """A Delta table as a Spark DataFrame (at a version if given)."""
        reader = self.session().read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(uri)
