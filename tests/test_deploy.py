"""The deployment files, checked offline: the image, the Helm values, the instance, the variables.

Nothing here builds the image, installs the chart or talks to Kubernetes (docs/deploying.md says
what is and is not tested): the checks are those a file can pass or fail on its own.
"""

import ast
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from pipelines.lake.config import load_config
from pipelines.sovereignty.compute import COMPUTE_ENV, worker_jurisdictions

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCS = ROOT / "docs" / "deploying.md"
PACKAGES = ("pipelines", "assets", "resources", "jobs", "data_quality", "lakehouse")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")

# Keys the chart's schema (helm/dagster/schema, chart 1.13) accepts where these values set them.
CHART_TOP = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql",
    "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
    "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
    "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount", "global",
    "retention", "concurrency", "additionalInstanceConfig",
}  # fmt: skip
CHART_USER_DEPLOYMENT = {
    "name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs",
    "includeConfigInLaunchedRuns", "env", "envConfigMaps", "envSecrets", "annotations",
    "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName",
}  # fmt: skip
CHART_K8S_RUN_LAUNCHER = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure",
}  # fmt: skip
CHART_QUEUED_COORDINATOR = {
    "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
    "dequeueUseThreads",
}  # fmt: skip


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _deployments() -> list[dict[str, Any]]:
    return _values()["dagster-user-deployments"]["deployments"]


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment.get("env") or []}


# --- the Helm values --------------------------------------------------------------------------


def test_helm_values_parse_and_use_only_keys_the_chart_knows():
    values = _values()
    assert set(values) <= CHART_TOP
    for deployment in _deployments():
        assert set(deployment) <= CHART_USER_DEPLOYMENT, deployment["name"]
        assert isinstance(deployment["port"], int)
        assert isinstance(deployment["image"]["tag"], str)  # a number would be rendered wrong
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert set(launcher["config"]["k8sRunLauncher"]) <= CHART_K8S_RUN_LAUNCHER
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert set(queued) <= CHART_QUEUED_COORDINATOR
    for limit in queued["tagConcurrencyLimits"]:
        assert set(limit) <= {"key", "value", "limit"} and isinstance(limit["limit"], int)


def test_one_user_code_deployment_per_configured_jurisdiction(monkeypatch):
    cfg = load_config("prod")
    deployments = _deployments()
    declared = {_env(d)[COMPUTE_ENV]: d for d in deployments}
    assert sorted(declared) == cfg.jurisdictions
    assert len(deployments) == len(cfg.jurisdictions)
    # the ML home's location first: it owns the (PII-free) automation of shared asset keys
    assert _env(deployments[0])[COMPUTE_ENV] == cfg.home.jurisdiction
    for jurisdiction, d in declared.items():
        assert d["name"] == f"lakehouse-{jurisdiction.lower()}"
        assert d["dagsterApiGrpcArgs"][:2] == ["-m", "lakehouse.definitions"]
        assert d["includeConfigInLaunchedRuns"] == {"enabled": True}  # run pods inherit it all
        assert _env(d)["LAKEHOUSE_ENV"] == "prod"
        assert d["nodeSelector"] == {"lakehouse/jurisdiction": jurisdiction}
        assert {"key": "lakehouse/jurisdiction", "operator": "Equal", "value": jurisdiction,
                "effect": "NoSchedule"} in d["tolerations"]  # fmt: skip
        assert d["envSecrets"] == [{"name": f"lakehouse-{jurisdiction.lower()}-credentials"}]
        # the declaration is one the code accepts, and it serves exactly its jurisdiction
        monkeypatch.setenv(COMPUTE_ENV, _env(d)[COMPUTE_ENV])
        assert worker_jurisdictions(cfg).may_process == (jurisdiction,)


def test_each_location_s_spark_endpoint_is_set_in_the_pool_of_its_jurisdiction():
    cfg = load_config("prod")
    env_of = {_env(d)[COMPUTE_ENV]: _env(d) for d in _deployments()}
    for name, endpoint in cfg.compute.spark_endpoints.items():
        loc = cfg.location(name)
        for raw in endpoint.describe().values():
            for var in re.findall(r"\$\{([A-Z0-9_]+)\}", raw):
                assert var in env_of[loc.jurisdiction], (name, var)


def test_runs_queue_per_jurisdiction_in_helm_and_in_the_instance_file(tmp_path):
    routing = load_config("prod").compute.routing_tag
    limits = _values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"][
        "tagConcurrencyLimits"
    ]
    assert {"key": routing, "value": {"applyLimitPerUniqueValue": True}, "limit": 10} in limits
    # the instance file's run queue, as Dagster itself reads it (storage left out: it needs
    # PostgreSQL; the postgres integration test covers it)
    prod = yaml.safe_load((ROOT / "deploy" / "dagster-prod.yaml").read_text())
    kept = {k: prod[k] for k in ("concurrency", "run_monitoring", "run_retries", "retention")}
    (tmp_path / "dagster.yaml").write_text(
        yaml.safe_dump({"telemetry": {"enabled": False}, **kept})
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
    assert {"key": routing, "value": {"applyLimitPerUniqueValue": True}, "limit": 6} in (
        queue.tag_concurrency_limits
    )
    assert {"key": "lakehouse/spark", "value": "true", "limit": 1} in queue.tag_concurrency_limits


def test_the_workspace_without_kubernetes_has_one_location_per_jurisdiction():
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace-prod.yaml").read_text())
    names = [entry["grpc_server"]["location_name"] for entry in workspace["load_from"]]
    assert names == [d["name"] for d in _deployments()]


# --- the image --------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_image_copies_only_files_of_the_repository_and_every_package():
    copies = [shlex.split(args) for op, args in _instructions() if op in ("COPY", "ADD")]
    assert copies and all(op != "ADD" for op, _ in _instructions())
    sources = [src for args in copies for src in args[:-1] if not src.startswith("--")]
    for src in sources:
        assert src not in (".", "./"), "COPY . would put the lake, caches and secrets in the image"
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {s.rstrip("/") for s in sources}
    assert packages <= copied, f"packages the install would miss: {packages - copied}"
    assert {"pyproject.toml", "constraints.txt", "lakehouse.yaml", "spark-jars/pom.xml"} <= copied


def test_the_image_installs_with_the_pinned_constraints_and_python_of_the_project():
    runs = [args for op, args in _instructions() if op == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs
    for run in installs:
        assert "-c constraints.txt" in run
    assert any("scripts/setup_jars.py" in r for r in runs)  # the jars at build, not at run time
    (base,) = [args for op, args in _instructions() if op == "FROM"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert base.startswith("python:3.11") and ">=3.11" in requires
    env = _image_env()
    assert env["LAKEHOUSE_CONFIG"] == "/opt/lakehouse/lakehouse.yaml"
    assert COMPUTE_ENV not in env  # the deployment declares it, never the image


def _image_env() -> dict[str, str]:
    env = {}
    for op, args in _instructions():
        if op == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


# --- every variable the code reads is set, a secret, or documented as not for production ------


def _constants(trees: list[ast.Module]) -> dict[str, list[str]]:
    """Module-level names bound to an environment-variable name, or a tuple of them."""
    out: dict[str, list[str]] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
                if not isinstance(target, ast.Name):
                    continue
                items = value.elts if isinstance(value, ast.Tuple) else [value]
                names = [
                    i.value
                    for i in items
                    if isinstance(i, ast.Constant)
                    and isinstance(i.value, str)
                    and ENV_NAME.match(i.value)
                ]
                if names and len(names) == len(items):
                    out[target.id] = names
    return out


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _read_names(node: ast.AST) -> list[ast.AST]:
    """The argument naming the variable, for each way the code reads one."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        func = node.func
        if func.attr in ("get", "setdefault", "pop") and _is_environ(func.value):
            return node.args[:1]
        if func.attr in ("getenv", "EnvVar"):
            return node.args[:1]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "EnvVar":
        return node.args[:1]
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return [node.slice]
    if isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
        return [node.left]
    return []


def code_env_vars() -> set[str]:
    """Every environment variable the code location and the CLI read, by name."""
    trees = [ast.parse(path.read_text()) for pkg in PACKAGES for path in (ROOT / pkg).rglob("*.py")]
    constants = _constants(trees)
    found: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            for arg in _read_names(node):
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                elif isinstance(arg, ast.Name | ast.Attribute):
                    key = arg.id if isinstance(arg, ast.Name) else arg.attr
                    found.update(constants.get(key, []))
    # tuples of names a module saves and restores (MLflow's URIs around tracking calls)
    found.update(n for k, v in constants.items() if k.endswith("_ENV") for n in v)
    # ${NAME} placeholders of the production configuration, resolved when a client is built
    prod = yaml.safe_load((ROOT / "lakehouse.yaml").read_text())["environments"]["prod"]
    found.update(re.findall(r"\$\{([A-Z0-9_]+)\}", yaml.safe_dump(prod)))
    return {n for n in found if ENV_NAME.match(n)}


def documented_env() -> dict[str, str]:
    """The variables docs/deploying.md lists, with where each is set."""
    section = DOCS.read_text().split("### Every variable the code reads", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| ([a-z ]+?) \|", section, flags=re.M)
    return dict(rows)


def test_the_extractor_sees_the_ways_the_code_reads_variables():
    found = code_env_vars()
    # a literal, a constant, a constant of another module, an EnvVar, a yaml placeholder
    assert {"LAKEHOUSE_CONFIG", COMPUTE_ENV, "LAKEHOUSE_PII_KEY", "AWS_SECRET_ACCESS_KEY",
            "LAKEHOUSE_AWS_BUCKET", "LAKEHOUSE_SPARK_MASTER_EU"} <= found  # fmt: skip


def test_every_variable_the_code_reads_is_set_a_secret_or_documented():
    found = code_env_vars()
    documented = documented_env()
    assert found - set(documented) == set(), "read by the code, missing in docs/deploying.md"
    assert set(documented) - found == set(), "documented, but the code does not read it"
    kinds = set(documented.values())
    assert kinds <= {"values", "pool values", "secret", "image", "chart", "optional", "not in prod"}
    image = _image_env()
    envs = [_env(d) for d in _deployments()]
    for name, kind in documented.items():
        if kind == "values":  # every pool sets it
            assert all(name in env for env in envs), name
        elif kind == "pool values":  # the pools that need it set it
            assert any(name in env for env in envs), name
        elif kind == "secret":  # from the pool's Secret, never a plain value
            assert all(name not in env for env in envs), name
        elif kind == "image":
            assert name in image, name
        elif kind == "chart":  # the chart sets it on every pod
            assert name == "DAGSTER_HOME"
