"""The code location loads in every environment, lazily, and every asset has GX checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from data_quality.suites import SUITES
from pipelines.config import ENVIRONMENTS
from pipelines.definitions import build_definitions

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_definitions_load_in_every_environment(env):
    defs = build_definitions(env)
    graph = defs.resolve_asset_graph()
    assert {"bronze_events", "bronze_quarantine"} <= {
        k.to_user_string() for k in graph.get_all_asset_keys()
    }
    assert defs.resolve_job_def("ingest_job") is not None
    assert defs.resolve_job_def("sync_job") is not None
    assert defs.resolve_job_def("retrain_job") is not None
    assert set(defs.resources) == {"lake", "spark", "mlflow", "pii"}
    assert defs.resolve_job_def("spark_job") is not None
    assert defs.resolve_job_def("features_job") is not None


def test_prod_secrets_are_env_vars_not_values():
    lake = build_definitions("prod").resources["lake"]
    assert isinstance(lake.aws_secret_access_key, dg.EnvVar)
    assert lake.aws_secret_access_key.env_var_name == "AWS_SECRET_ACCESS_KEY"
    mlflow = build_definitions("prod").resources["mlflow"]
    assert isinstance(mlflow.tracking_token, dg.EnvVar)
    assert mlflow.tracking_token.env_var_name == "MLFLOW_TRACKING_TOKEN"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pii_key_is_an_env_var_in_every_environment(env):
    pii = build_definitions(env).resources["pii"]
    assert isinstance(pii.key, dg.EnvVar)
    assert pii.key.env_var_name == "LAKEHOUSE_PII_KEY"


def test_every_asset_has_a_great_expectations_check():
    defs = build_definitions("local")
    graph = defs.resolve_asset_graph()
    checks_by_asset: dict[str, set[str]] = {}
    for ck in graph.asset_check_keys:
        checks_by_asset.setdefault(ck.asset_key.to_user_string(), set()).add(ck.name)
    missing = []
    # materializable only: a dependency defined on another branch (demand_features before the
    # Spark work merges) appears here as an external stub that this location does not build
    for key in graph.materializable_asset_keys:
        name = key.to_user_string()
        suite = SUITES.get(name)
        if suite is None or suite.check_name not in checks_by_asset.get(name, set()):
            missing.append(name)
    assert not missing, f"assets without a Great Expectations check: {missing}"


PROBE = r"""
import json, os, sys
seen = []
class Spy(dict):
    def __getitem__(self, k):
        seen.append(k); return super().__getitem__(k)
    def get(self, k, d=None):
        seen.append(k); return super().get(k, d)
    def __contains__(self, k):
        seen.append(k); return super().__contains__(k)
os.environ = Spy(os.environ)
import pipelines.definitions
words = ("SECRET", "KEY", "TOKEN", "PASSWORD", "CREDENTIAL")
secretish = [k for k in seen if any(w in k for w in words)]
print(json.dumps({"pyspark": "pyspark" in sys.modules, "gx": "great_expectations" in sys.modules,
                  "mlflow": "mlflow" in sys.modules, "secrets_read": secretish}))
"""


def test_import_starts_no_jvm_and_reads_no_secret():
    env = {**os.environ, "LAKEHOUSE_ENV": "prod", "AWS_SECRET_ACCESS_KEY": "must-not-be-read"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe == {"pyspark": False, "gx": False, "mlflow": False, "secrets_read": []}


def test_dagster_cli_validates_the_workspace():
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
