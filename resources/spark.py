"""Where the Spark steps run: a session the code location owns, or Databricks jobs.

Both take one :class:`~pipelines.spark.jobs.StepRequest` and run :func:`pipelines.spark.jobs.run`,
the same transforms and writes; the Databricks
backend is in resources/databricks.py. A location with a Spark endpoint of its own
(``compute.spark_endpoints`` in lakehouse.yaml) has its steps run there, so the personal data
of a jurisdiction is processed by that jurisdiction's Spark, never by one global cluster.
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from pipelines.lake.config import ConfigError, LakeConfig, LakeLocation
from pipelines.spark import jobs as spark_jobs
from pipelines.spark import session as spark_engine
from pipelines.spark.jobs import StepRequest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def endpoint_location(cfg: LakeConfig, location: str | None) -> str:
    """The location whose Spark endpoint a step uses: its own, or the ML home's (features)."""
    return location or cfg.ml_home


class SparkStepRunner(dg.ConfigurableResource):
    """Runs a Spark step of :mod:`pipelines.spark.jobs` and reads back the rows it wrote.

    The assets take this resource under the key ``spark``; ``lakehouse.yaml``'s
    ``spark.backend`` picks the implementation (:func:`resources.resources_for`).
    """

    @abstractmethod
    def run_step(self, context: dg.AssetExecutionContext, request: StepRequest) -> dict[str, str]:
        """Replace the request's dates of its step's table (a location's, or the ML home's).

        Returns the step's report: ``table_uri``, ``location`` and, for a remote run, where to
        see it.
        """

    @abstractmethod
    def read_range(
        self,
        location: LakeLocation,
        uri: str,
        options: dict[str, str],
        start: dt.date,
        end: dt.date,
        region: str | None,
    ) -> Any:
        """The rows of ``[start, end]`` (of a region) a step just wrote, for validation."""


class SparkResource(SparkStepRunner):
    """Spark with Delta: ``local[2]`` by default, a master URL, or Spark Connect ``sc://``."""

    master: str = Field(default="local[2]", description="local[N], spark://…, or sc://…")
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings.")
    _session: Any = PrivateAttr(default=None)
    _session_master: str | None = PrivateAttr(default=None)

    def session(self, master: str | None = None) -> SparkSession:
        """The session, started the first time this resource is asked for it.

        ``master`` is a location's own endpoint (default: this resource's). Spark keeps one
        session per process (``getOrCreate``): a second run in the same process reuses the JVM
        instead of paying its start-up again, and a step that needs another endpoint than the
        session's is refused rather than run on the wrong cluster.
        """
        wanted = master or self.master
        if self._session is None:
            self._session = spark_engine.build_session(master=wanted, conf=dict(self.conf))
            self._session_master = wanted
        elif master is not None and wanted != self._session_master:
            raise ConfigError(
                f"this run's Spark session runs on {self._session_master}, but a step needs "
                f"{wanted} (compute.spark_endpoints): one run uses one Spark endpoint; run "
                "each location's partitions in their own runs"
            )
        return self._session  # type: ignore[no-any-return]

    def endpoint_master(self, cfg: LakeConfig, location: str | None) -> str:
        """The Spark master of a step's data: the location's endpoint, else this resource's."""
        endpoint = cfg.compute.endpoint(endpoint_location(cfg, location))
        return (endpoint.master() if endpoint else None) or self.master

    def run_step(self, context: dg.AssetExecutionContext, request: StepRequest) -> dict[str, str]:
        """Run the step in this process's session (what a cluster job's ``main`` runs)."""
        session = self.session(self.endpoint_master(request.cfg, request.location))
        return spark_jobs.run(session, request)

    def read_range(
        self,
        location: LakeLocation,
        uri: str,
        options: dict[str, str],
        start: dt.date,
        end: dt.date,
        region: str | None,
    ) -> Any:
        """The rows as a Spark DataFrame (lazy: partition pruning on date and region)."""
        where = spark_jobs.date_range_predicate(start, end, region)
        return spark_jobs.read_delta(
            self.session(), location, uri, options, where, "rows of the step"
        )
