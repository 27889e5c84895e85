"""Spark jobs: read Delta, run a transform of :mod:`pipelines.spark.transforms`, replace partitions.

The same functions run from the Dagster assets (local Spark, a master URL or Spark Connect)
and as the entry point of a Databricks ``spark_python_task`` (``main``), so production runs
exactly the transform the tests check. No Dagster here.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.lake import tables
from pipelines.lake.config import ConfigError, LakeConfig, LakeLocation, load_config
from pipelines.lake.config.environment import env, process_environment
from pipelines.lake.delta import date_range_predicate, inputs_metadata, sql_literal
from pipelines.spark import session as spark_engine
from pipelines.spark import transforms as T

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

BRONZE_TABLE = tables.BRONZE.name
SILVER_TABLE = tables.SILVER.name
GOLD_TABLE = tables.GOLD.name
FEATURES_TABLE = tables.FEATURES.name
# The table each step replaces a date range of.
STEP_TABLES = {"silver": tables.SILVER, "gold": tables.GOLD, "features": tables.FEATURES}
# The pseudonymization key, asked for only where silver runs (a cluster resolves its own).
PiiKey = Callable[[], str]


def _check_step(step: str, location: str | None) -> None:
    if step not in STEP_TABLES:
        raise ConfigError(f"unknown step {step!r}: {', '.join(STEP_TABLES)}")
    if step != "features" and not location:
        raise ConfigError(f"step {step!r} runs per location: give the location name")


@dataclass(frozen=True, kw_only=True)
class StepRequest:
    """One Spark step to run: what every backend takes (a session here, a cluster, Databricks).

    ``step`` (``silver``, ``gold`` or ``features``) replaces the dates ``[start, end]`` of its
    table: a location's own (``location``), or the ML home's (features: ``location`` None).
    ``storage_options`` (per location name) and ``pii_key`` (a callable, so that a backend
    whose cluster holds the key never makes the caller resolve it) are only for a backend
    that reads the lake itself; neither is ever shown.
    """

    step: str
    start: dt.date
    end: dt.date
    location: str | None
    cfg: LakeConfig = field(repr=False, compare=False)
    storage_options: Mapping[str, dict[str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )
    pii_key: PiiKey | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Refuse an unknown step, or a per-location step without its location."""
        _check_step(self.step, self.location)

    def target(self) -> tuple[LakeLocation, tables.TableSpec]:
        """Where the step writes (:func:`step_target`)."""
        return step_target(self.cfg, self.step, self.location)

    def argv(self) -> list[str]:
        """The command line of :func:`main` that runs this step on a cluster."""
        params = [self.step, "--start", self.start.isoformat(), "--end", self.end.isoformat()]
        params += ["--environment", self.cfg.environment]
        return params + (["--location", self.location] if self.location else [])


@dataclass(frozen=True)
class FeatureInput:
    """Where the features read one region's gold: the home's own table or a replica."""

    location: str
    region: str
    uri: str


def feature_inputs(cfg: LakeConfig) -> list[FeatureInput]:
    """The gold tables the features read, one per region, all in the ML home.

    The home's own region is read from its table; every other region from the replica the
    sync engine keeps at ``home.replica_uri("gold_daily_demand", <location>)``.
    """
    home = cfg.home
    out = []
    for loc in cfg.locations.values():
        uri = (
            home.table_uri(GOLD_TABLE)
            if loc.name == home.name
            else home.replica_uri(GOLD_TABLE, loc.name)
        )
        out.append(FeatureInput(loc.name, loc.region, uri))
    return out


def read_delta(
    spark: SparkSession,
    location: LakeLocation,
    uri: str,
    options: dict[str, str],
    where: str,
    what: str,
    inputs: dict[str, int] | None = None,
) -> DataFrame:
    """Rows of a location's Delta table matching ``where`` (partition pruning).

    A clear error when there is no table. With ``inputs``, the table is read at its latest
    version, pinned (``versionAsOf``), and the version recorded under ``uri``: the write
    names what it read in its commit (:func:`pipelines.lake.delta.inputs_metadata`).
    """
    target = spark_engine.configure_storage(spark, uri, options, location)
    try:
        reader = spark.read.format("delta")
        if inputs is not None:
            latest = spark.sql(f"DESCRIBE HISTORY delta.`{target}` LIMIT 1").first()
            if latest is not None:
                inputs[uri] = int(latest["version"])
                reader = reader.option("versionAsOf", inputs[uri])
        return reader.load(target).where(where)
    except Exception as exc:
        if spark_engine.is_missing_table(exc):
            raise ConfigError(f"{what}: no Delta table at {uri}") from None
        raise


def silver(
    spark: SparkSession,
    location: LakeLocation,
    options: dict[str, str],
    start: dt.date,
    end: dt.date,
    pii_key: str,
    lateness_days: int = T.DEFAULT_LATENESS_DAYS,
    inputs: dict[str, int] | None = None,
) -> DataFrame:
    """Silver events of a location's region for event dates ``[start, end]``."""
    key_frame = T.pii_key_frame(spark, pii_key)
    lo, hi = T.bronze_landing_range(start, end, lateness_days)
    where = (
        f"landing_date >= {sql_literal(lo)} AND landing_date <= {sql_literal(hi)} "
        f"AND region = {sql_literal(location.region)}"
    )
    bronze = read_delta(
        spark,
        location,
        location.table_uri(BRONZE_TABLE),
        options,
        where,
        f"bronze of {location.name}",
        inputs,
    )
    return T.silver_events(bronze, key_frame, start, end)


def gold(
    spark: SparkSession,
    location: LakeLocation,
    options: dict[str, str],
    start: dt.date,
    end: dt.date,
    inputs: dict[str, int] | None = None,
) -> DataFrame:
    """Gold daily demand of a location's region for ``[start, end]``, from its silver."""
    where = date_range_predicate(start, end, location.region)
    rows = read_delta(
        spark,
        location,
        location.table_uri(SILVER_TABLE),
        options,
        where,
        f"silver of {location.name}",
        inputs,
    )
    return T.gold_daily_demand(rows)


def union_all(frames: list[DataFrame]) -> DataFrame:
    """One Spark DataFrame of several with the same columns."""
    if not frames:
        raise ValueError(
            "nothing to union: the run has no partition keys to write (an empty partition "
            "range?) or the config lists no feature inputs"
        )
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def features(
    spark: SparkSession,
    cfg: LakeConfig,
    options: dict[str, str],
    start: dt.date,
    end: dt.date,
    inputs: dict[str, int] | None = None,
) -> DataFrame:
    """Demand features of ``[start, end]``: every region's gold, only the look-back it needs."""
    lo, hi = T.feature_window(start, end)
    frames = [
        read_delta(
            spark,
            cfg.home,
            i.uri,
            options,
            date_range_predicate(lo, hi),
            f"gold of {i.location}",
            inputs,
        )
        for i in feature_inputs(cfg)
    ]
    union = union_all(frames)
    countries = {r: v.get("country", "US") for r, v in cfg.regions.items()}
    hol = T.holiday_frame(spark, countries, start, end)
    return T.demand_features(union, hol, start, end)


def write_range(
    df: DataFrame,
    location: LakeLocation,
    uri: str,
    options: dict[str, str],
    start: dt.date,
    end: dt.date,
    region: str | None,
    table: tables.TableSpec,
    inputs: Mapping[str, int] | None = None,
) -> None:
    """Replace exactly the partitions of ``[start, end]`` (and region) with ``df``.

    ``inputs`` (table URI -> version read) go into the commit (``userMetadata``): a model's
    lineage follows them from the features back to silver and bronze. The table's registered
    properties (its statistics' columns) are set on it.
    """
    target = spark_engine.configure_storage(df.sparkSession, uri, options, location)
    spark_engine.write_replace(
        df,
        target,
        date_range_predicate(start, end, region),
        list(table.partition_by),
        inputs_metadata(inputs) if inputs else None,
        table.properties(),
    )


def step_target(
    cfg: LakeConfig, step: str, location_name: str | None = None
) -> tuple[LakeLocation, tables.TableSpec]:
    """Where a step writes: a location's silver or gold, or the ML home's features.

    Both sides of a remote run use it: the job to write, Dagster to check the job's report and
    to read the rows back.
    """
    _check_step(step, location_name)
    if step == "features" or location_name is None:
        return cfg.home, tables.FEATURES
    return cfg.location(location_name), STEP_TABLES[step]


def run(spark: SparkSession, request: StepRequest) -> dict[str, str]:
    """Run one step for its date range and write it.

    Returns the step's report: the URI of the table written and its location.
    """
    loc, table = request.target()
    opts = request.storage_options[loc.name]
    start, end = request.start, request.end
    region: str | None = loc.region
    inputs: dict[str, int] = {}
    if request.step == "features":
        df, region = features(spark, request.cfg, opts, start, end, inputs), None
    elif request.step == "silver":
        key = request.pii_key() if request.pii_key is not None else None
        if not key:
            raise T.PiiKeyError(f"silver needs the pseudonymization key: set {T.PII_KEY_ENV}")
        df = silver(spark, loc, opts, start, end, key, inputs=inputs)
    else:
        df = gold(spark, loc, opts, start, end, inputs)
    uri = loc.table_uri(table.name)
    write_range(df, loc, uri, opts, start, end, region, table, inputs)
    return {"table_uri": uri, "location": loc.name}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """A cluster job's command line: step, date range, environment, location.

    Other arguments are ignored: on an existing cluster Pipes appends its bootstrap
    (``--dagster-pipes-context …``) to the task's parameters.
    """
    parser = argparse.ArgumentParser(prog="pipelines.spark.jobs")
    parser.add_argument("step", choices=list(STEP_TABLES))
    parser.add_argument("--start", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--end", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--environment", default=None)
    parser.add_argument("--location", default=None)
    args, _ = parser.parse_known_args(list(argv))
    return args


def pipes_params(argv: Sequence[str], environ: Mapping[str, str]) -> Any:
    """Dagster Pipes' bootstrap of a job, as a ``dagster_pipes`` params loader.

    On a new cluster Pipes sets it in the cluster's environment; on an existing cluster, which
    cannot take environment variables, it appends it to the command line instead.
    """
    import dagster_pipes as dp

    cli, _ = dp.DAGSTER_PIPES_CLI_PARSER.parse_known_args(list(argv))
    mapping = dict(environ)
    if cli.dagster_pipes_context:
        mapping[dp.DAGSTER_PIPES_CONTEXT_ENV_VAR] = cli.dagster_pipes_context
    if cli.dagster_pipes_messages:
        mapping[dp.DAGSTER_PIPES_MESSAGES_ENV_VAR] = cli.dagster_pipes_messages
    return dp.PipesMappingParamsLoader(mapping)


@contextlib.contextmanager
def databricks_pipes(argv: Sequence[str]) -> Iterator[Any]:
    """The Pipes connection of a Databricks job (context and messages on DBFS), else None.

    ``open_dagster_pipes``' defaults read a local file and write to one, which on a cluster
    is not where Dagster's Databricks client puts the context nor reads the messages.
    None when the job runs by hand (no bootstrap, or no ``dagster_pipes`` installed).
    """
    try:
        import dagster_pipes as dp
    except ImportError:
        yield None
        return
    params = pipes_params(argv, process_environment())
    if not params.is_dagster_pipes_process():
        yield None
        return
    with dp.open_dagster_pipes(
        params_loader=params,
        context_loader=dp.PipesDbfsContextLoader(),
        message_writer=dp.PipesDbfsMessageWriter(),
    ) as pipes:
        yield pipes


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of a cluster job (Databricks ``spark_python_task``): one step, one range.

    Pipes is opened before the step runs, so a failure reaches Dagster with its traceback;
    the step's report (table URI, location) is its materialization.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from pyspark.sql import SparkSession

    with databricks_pipes(argv) as pipes:
        cfg = load_config(args.environment)
        spark = SparkSession.builder.getOrCreate()  # the cluster's own session
        key = env(T.PII_KEY_ENV)
        request = StepRequest(
            step=args.step,
            start=args.start,
            end=args.end,
            location=args.location,
            cfg=cfg,
            storage_options={name: loc.storage_options() for name, loc in cfg.locations.items()},
            pii_key=(lambda: key) if key else None,
        )
        report = run(spark, request)
        if pipes is None:
            print(json.dumps(report))  # noqa: T201
        else:
            pipes.report_asset_materialization(metadata=dict(report))


if __name__ == "__main__":
    main()
