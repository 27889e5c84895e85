"""Sovereignty of compute: the worker's declaration, the check, and the compute: configuration."""

from pathlib import Path

import pytest

from pipelines.lake.config import ConfigError, load_config
from pipelines.lake.tables import BRONZE, GOLD, QUARANTINE, SILVER
from pipelines.sovereignty import compute
from pipelines.sovereignty.compute import (
    COMPUTE_ENV,
    ComputeSovereigntyError,
    check_compute,
    check_locations,
    routing_value,
    worker_jurisdictions,
)
from pipelines.sovereignty.policy import PolicyError, Route, TableEvidence, check_route
from tests.helpers import config_with


@pytest.fixture(autouse=True)
def _no_declaration(monkeypatch):
    monkeypatch.delenv(COMPUTE_ENV, raising=False)


def _config_with(tmp_path: Path, monkeypatch, edit) -> Path:
    return config_with(tmp_path, monkeypatch, edit)


# --- the worker's declaration -------------------------------------------------------------


@pytest.mark.parametrize("env", ["local", "emulated"])
def test_unset_outside_prod_means_every_jurisdiction_and_says_so(env):
    worker = worker_jurisdictions(load_config(env))
    assert worker.declared == ()
    assert worker.may_process == ("APAC", "EU", "US")
    assert worker.describe() == "all (undeclared)"
    assert worker.notice is not None
    assert COMPUTE_ENV in worker.notice and "every jurisdiction" in worker.notice
    assert env in worker.notice


def test_unset_in_prod_is_an_error_naming_the_variable():
    with pytest.raises(ConfigError) as err:
        worker_jurisdictions(load_config("prod"))
    message = str(err.value)
    assert "\n" not in message
    assert COMPUTE_ENV in message and "'prod'" in message and "APAC, EU, US" in message


def test_a_declared_worker_in_prod_processes_only_its_own_jurisdiction(monkeypatch):
    monkeypatch.setenv(COMPUTE_ENV, "EU")
    worker = worker_jurisdictions(load_config("prod"))
    assert worker.declared == ("EU",)
    assert worker.may_process == ("EU",)
    assert worker.notice is None
    assert worker.serves("EU") and not worker.serves("US")


def test_a_comma_list_is_trimmed_case_folded_and_deduplicated(monkeypatch):
    monkeypatch.setenv(COMPUTE_ENV, " us, Eu ,US")
    worker = worker_jurisdictions(load_config("local"))
    assert worker.declared == ("US", "EU")
    assert worker.may_process == ("EU", "US")
    assert worker.describe() == "US,EU"
    assert not worker.serves("APAC")


@pytest.mark.parametrize("value", ["", "  ", "EU,", ",US", "US,,EU"])
def test_an_empty_jurisdiction_is_an_error(monkeypatch, value):
    monkeypatch.setenv(COMPUTE_ENV, value)
    with pytest.raises(ConfigError, match="has an empty jurisdiction") as err:
        worker_jurisdictions(load_config("local"))
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("value", ["FR", "EU,Mars", "E U"])
def test_an_unknown_jurisdiction_is_an_error_listing_the_known_ones(monkeypatch, value):
    monkeypatch.setenv(COMPUTE_ENV, value)
    with pytest.raises(ConfigError, match="names unknown jurisdiction") as err:
        worker_jurisdictions(load_config("local"))
    assert "known in environment 'local': APAC, EU, US" in str(err.value)
    assert "\n" not in str(err.value)


def test_the_variable_is_read_at_call_time(monkeypatch):
    cfg = load_config("local")
    monkeypatch.setenv(COMPUTE_ENV, "US")
    assert worker_jurisdictions(cfg).declared == ("US",)
    monkeypatch.setenv(COMPUTE_ENV, "APAC")
    assert worker_jurisdictions(cfg).declared == ("APAC",)


# --- the check ----------------------------------------------------------------------------


def test_eu_personal_data_on_a_us_worker_is_refused_naming_step_jurisdictions_and_rule(
    monkeypatch,
):
    monkeypatch.setenv(COMPUTE_ENV, "US")
    cfg = load_config("local")
    with pytest.raises(ComputeSovereigntyError) as err:
        check_compute(cfg, "bronze", "azure-eu", (), (BRONZE.name, QUARANTINE.name))
    message = str(err.value)
    assert isinstance(err.value, PolicyError)  # the same family as the sync's refusals
    assert "\n" not in message
    assert message.startswith("step 'bronze' refused on this worker")
    assert "location azure-eu (jurisdiction EU: bronze_events; bronze_quarantine)" in message
    assert "declares jurisdiction US (LAKEHOUSE_COMPUTE_JURISDICTION='US')" in message
    assert "rule: compute.may_process.US = [US] does not list EU" in message
    assert "run tag lakehouse/jurisdiction=EU" in message


def test_personal_data_is_allowed_on_its_own_jurisdiction_and_records_why(monkeypatch):
    monkeypatch.setenv(COMPUTE_ENV, "EU")
    grant = check_compute(
        load_config("local"), "silver", "azure-eu", (BRONZE.name,), (SILVER.name,)
    )
    assert grant.personal_tables == (BRONZE.name, SILVER.name)
    assert grant.metadata() == {
        "lakehouse/worker_jurisdiction": "EU",
        "lakehouse/data_jurisdiction": "EU",
        "lakehouse/compute_rule": "compute.may_process lets EU process EU",
    }


def test_gold_reads_pseudonymized_silver_so_it_is_a_personal_data_step(monkeypatch):
    monkeypatch.setenv(COMPUTE_ENV, "US")
    with pytest.raises(ComputeSovereigntyError, match="silver_events"):
        check_compute(load_config("local"), "gold", "azure-eu", (SILVER.name,), (GOLD.name,))


def test_a_pii_free_step_runs_on_any_worker_the_routes_allow(monkeypatch):
    monkeypatch.setenv(COMPUTE_ENV, "US")
    grant = check_compute(load_config("local"), "replica", "azure-eu", (GOLD.name,))
    assert grant.personal_tables == ()
    assert grant.rule == "PII-free: policy.allowed_routes.EU"


def test_an_undeclared_local_worker_processes_everything():
    cfg = load_config("local")
    grants = check_locations(cfg, "silver", cfg.locations.values(), (BRONZE.name,), (SILVER.name,))
    assert [g.location for g in grants] == ["aws-us", "azure-eu", "gcp-apac"]
    assert {g.worker for g in grants} == {"all (undeclared)"}


def test_a_run_spanning_jurisdictions_is_refused_before_any_location_is_processed(monkeypatch):
    monkeypatch.setenv(COMPUTE_ENV, "US")
    cfg = load_config("local")
    with pytest.raises(ComputeSovereigntyError, match="azure-eu"):
        check_locations(cfg, "silver", cfg.locations.values(), (BRONZE.name,), (SILVER.name,))


def test_routing_value_is_the_data_jurisdiction_or_any():
    cfg = load_config("local")
    eu, us = cfg.location("azure-eu"), cfg.location("aws-us")
    assert routing_value(cfg, [eu], [BRONZE.name]) == "EU"
    assert routing_value(cfg, [us, eu], [SILVER.name]) == "EU,US"
    assert routing_value(cfg, [eu], [GOLD.name]) == compute.ANY


def test_may_process_extends_a_worker_and_routes_restrict_pii_free_steps(tmp_path, monkeypatch):
    def edit(data):
        data["compute"]["may_process"]["EU"] = ["EU", "APAC"]
        data["policy"]["allowed_routes"]["APAC"] = ["APAC"]

    _config_with(tmp_path, monkeypatch, edit)
    monkeypatch.setenv(COMPUTE_ENV, "EU")
    cfg = load_config("local")
    assert worker_jurisdictions(cfg).may_process == ("APAC", "EU")
    check_compute(cfg, "bronze", "gcp-apac", (), (BRONZE.name,))
    with pytest.raises(ComputeSovereigntyError) as err:
        check_compute(cfg, "replica", "gcp-apac", (GOLD.name,))
    assert "policy.allowed_routes.APAC = [APAC] lists none of them" in str(err.value)


def test_the_sync_of_personal_data_runs_only_on_a_worker_of_its_jurisdiction(monkeypatch):
    cfg = load_config("local")
    eu = cfg.location("azure-eu")
    route = Route(eu.table_uri("bronze_events"), eu.uri("copy", "bronze_events"), eu, eu)
    evidence = TableEvidence(names=("bronze_events",))
    check_route(cfg, "bronze_events", route, evidence)  # undeclared local worker
    monkeypatch.setenv(COMPUTE_ENV, "EU")
    check_route(cfg, "bronze_events", route, evidence)
    monkeypatch.setenv(COMPUTE_ENV, "US")
    with pytest.raises(ComputeSovereigntyError) as err:
        check_route(cfg, "bronze_events", route, evidence)
    message = str(err.value)
    assert message.startswith("sync of table 'bronze_events' (route azure-eu (EU) -> azure-eu")
    assert "the table registry marks 'bronze_events' as personal data" in message
    # a PII-free table is synced by any worker
    check_route(cfg, "gold_daily_demand", route, TableEvidence(names=("gold_daily_demand",)))


# --- the compute: configuration -----------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["environments"]["local"].update(compute={"pools": "many"}),
            "environments.local.compute.pools 'many' is not one of shared, per_jurisdiction",
        ),
        (
            lambda d: d["compute"]["may_process"].update(FR=["FR"]),
            "compute.may_process.FR names unknown jurisdiction(s) FR",
        ),
        (
            lambda d: d["compute"]["may_process"].update(EU=["US"]),
            "compute.may_process.EU must list EU itself",
        ),
        (
            lambda d: d["compute"]["may_process"].update(EU=["EU", "Mars"]),
            "compute.may_process.EU names unknown jurisdiction(s) Mars",
        ),
        (
            lambda d: d["compute"].update(routing_tag="has spaces"),
            "compute.routing_tag 'has spaces' is not a Dagster tag key",
        ),
        (
            lambda d: d["compute"].update(colour="red"),
            "compute.colour: unknown key; known: may_process, routing_tag",
        ),
        (
            lambda d: d["environments"]["local"].update(
                compute={"spark_endpoints": {"nowhere": {"spark_master": "local[1]"}}}
            ),
            "spark_endpoints: unknown location 'nowhere'",
        ),
        (
            lambda d: d["environments"]["local"].update(
                compute={
                    "spark_endpoints": {
                        "azure-eu": {"databricks_host": "https://x", "databricks_token": "dapi1"}
                    }
                }
            ),
            "spark_endpoints.azure-eu.databricks_token must be a ${VARIABLE}",
        ),
        (
            lambda d: d["environments"]["local"].update(
                compute={"spark_endpoints": {"azure-eu": {"spark_connect": "spark://x:7077"}}}
            ),
            "spark_endpoints.azure-eu.spark_connect 'spark://x:7077' is not a Spark Connect URL",
        ),
        (
            lambda d: d["environments"]["local"].update(
                compute={
                    "spark_endpoints": {
                        "azure-eu": {"spark_master": "local[1]", "spark_connect": "sc://x"}
                    }
                }
            ),
            "give spark_master or spark_connect, not both",
        ),
        (
            lambda d: d["environments"]["local"].update(
                compute={"spark_endpoints": {"azure-eu": {"spark_mastr": "local[1]"}}}
            ),
            "spark_endpoints.azure-eu.spark_mastr: unknown key; known: spark_master",
        ),
    ],
)
def test_a_bad_compute_section_is_a_one_line_error_naming_file_and_key(
    tmp_path, monkeypatch, edit, expected
):
    path = _config_with(tmp_path, monkeypatch, edit)
    with pytest.raises(ConfigError) as err:
        load_config("local")
    message = str(err.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_spark_endpoints_resolve_their_placeholders_when_used(tmp_path, monkeypatch):
    def edit(data):
        data["environments"]["local"]["compute"] = {
            "spark_endpoints": {
                "azure-eu": {"spark_connect": "${EU_CONNECT}"},
                "gcp-apac": {"databricks_host": "https://apac", "databricks_token": "${APAC_T}"},
            }
        }

    _config_with(tmp_path, monkeypatch, edit)
    cfg = load_config("local")
    eu = cfg.compute.endpoint("azure-eu")
    assert eu is not None and cfg.compute.endpoint("aws-us") is None
    with pytest.raises(ConfigError, match="EU_CONNECT, which is not set"):
        eu.master()
    monkeypatch.setenv("EU_CONNECT", "sc://spark-eu:15002")
    assert eu.master() == "sc://spark-eu:15002"
    apac = cfg.compute.endpoint("gcp-apac")
    monkeypatch.setenv("APAC_T", "secret-token")
    assert apac is not None and apac.databricks() == ("https://apac", "secret-token")
    assert "secret-token" not in str(apac.describe())
