"""The deployment files, checked offline: the image, the Helm values, the instance, the variables.

Nothing here builds the image, installs the chart or talks to Kubernetes (docs/deploying.md says
what is and is not tested): the checks are those a file can pass or fail on its own.
"""

import ast
import json
import re
import shlex
import tomllib
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.definitions.assets.graph.remote_asset_graph import RemoteWorkspaceAssetGraph
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import USER_DEFINED_K8S_CONFIG_KEY, construct_dagster_k8s_job

from assets.sovereignty import declared, reads_personal_data
from jobs.jurisdiction import pii_chain, region_scoped
from lakehouse.definitions import build_definitions
from pipelines.lake import tables as tables_registry
from pipelines.lake.config import ConfigError, load_config
from pipelines.lake.tables import holds_personal_data
from pipelines.sovereignty.compute import (
    COMPUTE_ENV,
    ComputeSovereigntyError,
    check_compute,
    worker_jurisdictions,
)

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCS = ROOT / "docs" / "deploying.md"
PACKAGES = ("pipelines", "assets", "resources", "jobs", "data_quality", "lakehouse", "devtools")
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


def _container_context(deployment: dict[str, Any]) -> dict[str, Any]:
    """The container context the deployment's code server hands to every run it launches."""
    args = deployment["dagsterApiGrpcArgs"]
    return json.loads(args[args.index("--container-context") + 1])


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
    concurrency = values["concurrency"]
    assert set(concurrency) <= {"pools", "runs"}
    assert set(concurrency["pools"]) <= {"defaultLimit", "granularity", "opGranularityRunBuffer"}
    assert set(concurrency["runs"]) <= {"maxConcurrentRuns", "tagConcurrencyLimits"}
    for limit in concurrency["runs"]["tagConcurrencyLimits"]:
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
        # the chart's context would replace none of ours but carries no node selector: off
        assert d["includeConfigInLaunchedRuns"] == {"enabled": False}
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


def _snake(limits: dict[str, Any]) -> dict[str, Any]:
    """The chart's `concurrency:` values as its template writes them into dagster.yaml."""
    runs, pools = limits["runs"], limits["pools"]
    return {
        "pools": {"default_limit": pools["defaultLimit"]},
        "runs": {
            "max_concurrent_runs": runs["maxConcurrentRuns"],
            "tag_concurrency_limits": runs["tagConcurrencyLimits"],
        },
    }


def _queue(tmp_path: Path, concurrency: dict[str, Any]) -> Any:
    """The run queue Dagster itself reads from an instance with these limits."""
    (tmp_path / "dagster.yaml").write_text(
        yaml.safe_dump({"telemetry": {"enabled": False}, "concurrency": concurrency})
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
    return config


def test_helm_and_the_instance_file_queue_runs_with_the_same_limits(tmp_path):
    routing = load_config("prod").compute.routing_tag
    values = _values()
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert not queued, "limits live in `concurrency:` only (the chart refuses both)"
    helm = _snake(values["concurrency"])
    prod = yaml.safe_load((ROOT / "deploy" / "dagster-prod.yaml").read_text())["concurrency"]
    assert helm == prod
    (tmp_path / "helm").mkdir()
    (tmp_path / "prod").mkdir()
    from_helm, from_prod = _queue(tmp_path / "helm", helm), _queue(tmp_path / "prod", prod)
    for config in (from_helm, from_prod):
        queue = config.run_queue_config
        assert queue.max_concurrent_runs == 10
        assert {"key": routing, "value": {"applyLimitPerUniqueValue": True}, "limit": 6} in (
            queue.tag_concurrency_limits
        )
        assert {"key": "lakehouse/spark", "value": "true", "limit": 1} in (
            queue.tag_concurrency_limits
        )
        assert config.pool_config.default_pool_limit == 1
    assert from_helm.run_queue_config == from_prod.run_queue_config


# --- every run a location can create lands on its jurisdiction's pool ------------------------

IMAGE = "REGISTRY/multicloud-lakehouse:0.1.0"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: offline, user: {token: none}}]
contexts: [{name: offline, context: {cluster: offline, user: offline}}]
current-context: offline
"""


class _NoCluster:
    """The batch API the launcher is given: no test here talks to Kubernetes."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the offline test called Kubernetes ({name})")


def _launcher(tmp_path: Path) -> K8sRunLauncher:
    """The chart's K8sRunLauncher with these values (its defaults for what they leave out)."""
    config = _values()["runLauncher"]["config"]["k8sRunLauncher"]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    return K8sRunLauncher(
        service_account_name="lakehouse-dagster",  # the chart's own account: runs must not keep it
        instance_config_map="lakehouse-dagster-instance",
        dagster_home="/opt/dagster/dagster_home",
        job_namespace="lakehouse",
        load_incluster_config=False,
        kubeconfig_file=str(kubeconfig),
        image_pull_policy=config["imagePullPolicy"],
        env_config_maps=config["envConfigMaps"],
        env_secrets=config["envSecrets"],
        env_vars=config["envVars"],
        volume_mounts=config["volumeMounts"],
        volumes=config["volumes"],
        labels=config["labels"],
        fail_pod_on_run_failure=config["failPodOnRunFailure"],
        k8s_client_batch_api=_NoCluster(),
        k8s_client_core_api=_NoCluster(),
    )


def _runs(defs: dg.Definitions) -> list[tuple[str, str, dict[str, str]]]:
    """``(what launches it, job, run tags)`` of every run the location's definitions can create.

    Every job (the implicit asset job and each sensor's anonymous job included), each schedule's
    and each sensor's target with the definition's run tags; sensors add the routing tag per
    request, so each is taken with each value it may set.
    """
    repo = defs.get_repository_def()
    runs = []
    for job in repo.get_all_jobs():
        runs.append(("job", job.name, dict(job.run_tags or {})))
    for schedule in repo.schedule_defs:
        job = repo.get_job(schedule.job_name)
        tags = {**(job.run_tags or {}), **(schedule.tags or {})}  # a schedule's tags go on its runs
        runs.append((f"schedule {schedule.name}", job.name, tags))
    for sensor in repo.sensor_defs:
        for target in sensor.targets:
            job = repo.get_job(target.job_name)
            runs.append((f"sensor {sensor.name}", job.name, dict(job.run_tags or {})))
    return runs


def _pod(
    launcher: K8sRunLauncher, context: dict[str, Any], job_name: str, tags: dict[str, str]
) -> Any:
    """The pod spec the launcher would submit for this run (dagster-k8s's own resolution)."""
    origin = JobPythonOrigin(
        job_name,
        RepositoryPythonOrigin(
            executable_path="/usr/local/bin/python",
            code_pointer=ModuleCodePointer("lakehouse.definitions", "defs", None),
            container_image=IMAGE,
            container_context=context,
        ),
    )
    run = DagsterRun(job_name=job_name, run_id="0" * 8, tags=tags, job_code_origin=origin)
    resolved = launcher.get_container_context_for_run(run)
    job = construct_dagster_k8s_job(
        job_config=resolved.get_k8s_job_config(job_image=IMAGE, run_launcher=launcher),
        args=["dagster", "api", "execute_run"],
        job_name="dagster-run-0",
        pod_name="dagster-run-0",
        component="run_worker",
        user_defined_k8s_config=resolved.run_k8s_config,
        labels={"dagster/job": job_name},
    )
    return job.spec.template.spec


def pool_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Per location: the pool its runs land on, checked for every run its definitions create."""
    launcher = _launcher(tmp_path)
    logs = _values()["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    store = f"s3://{logs['config']['s3ComputeLogManager']['bucket']}"
    # a pool whose own cloud is AWS writes with its Secret's keys; the others have none
    cfg = load_config("prod")
    aws = {loc.jurisdiction for loc in cfg.locations.values() if loc.cloud == "aws"}
    writers = {j: "secret" if j in aws else "web identity" for j in cfg.jurisdictions}
    rows = []
    for deployment in _deployments():
        env = _env(deployment)
        jurisdiction = env[COMPUTE_ENV]
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        defs = build_definitions("prod")
        context = _container_context(deployment)
        pods = []
        for launched_by, job_name, tags in _runs(defs):
            assert USER_DEFINED_K8S_CONFIG_KEY not in tags, (launched_by, job_name)
            for routing in (jurisdiction, "any"):  # what the location's sensors may tag
                spec = _pod(
                    launcher, context, job_name, {**tags, "lakehouse/jurisdiction": routing}
                )
                pods.append((launched_by, job_name, spec))
        for launched_by, job_name, spec in pods:
            where = f"{deployment['name']}: {launched_by} -> {job_name}"
            assert spec.node_selector == {"lakehouse/jurisdiction": jurisdiction}, where
            tolerations = [t.to_dict() for t in spec.tolerations or []]
            taint = {"key": "lakehouse/jurisdiction", "value": jurisdiction, "effect": "NoSchedule"}
            assert tolerations == [{**taint, "operator": "Equal", "toleration_seconds": None}], (
                where  # its pool's taint tolerated, and no other pool's
            )
            assert spec.service_account_name == f"lakehouse-{jurisdiction.lower()}-runs", where
            (container,) = spec.containers
            declared = {e.name: e.value for e in container.env or []}
            assert declared[COMPUTE_ENV] == jurisdiction, where
            assert declared["LAKEHOUSE_ENV"] == "prod", where
            secrets = [s.secret_ref.name for s in container.env_from or [] if s.secret_ref]
            assert secrets == [f"lakehouse-{jurisdiction.lower()}-credentials"], where
            assert _log_writer(spec, declared) == writers[jurisdiction], where
        rows.append(
            {
                "location": deployment["name"],
                "nodeSelector": f"lakehouse/jurisdiction={jurisdiction}",
                "toleration": f"lakehouse/jurisdiction={jurisdiction}:NoSchedule",
                "serviceAccount": f"lakehouse-{jurisdiction.lower()}-runs",
                "logStore": f"{store} ({writers[jurisdiction]})",
                "runs": len(pods),
            }
        )
    return rows


def _log_writer(spec: Any, env: dict[str, str]) -> str:
    """How a run pod writes compute logs to S3: its Secret's keys, or a web-identity role.

    The web identity needs the role, and the token file on a projected service-account token
    for STS (botocore's chain reads both); without them the pod has only its Secret.
    """
    if "AWS_ROLE_ARN" not in env:
        return "secret"
    token = Path(env["AWS_WEB_IDENTITY_TOKEN_FILE"])
    (container,) = spec.containers
    mounts = {m.name: m.mount_path for m in container.volume_mounts or []}
    for volume in spec.volumes or []:
        if volume.projected is None or mounts.get(volume.name) != str(token.parent):
            continue
        for source in volume.projected.sources:
            sa_token = source.service_account_token
            if (
                sa_token
                and sa_token.audience == "sts.amazonaws.com"
                and sa_token.path == token.name
            ):
                return "web identity"
    raise AssertionError(f"AWS_ROLE_ARN without a mounted STS token at {token}")


def test_every_run_a_location_creates_lands_on_its_jurisdiction_s_pool(tmp_path, monkeypatch):
    rows = pool_table(tmp_path, monkeypatch)
    assert [r["location"] for r in rows] == [d["name"] for d in _deployments()]
    assert all(r["runs"] > 0 for r in rows)
    width = max(len(r["location"]) for r in rows)
    for r in rows:  # the table the report pastes (pytest -s)
        print(f"{r['location']:<{width}}  {r['nodeSelector']:<31} {r['toleration']:<44} "
              f"{r['serviceAccount']:<22} {r['logStore']}  ({r['runs']} runs)")  # fmt: skip


def test_the_container_context_repeats_the_deployment_s_settings():
    for d in _deployments():
        k8s = _container_context(d)["k8s"]
        assert k8s["env"] == d["env"], d["name"]
        assert k8s["env_secrets"] == [s["name"] for s in d["envSecrets"]], d["name"]
        assert k8s["labels"] == d["labels"] and k8s["resources"] == d["resources"], d["name"]
        assert k8s.get("volumes") == d.get("volumes"), d["name"]
        assert k8s.get("volume_mounts") == d.get("volumeMounts"), d["name"]
        pod = k8s["run_k8s_config"]["pod_spec_config"]
        assert pod["node_selector"] == d["nodeSelector"], d["name"]
        assert pod["tolerations"] == d["tolerations"], d["name"]
        # dagster-k8s's own schema accepts it
        K8sContainerContext.create_from_config(_container_context(d))


def test_no_code_sets_the_k8s_config_tag_that_would_move_a_run_off_its_pool():
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            assert USER_DEFINED_K8S_CONFIG_KEY not in path.read_text(), path


# --- what each prod location defines -----------------------------------------------------------


def _locations(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, dg.Definitions]]:
    """Each Helm deployment's definitions, built with its own environment."""
    out = {}
    for d in _deployments():
        for name, value in _env(d).items():
            monkeypatch.setenv(name, value)
        out[d["name"]] = (_env(d)[COMPUTE_ENV], build_definitions("prod"))
    return out


def test_each_key_has_one_materializable_definition_and_region_keys_name_their_jurisdiction(
    monkeypatch,
):
    cfg = load_config("prod")
    where: dict[str, list[str]] = {}
    for name, (jurisdiction, defs) in _locations(monkeypatch).items():
        for asset in defs.assets or []:
            assert isinstance(asset, dg.AssetsDefinition)
            for key in asset.keys:
                where.setdefault(key.to_user_string(), []).append(name)
                if region_scoped(asset):  # its own jurisdiction's, partitioned by its regions
                    assert key.path[0] == jurisdiction.lower(), (name, key)
                    part = asset.partitions_def
                    if isinstance(part, dg.MultiPartitionsDefinition):
                        regions = part.get_partitions_def_for_dimension("region")
                        found = {
                            cfg.jurisdiction_of_region(r) for r in regions.get_partition_keys()
                        }
                    else:  # one partition per location (the erasure receipts)
                        found = {cfg.location(n).jurisdiction for n in part.get_partition_keys()}
                    assert found == {jurisdiction}, (name, key)
    assert {k: v for k, v in where.items() if len(v) > 1} == {}
    home = f"lakehouse-{cfg.home.jurisdiction.lower()}"
    scoped = {k for k in where if "/" in k}
    tables = ("bronze_events", "bronze_quarantine", "silver_events", "gold_daily_demand")
    assert scoped == {
        f"{j.lower()}/{t}"
        for j in cfg.jurisdictions
        for t in (*tables, "region_health", "erasure_receipts")
    }
    for key in set(where) - scoped:  # replicas, features, the model, scoring, drift, roll-up
        assert where[key] == [home], key


def _workspace(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    """The prod locations loaded by Dagster's own code, and the asset graph its webserver builds.

    Each location is loaded as its code server loads it (the module, its deployment's
    environment); the graph is what the webserver and the daemon build from all of them, with
    the warnings they would log.
    """
    entries = {}
    with dg.instance_for_test() as instance:
        for d in _deployments():
            for name, value in _env(d).items():
                monkeypatch.setenv(name, value)
            origin = InProcessCodeLocationOrigin(
                loadable_target_origin=LoadableTargetOrigin(
                    module_name="lakehouse.definitions", working_directory=str(ROOT)
                ),
                location_name=d["name"],
            )
            entries[d["name"]] = SimpleNamespace(code_location=origin.create_location(instance))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            graph = RemoteWorkspaceAssetGraph.build(SimpleNamespace(code_location_entries=entries))
    return graph, [str(w.message) for w in seen]


def test_the_prod_workspace_loads_without_a_duplicate_key_and_its_lineage_joins(monkeypatch):
    graph, warned = _workspace(monkeypatch)
    assert warned == []  # no "Only one materialization node is allowed per asset key"
    keys = {k.to_user_string() for k in graph.materializable_asset_keys}
    # the ML home's assets read other locations' keys: each is defined, by its jurisdiction
    replica = graph.get(dg.AssetKey("gold_daily_demand_replica_azure_eu"))
    assert [k.to_user_string() for k in replica.parent_keys] == ["eu/gold_daily_demand"]
    health = graph.get(dg.AssetKey("lakehouse_health"))
    parents = {k.to_user_string() for k in health.parent_keys}
    assert {"us/region_health", "eu/region_health", "apac/region_health"} <= parents <= keys
    for key in graph.materializable_asset_keys:
        for parent in graph.get(key).parent_keys:
            assert parent.to_user_string() in keys, (key, parent)


def test_health_runs_in_prod_each_region_in_its_pool_rolled_up_pii_free_in_the_ml_home(
    monkeypatch,
):
    cfg = load_config("prod")
    assert not holds_personal_data("region_health")  # counts and reason kinds, no content
    assert not set(cfg.policy.pii_columns) & set(tables_registry.REGION_HEALTH.columns)
    found = []
    for name, (jurisdiction, defs) in _locations(monkeypatch).items():
        monkeypatch.setenv(COMPUTE_ENV, jurisdiction)
        worker = worker_jurisdictions(cfg)
        graph = defs.resolve_asset_graph()
        key = dg.AssetKey([jurisdiction.lower(), "region_health"])
        node = graph.get(key)
        tables = declared(node.tags, node.metadata)
        assert tables is not None and reads_personal_data(node.tags), name
        for loc in cfg.locations.values():  # its pool may read its own region's tables only
            if loc.jurisdiction == jurisdiction:
                check_compute(cfg, name, loc, tables.reads, tables.writes, worker)
                found.append(key.to_user_string())
            else:
                with pytest.raises(ComputeSovereigntyError):
                    check_compute(cfg, name, loc, tables.reads, tables.writes, worker)
        defs.resolve_sensor_def("jurisdiction_chain_sensor")  # its pool's sensor runs it:
        links = {link.child: link.parents for link in pii_chain(list(defs.assets or []))}
        assert dg.AssetKey([jurisdiction.lower(), "bronze_events"]) in links[key], name
        assert "region_health_job" in {j.name for j in defs.jobs or []}, name
        if jurisdiction == cfg.home.jurisdiction:
            rollup = graph.get(dg.AssetKey("lakehouse_health"))
            tables = declared(rollup.tags, rollup.metadata)
            assert tables is not None and not reads_personal_data(rollup.tags)
            for loc in cfg.locations.values():  # it reads every region's PII-free rows
                check_compute(cfg, name, loc, tables.reads, tables.writes, worker)
            assert rollup.automation_condition is not None
            found.append("lakehouse_health")
    assert sorted(found) == ["apac/region_health", "eu/region_health", "lakehouse_health",
                             "us/region_health"]  # fmt: skip


def test_no_asset_of_a_prod_location_is_refused_by_its_own_pool(monkeypatch):
    cfg = load_config("prod")
    for name, (jurisdiction, defs) in _locations(monkeypatch).items():
        monkeypatch.setenv(COMPUTE_ENV, jurisdiction)
        worker = worker_jurisdictions(cfg)
        served = [loc for loc in cfg.locations.values() if worker.serves(loc.jurisdiction)]
        for asset in defs.assets or []:
            assert isinstance(asset, dg.AssetsDefinition)
            for spec in asset.specs:
                tables = declared(spec.tags, spec.metadata)
                if tables is None:
                    continue
                step = f"{name}: {spec.key.to_user_string()}"
                if reads_personal_data(spec.tags):
                    # it runs here only for partitions of the regions this pool serves
                    assert region_scoped(asset), step
                    for loc in served:
                        check_compute(cfg, step, loc, tables.reads, tables.writes, worker)
                else:
                    check_compute(cfg, step, cfg.home, tables.reads, tables.writes, worker)
        jobs = {j.name for j in defs.jobs or []}
        sensors = {s.name for s in defs.sensors or []}
        assert {
            "ingest_job",
            "spark_job",
            "region_health_job",
            "jurisdiction_chain_sensor",
            "erasure_job",
            "erasure_request_sensor",
            "erasure_deadline_job",
        } <= (jobs | sensors), name
        if jurisdiction != cfg.home.jurisdiction:
            assert not {"sync_job", "retrain_job", "automation_sensor"} & (jobs | sensors), name


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
        if func.attr in ("getenv", "EnvVar", "env"):
            return node.args[:1]
    # dg.EnvVar, and the product's one reader (pipelines.lake.config.environment.env)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("EnvVar", "env")
    ):
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


def test_a_per_jurisdiction_location_serves_one_jurisdiction(monkeypatch):
    monkeypatch.setenv(COMPUTE_ENV, "US,EU")
    with pytest.raises(ConfigError, match="each code location serves one jurisdiction"):
        build_definitions("prod")
    monkeypatch.delenv(COMPUTE_ENV)  # a laptop loading prod: one location, keys unprefixed
    keys = {
        k.to_user_string()
        for k in build_definitions("prod").resolve_asset_graph().get_all_asset_keys()
    }
    assert {"bronze_events", "region_health", "lakehouse_health"} <= keys
