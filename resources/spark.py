"""Where the Spark steps run: a session the code location owns, or Databricks jobs.

Both run :func:`pipelines.spark_jobs.run`, the same transforms and writes; the Databricks
backend is in resources/databricks.py.
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from pipelines import spark as spark_engine
from pipelines import spark_jobs
from pipelines.config import LakeConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The pseudonymization key, asked for only where silver runs in this process.
PiiKey = Callable[[], str]


class SparkStepRunner(dg.ConfigurableResource):
    """Runs a Spark step of :mod:`pipelines.spark_jobs` and reads back the rows it wrote.

    The assets take this resource under the key ``spark``; ``lakehouse.yaml``'s
    ``spark.backend`` picks the implementation (:func:`resources.resources_for`).
    """

    @abstractmethod
    def run_step(
        self,
        context: dg.AssetExecutionContext,
        cfg: LakeConfig,
        step: str,
        start: dt.date,
        end: dt.date,
        location: str | None,
        options_of: dict[str, dict[str, str]],
        pii_key: PiiKey | None = None,
    ) -> dict[str, str]:
        """Replace the dates ``[start, end]`` of a step's table (a location's, or the ML home's).

        ``pii_key`` is a callable so that a backend whose cluster holds the key never makes
        Dagster resolve it. Returns the step's report: ``table_uri``, ``location`` and, for a
        remote run, where to see it.
        """

    @abstractmethod
    def read_range(
        self, uri: str, options: dict[str, str], start: dt.date, end: dt.date, region: str | None
    ) -> Any:
        """The rows of ``[start, end]`` (of a region) a step just wrote, for validation."""


class SparkResource(SparkStepRunner):
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

    def run_step(
        self,
        context: dg.AssetExecutionContext,
        cfg: LakeConfig,
        step: str,
        start: dt.date,
        end: dt.date,
        location: str | None,
        options_of: dict[str, dict[str, str]],
        pii_key: PiiKey | None = None,
    ) -> dict[str, str]:
        """Run the step in this process's session (what a cluster job's ``main`` runs)."""
        key = pii_key() if step == "silver" and pii_key is not None else None
        return spark_jobs.run(self.session(), step, start, end, cfg, options_of, location, key)

    def read_range(
        self, uri: str, options: dict[str, str], start: dt.date, end: dt.date, region: str | None
    ) -> Any:
        """The rows as a Spark DataFrame (lazy: partition pruning on date and region)."""
        where = spark_jobs.date_range_predicate(start, end, region)
        return spark_jobs.read_delta(self.session(), uri, options, where, "rows of the step")
