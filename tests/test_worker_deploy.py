"""The ingest workers' chart (deploy/helm/ingest-workers), checked offline against the config."""

import json
from pathlib import Path

import pytest
import yaml

from pipelines.lake.config import PROJECT_ROOT, load_config

CHART = PROJECT_ROOT / "deploy" / "helm" / "ingest-workers"


def _values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_one_worker_deployment_per_prod_location_in_its_jurisdiction(monkeypatch):
    for var in ("LAKEHOUSE_AWS_BUCKET", "LAKEHOUSE_AZURE_CONTAINER", "LAKEHOUSE_GCS_BUCKET"):
        monkeypatch.setenv(var, "bucket")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "account")
    try:
        cfg = load_config("prod")
    except Exception as exc:  # the prod profile needs more variables than a laptop has
        pytest.skip(f"prod configuration not loadable here: {exc}")
    workers = {w["location"]: w for w in _values()["workers"]}
    assert set(workers) == set(cfg.locations)
    for name, loc in cfg.locations.items():
        assert workers[name]["jurisdiction"] == loc.jurisdiction
        assert workers[name]["replicas"] >= 1


def test_the_template_runs_the_follow_command_with_its_jurisdiction():
    template = (CHART / "templates" / "deployment.yaml").read_text()
    for needed in (
        '"lakehouse", "ingest", "--follow", "--location"',
        "--dagster-url",
        "LAKEHOUSE_COMPUTE_JURISDICTION, value: {{ .jurisdiction }}",
        "replicas: {{ .replicas }}",
        "terminationGracePeriodSeconds",
        "nodeSelector: {lakehouse/jurisdiction: {{ .jurisdiction }}}",
        "{key: lakehouse/jurisdiction, operator: Equal, value: {{ .jurisdiction }}, "
        "effect: NoSchedule}",
        "serviceAccountName: lakehouse-{{ lower .jurisdiction }}-runs",
    ):
        assert needed in template, needed
    assert Path(CHART / "Chart.yaml").exists()


def test_a_worker_runs_as_its_jurisdiction_s_dagster_runs_do():
    """The worker's pool, taint and service account are those of its jurisdiction's run pods."""
    dagster = yaml.safe_load((CHART.parent / "values.yaml").read_text())
    accounts = {}
    for d in dagster["dagster-user-deployments"]["deployments"]:
        args = d["dagsterApiGrpcArgs"]
        k8s = json.loads(args[args.index("--container-context") + 1])["k8s"]
        jurisdiction = d["nodeSelector"]["lakehouse/jurisdiction"]
        accounts[jurisdiction] = k8s["service_account_name"]
    for worker in _values()["workers"]:
        # the template's `lower .jurisdiction`
        assert (
            accounts[worker["jurisdiction"]] == f"lakehouse-{worker['jurisdiction'].lower()}-runs"
        )
        assert worker["secret"] == f"lakehouse-{worker['jurisdiction'].lower()}-credentials"
