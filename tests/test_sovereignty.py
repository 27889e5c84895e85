"""Sovereignty of compute in the code location: declarations, refusals before reads, routing."""

import datetime as dt
import json
import logging
from typing import Any

import dagster as dg
import pytest
from deltalake import write_deltalake

from assets.automation import SPARK_TAG
from assets.partitions import date_region_key
from assets.sovereignty import (
    READS_PERSONAL_DATA,
    declare,
    declared,
    reads_personal_data,
)
from lakehouse.definitions import build_definitions
from pipelines.lake import storage
from pipelines.lake.config import load_config
from pipelines.lake.tables import holds_personal_data
from pipelines.simulation.simulate import SimulationConfig
from pipelines.sovereignty.compute import ANY, COMPUTE_ENV, SHARED
from resources import resources_for
from resources.spark import SparkResource, SparkStepRunner
from tests.helpers import DAY, asset, gold_rows, land

EU_KEY = date_region_key(DAY.isoformat(), "eu")
TAG = "lakehouse/jurisdiction"


@pytest.fixture(autouse=True)
def _no_declaration(monkeypatch):
    monkeypatch.delenv(COMPUTE_ENV, raising=False)


# --- every step that touches personal data declares it ------------------------------------


def _cause(result: dg.ExecuteInProcessResult, node: str) -> Any:
    """The error a step raised (Dagster wraps it in a step execution error)."""
    error = result.failure_data_for_node(node).error
    return error.cause if error.cls_name == "DagsterExecutionStepExecutionError" else error


def undeclared_personal_data_steps(defs: dg.Definitions) -> list[str]:
    """Assets whose parents or own table are registry personal data but do not say so."""
    graph = defs.resolve_asset_graph()
    problems = []
    for key in sorted(graph.materializable_asset_keys):
        node = graph.get(key)
        name = key.to_user_string()
        touched = [p.to_user_string() for p in sorted(node.parent_keys)] + [name]
        personal = [t for t in touched if holds_personal_data(t)]
        if not personal:
            continue
        declaration = declared(node.tags, node.metadata)
        if declaration is None or not reads_personal_data(node.tags):
            problems.append(f"{name}: touches {', '.join(personal)} without {READS_PERSONAL_DATA}")
            continue
        missing = set(personal) - set(declaration.reads) - set(declaration.writes)
        if missing:
            problems.append(f"{name}: does not declare {', '.join(sorted(missing))}")
    return problems


@pytest.mark.parametrize("env", ["local", "prod"])
def test_every_step_that_touches_personal_data_declares_it(env):
    defs = build_definitions(env)
    assert undeclared_personal_data_steps(defs) == []
    graph = defs.resolve_asset_graph()
    pii = sorted(
        k.to_user_string()
        for k in graph.materializable_asset_keys
        if reads_personal_data(graph.get(k).tags)
    )
    # gold reads pseudonymized silver, still personal data: a personal-data step too
    assert pii == [
        "bronze_events",
        "bronze_quarantine",
        "erasure_receipts",  # erases the subject from every personal table of its location
        "gold_daily_demand",
        "region_health",  # counts its region's quarantine reason kinds, in its own pool
        "silver_events",
    ]
    gold = graph.get(dg.AssetKey("gold_daily_demand"))
    assert declared(gold.tags, gold.metadata) == declare(
        reads=("silver_events",), writes=("gold_daily_demand",)
    )


def test_a_new_step_reading_a_raw_table_without_declaring_it_is_flagged():
    defs = build_definitions("local")
    parts = asset("bronze_events").partitions_def

    @dg.asset(deps=["bronze_events"], partitions_def=parts)
    def sneaky_report() -> None:
        """Reads raw bronze without saying so."""

    honest = declare(reads=("bronze_events",))

    @dg.asset(
        deps=["bronze_events"], partitions_def=parts, tags=honest.tags(), metadata=honest.metadata()
    )
    def honest_report() -> None:
        """Reads raw bronze and declares it."""

    @dg.asset(deps=["bronze_events"], partitions_def=parts, tags=honest.tags())
    def half_honest_report() -> None:
        """Says it reads personal data but not which table."""

    merged = dg.Definitions.merge(
        defs, dg.Definitions(assets=[sneaky_report, honest_report, half_honest_report])
    )
    assert undeclared_personal_data_steps(merged) == [
        "half_honest_report: does not declare bronze_events",
        f"sneaky_report: touches bronze_events without {READS_PERSONAL_DATA}",
    ]


# --- refused before any read ----------------------------------------------------------------


class StorageSpy:
    """Records every object-store client opened and every object listed or read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in ("__init__", "list", "get", "head", "open_read"):
            original = getattr(storage.ObstoreStorage, name)
            monkeypatch.setattr(storage.ObstoreStorage, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Any) -> Any:
        def spied(obj: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(f"{name} {args[0] if args else ''}")
            return original(obj, *args, **kwargs)

        return spied


def _landed_eu() -> None:
    land("azure-eu", SimulationConfig(start=DAY, end=DAY, events_per_day=200))


def test_bronze_of_an_eu_partition_on_a_us_worker_is_refused_before_any_read(
    lake_home, monkeypatch
):
    _landed_eu()
    spy = StorageSpy(monkeypatch)
    monkeypatch.setenv(COMPUTE_ENV, "US")
    result = dg.materialize(
        [asset("bronze_events")],
        partition_key=EU_KEY,
        resources={k: resources_for("local")[k] for k in ("lake", "pii")},
        raise_on_error=False,
    )
    assert not result.success
    error = _cause(result, "bronze")
    assert error.cls_name == "ComputeSovereigntyError"
    assert "step 'bronze' refused on this worker" in error.message
    assert "jurisdiction EU" in error.message and "declares jurisdiction US" in error.message
    assert spy.calls == []  # not one store opened, listed or read
    assert not (lake_home / ".lake" / "azure-eu" / "tables").exists()


def test_the_same_partition_on_an_eu_worker_reads_and_records_its_jurisdiction(
    lake_home, monkeypatch
):
    _landed_eu()
    spy = StorageSpy(monkeypatch)  # the control: the spy sees the reads a real ingest does
    monkeypatch.setenv(COMPUTE_ENV, "EU")
    result = dg.materialize(
        [asset("bronze_events")],
        partition_key=EU_KEY,
        resources={k: resources_for("local")[k] for k in ("lake", "pii")},
    )
    assert result.success
    assert any(c.startswith("list") for c in spy.calls)
    assert any(c.startswith("get") for c in spy.calls)
    for mat in result.get_asset_materialization_events():
        meta = mat.materialization.metadata
        assert meta["lakehouse/worker_jurisdiction"].value == "EU"
        assert meta["lakehouse/data_jurisdiction"].value == "EU"


def test_an_undeclared_local_worker_says_so_in_the_run_log(lake_home):
    _landed_eu()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [asset("bronze_events")],
            partition_key=EU_KEY,
            resources={k: resources_for("local")[k] for k in ("lake", "pii")},
            instance=instance,
        )
        logs = [(e.level, e.user_message) for e in instance.all_logs(result.run_id)]
    assert result.success
    unset = [level for level, message in logs if message.startswith(f"{COMPUTE_ENV} is unset")]
    assert unset == [logging.WARNING]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["lakehouse/worker_jurisdiction"].value == "all (undeclared)"


class RecordingRunner(SparkStepRunner):
    """A Spark backend that records the steps it was asked to run and runs none."""

    def run_step(self, context, request):
        raise RuntimeError(f"spark step submitted: {request.step} {request.location}")

    def read_range(self, location, uri, options, start, end, region):
        raise AssertionError("no step ran, nothing to read back")


@pytest.mark.parametrize("name", ["silver_events", "gold_daily_demand"])
def test_spark_steps_of_eu_data_are_refused_on_a_us_worker_before_submission(
    lake_home, monkeypatch, name
):
    resources = {**resources_for("local"), "spark": RecordingRunner()}
    monkeypatch.setenv(COMPUTE_ENV, "US")
    refused = dg.materialize(
        [asset(name)], partition_key=EU_KEY, resources=resources, raise_on_error=False
    )
    error = _cause(refused, name)
    assert error.cls_name == "ComputeSovereigntyError"
    assert "spark step submitted" not in error.message
    # the control: on an EU worker the step reaches the Spark backend
    monkeypatch.setenv(COMPUTE_ENV, "EU")
    allowed = dg.materialize(
        [asset(name)], partition_key=EU_KEY, resources=resources, raise_on_error=False
    )
    assert "spark step submitted: " in _cause(allowed, name).message


def test_a_pii_free_step_runs_on_the_us_worker(lake_home, monkeypatch):
    eu = load_config("local").location("azure-eu")
    write_deltalake(eu.table_uri("gold_daily_demand"), gold_rows(DAY), partition_by=["date"])
    monkeypatch.setenv(COMPUTE_ENV, "US")
    result = dg.materialize(
        [asset("gold_daily_demand_replica_azure_eu")], resources=resources_for("local")
    )
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["lakehouse/worker_jurisdiction"].value == "US"
    assert meta["lakehouse/data_jurisdiction"].value == "EU"
    assert meta["lakehouse/compute_rule"].value == "PII-free: policy.allowed_routes.EU"


# --- Spark endpoints per location -------------------------------------------------------------


def test_a_location_with_its_own_spark_endpoint_runs_there(monkeypatch, tmp_path):
    import yaml

    from pipelines.lake.config import PROJECT_ROOT
    from pipelines.spark import session as spark_engine

    data = yaml.safe_load((PROJECT_ROOT / "lakehouse.yaml").read_text())
    data["environments"]["local"]["compute"] = {
        "spark_endpoints": {"azure-eu": {"spark_connect": "${EU_SPARK}"}}
    }
    (tmp_path / "lakehouse.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(tmp_path / "lakehouse.yaml"))
    monkeypatch.setenv("EU_SPARK", "sc://spark-eu.internal:15002")
    started: list[str] = []
    monkeypatch.setattr(
        spark_engine, "build_session", lambda master, conf=None: started.append(master) or master
    )
    cfg = load_config("local")
    runner = SparkResource(master="local[1]")
    assert runner.endpoint_master(cfg, "azure-eu") == "sc://spark-eu.internal:15002"
    assert runner.endpoint_master(cfg, "aws-us") == "local[1]"
    assert runner.endpoint_master(cfg, None) == "local[1]"  # features: the ML home's
    assert runner.session(runner.endpoint_master(cfg, "azure-eu")) == "sc://spark-eu.internal:15002"
    with pytest.raises(Exception, match="one run uses one Spark endpoint"):
        runner.session(runner.endpoint_master(cfg, "aws-us"))
    assert started == ["sc://spark-eu.internal:15002"]


# --- routing: tags and per-location sensors -----------------------------------------------


def test_the_ingest_sensor_requests_only_what_the_worker_may_process_and_tags_it(
    lake_home, monkeypatch
):
    _landed_eu()
    land("aws-us", SimulationConfig(start=DAY, end=DAY, events_per_day=50))
    defs = build_definitions("local")
    sensor = defs.resolve_sensor_def("landed_objects_sensor")

    def evaluate() -> list[dg.RunRequest]:
        with (
            dg.DagsterInstance.ephemeral() as instance,
            dg.build_sensor_context(instance=instance, resources=defs.resources) as ctx,
        ):
            return list(sensor(ctx).run_requests or [])

    every = {(str(r.partition_key), r.tags[TAG]) for r in evaluate()}
    assert {(f"{DAY}|eu", "EU"), (f"{DAY}|us", "US")} <= every
    assert {tag for key, tag in every if key.endswith("|us")} == {"US"}
    monkeypatch.setenv(COMPUTE_ENV, "EU")
    only_eu = {(str(r.partition_key), r.tags[TAG]) for r in evaluate()}
    assert only_eu == {(k, t) for k, t in every if t == "EU"}
    assert (f"{DAY}|eu", "EU") in only_eu


def test_the_hourly_schedule_requests_the_worker_s_regions(lake_home, monkeypatch):
    monkeypatch.setenv(COMPUTE_ENV, "APAC")
    sim = SimulationConfig(start=DAY, end=DAY, events_per_day=50, late_share=0.0)
    for name in ("aws-us", "gcp-apac"):  # both have objects to ingest; the worker serves one
        land(name, sim)
    defs = build_definitions("local")
    schedule = defs.resolve_schedule_def("hourly_ingest_schedule")
    when = dt.datetime(2026, 10, 5, 3, 5, tzinfo=dt.UTC)
    lake = resources_for("local")["lake"]
    with dg.build_schedule_context(scheduled_execution_time=when, resources={"lake": lake}) as ctx:
        requests = schedule(ctx)
    assert [(str(r.partition_key), r.tags[TAG]) for r in requests] == [("2026-10-05|apac", "APAC")]


def test_automation_runs_carry_the_routing_tag():
    local = {s.name: s for s in build_definitions("local").sensors}
    assert local["spark_automation_sensor"].run_tags == {SPARK_TAG: "true", TAG: SHARED}
    assert local["automation_sensor"].run_tags == {TAG: ANY}
    assert "jurisdiction_chain_sensor" not in local
    prod = {s.name: s for s in build_definitions("prod").sensors}
    assert prod["spark_automation_sensor"].run_tags == {SPARK_TAG: "true", TAG: ANY}


def test_per_jurisdiction_pools_leave_personal_data_assets_to_the_chain_sensor():
    graph = build_definitions("prod").resolve_asset_graph()
    conditions = {
        k.to_user_string(): graph.get(k).automation_condition is not None
        for k in graph.materializable_asset_keys
    }
    assert conditions["silver_events"] is False and conditions["gold_daily_demand"] is False
    assert conditions["gold_daily_demand_replica_azure_eu"] is True
    assert (
        build_definitions("local")
        .resolve_asset_graph()
        .get(dg.AssetKey("silver_events"))
        .automation_condition
        is not None
    )


def test_the_chain_sensor_runs_silver_and_gold_for_its_own_jurisdiction(monkeypatch):
    defs = build_definitions("prod")
    sensor = defs.resolve_sensor_def("jurisdiction_chain_sensor")
    today = dt.datetime.now(dt.UTC).date()
    old = today - dt.timedelta(days=30)

    def materialized(instance, table: str, day: dt.date, region: str) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(table, partition=f"{day.isoformat()}|{region}")
        )

    def tick(instance, cursor=None):
        with dg.build_sensor_context(instance=instance, cursor=cursor) as ctx:
            result = sensor(ctx)
        return result

    with dg.DagsterInstance.ephemeral() as instance:
        materialized(instance, "bronze_events", today, "eu")
        materialized(instance, "bronze_events", today, "us")
        materialized(instance, "bronze_events", old, "eu")  # beyond the look-back
        materialized(instance, "silver_events", today, "eu")
        monkeypatch.setenv(COMPUTE_ENV, "EU")
        first = tick(instance)
        requests = [
            (r.asset_selection[0].to_user_string(), str(r.partition_key), r.tags[TAG])
            for r in first.run_requests
        ]
        assert requests == [
            ("silver_events", f"{today}|eu", "EU"),
            ("gold_daily_demand", f"{today}|eu", "EU"),
        ]
        assert all(r.tags[SPARK_TAG] == "true" for r in first.run_requests)
        assert tick(instance, first.cursor).run_requests == []  # nothing new
        monkeypatch.setenv(COMPUTE_ENV, "US")
        us = tick(instance)
        assert [(str(r.partition_key), r.tags[TAG]) for r in us.run_requests] == [
            (f"{today}|us", "US")
        ]
        monkeypatch.delenv(COMPUTE_ENV)
        with pytest.raises(Exception, match=f"{COMPUTE_ENV} is not set"):
            tick(instance)


# --- the lakehouse command ------------------------------------------------------------------


def test_lakehouse_ingest_for_eu_on_a_us_worker_is_refused_before_any_read(
    lake_home, monkeypatch, capsys
):
    from lakehouse.cli import main

    _landed_eu()
    spy = StorageSpy(monkeypatch)
    monkeypatch.setenv(COMPUTE_ENV, "US")
    assert main(["ingest", "--location", "azure-eu", "--date", DAY.isoformat()]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("lakehouse ingest: error: refused on this worker: location azure-eu")
    assert "jurisdiction EU" in err and "declares jurisdiction US" in err and "rule:" in err
    assert spy.calls == []
    assert not (lake_home / ".lake" / "azure-eu" / "tables").exists()

    monkeypatch.setenv(COMPUTE_ENV, "EU")
    assert main(["ingest", "--location", "azure-eu", "--date", DAY.isoformat()]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reconciled"] is True
    assert report["compute"]["lakehouse/worker_jurisdiction"] == "EU"
    assert spy.calls  # the control: this time the landing area was read


def test_lakehouse_ingest_on_an_undeclared_laptop_says_so(lake_home, capsys):
    from lakehouse.cli import main

    _landed_eu()
    assert main(["ingest", "--location", "azure-eu", "--date", DAY.isoformat()]) == 0
    captured = capsys.readouterr()
    assert f"lakehouse ingest: {COMPUTE_ENV} is unset" in captured.err
    assert json.loads(captured.out)["compute"]["lakehouse/worker_jurisdiction"] == (
        "all (undeclared)"
    )


def test_lakehouse_policy_prints_the_storage_and_compute_rules(monkeypatch, capsys):
    from lakehouse.cli import main

    monkeypatch.setenv(COMPUTE_ENV, "EU")
    assert main(["--env", "prod", "policy"]) == 0
    rules = json.loads(capsys.readouterr().out)
    storage_rules, compute_rules = rules["storage"], rules["compute"]
    assert storage_rules["pii_columns"] == ["customer_id", "email", "phone", "ip_address"]
    assert storage_rules["personal_data_tables"] == [
        "bronze_events",
        "bronze_quarantine",
        "bronze_ingest_ledger",
        "silver_events",
        "erasure_requests",
        "erasure_receipts",
    ]
    assert storage_rules["allowed_routes"]["EU"] == ["EU", "US", "APAC"]
    assert "email" in storage_rules["content_detectors"]
    assert storage_rules["content_sample"]["files"] == 8
    assert compute_rules["worker"]["declared"] == ["EU"]
    assert compute_rules["worker"]["may_process_personal_data_of"] == ["EU"]
    by_name = {loc["name"]: loc for loc in compute_rules["locations"]}
    assert by_name["azure-eu"]["this_worker_may_process_its_personal_data"] is True
    assert by_name["aws-us"]["this_worker_may_process_its_personal_data"] is False
    assert by_name["azure-eu"]["spark_endpoint"] == {"spark_master": "${LAKEHOUSE_SPARK_MASTER_EU}"}
    assert compute_rules["routing_tag"] == TAG
    assert compute_rules["pools"] == "per_jurisdiction"
    # set but wrong: refused in one line and exit 1, as every command refuses it
    for wrong, said in (("XX", "names unknown jurisdiction(s) XX"), ("EU,,", "empty")):
        monkeypatch.setenv(COMPUTE_ENV, wrong)
        assert main(["--env", "prod", "policy"]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"lakehouse policy: error: {COMPUTE_ENV}=")
        assert said in err and err.count("\n") == 1, err
    # unset in prod: the rules are still printed, the worker's problem named in its place
    monkeypatch.delenv(COMPUTE_ENV)
    assert main(["--env", "prod", "policy"]) == 0
    worker = json.loads(capsys.readouterr().out)["compute"]["worker"]
    assert f"{COMPUTE_ENV} is not set" in worker["error"]
