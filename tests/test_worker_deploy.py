"""The ingest workers' chart (deploy/helm/ingest-workers), checked offline against the config."""

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
    ):
        assert needed in template, needed
    assert Path(CHART / "Chart.yaml").exists()
