"""The erasure path in Dagster: a request recorded, the sensor's run serving it, the deadline."""

import datetime as dt

import dagster as dg
import pytest
from deltalake import DeltaTable

from pipelines.erasure import requests
from pipelines.erasure.requests import ErasureRequest
from pipelines.lake.config import load_config
from pipelines.sovereignty.compute import COMPUTE_ENV
from resources.lake import LakeResource
from tests.erasure_lake import build, files_holding, subject
from tests.helpers import definitions

LOCATION = "azure-eu"


def _deadline(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    job = definitions().resolve_job_def("erasure_deadline_job")
    result = job.execute_in_process(instance=instance)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "erasure_deadline"
    return evaluation


def _sensor(instance: dg.DagsterInstance) -> dg.SensorResult | list | dg.SkipReason:
    sensor = definitions().resolve_sensor_def("erasure_request_sensor")
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource()}) as ctx:
        return sensor(ctx)


def test_a_request_past_its_deadline_fails_its_check_and_a_recent_one_does_not(lake_home):
    loc = load_config().location(LOCATION)
    instance = dg.DagsterInstance.ephemeral()
    now = dt.datetime.now(dt.UTC)
    recent = ErasureRequest.new("eu-000002", None, now - dt.timedelta(days=29))
    requests.submit(loc, loc.storage_options(), recent)
    assert _deadline(instance).passed
    late = ErasureRequest.new("eu-000003", "c3@eu.example.com", now - dt.timedelta(days=31))
    requests.submit(loc, loc.storage_options(), late)
    evaluation = _deadline(instance)
    assert not evaluation.passed
    overdue = evaluation.metadata["overdue"].value
    assert [r["request_id"] for r in overdue] == [late.request_id]
    assert overdue[0]["location"] == LOCATION and overdue[0]["age_days"] > 30
    assert evaluation.metadata["pending"].value == 2
    assert "eu-000003" not in str(evaluation.metadata) and "c3@" not in str(evaluation.metadata)


@pytest.fixture
def lake(lake_home, monkeypatch, pii_key):
    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    return build("local", LOCATION, pii_key, "EUR")


def test_the_sensor_serves_a_pending_request_and_the_receipt_is_in_the_metadata(lake):
    loc, storage = lake["location"], lake["storage"]
    customer, email = subject(loc)
    instance = dg.DagsterInstance.ephemeral()
    assert isinstance(_sensor(instance), dg.SkipReason)
    late = dt.datetime.now(dt.UTC) - dt.timedelta(days=45)
    request = ErasureRequest.new(customer, email, late)
    requests.submit(loc, loc.storage_options(), request)
    assert not _deadline(instance).passed  # waiting past the deadline
    (run,) = _sensor(instance)
    assert run.partition_key == LOCATION and run.tags["lakehouse/jurisdiction"] == "EU"

    job = definitions().resolve_job_def("erasure_job")
    result = job.execute_in_process(instance=instance, partition_key=run.partition_key)
    assert result.success
    (mat,) = result.asset_materializations_for_node("erasure_receipts")
    assert mat.metadata["requests_served"].value == 1
    assert mat.metadata["verified_absent"].value is True
    (receipt,) = mat.metadata["receipts"].value
    assert receipt["request_id"] == request.request_id and receipt["files_holding_subject"] == 0
    assert customer not in str(mat.metadata) and email not in str(mat.metadata)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"erasure_receipts_expectations": True, "erasure_deadline": True}

    assert files_holding(storage, lake["needles"]) == []  # the request's own row included
    assert DeltaTable(loc.table_uri("erasure_requests")).to_pyarrow_table().num_rows == 0
    assert isinstance(_sensor(instance), dg.SkipReason)
    assert _deadline(instance).passed
