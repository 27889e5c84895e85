"""Asset backfills from the command line: what Dagster's UI launches, without the UI.

``launch`` turns an asset selection and a date range into the partitions of each asset over
its own partitioning and sends them to Dagster's public GraphQL mutation
``launchPartitionBackfill`` (``partitionsByAssets``), the one the web UI's "Materialize
selected" sends. With ``webserver`` the mutation is posted to that running webserver;
without, Dagster's own ``dagster-graphql`` command runs it against the project's workspace and
Dagster instance (``lakehouse/instance.py``), so no webserver has to be up. The daemon
(``dagster-daemon run`` or ``dg dev``) then runs the backfill, honouring each asset's backfill
policy, and shows it under Overview -> Backfills. ``report`` and ``wait`` read its outcome
back through the instance.

A partitioned asset job is backfilled the same way, over the assets it selects
(:func:`job_assets`). Dagster's ``dagster job backfill`` is not used for them: it launches one
run per partition itself, whatever the assets' backfill policies, and marks the backfill
complete as soon as the runs are submitted, while the webserver reads a job whose assets are
single-run as a ranged backfill and fails on those per-partition runs (docs/operating.md).
"""

import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import dagster as dg

from assets.automation import SPARK_TAG
from assets.partitions import keys_between
from pipelines.lake.config.environment import process_environment

CLI_TAG = "lakehouse/backfill_cli"
JOB_TAG = "lakehouse/backfill_job"  # the partitioned job a backfill stands for
# Dagster's BulkActionStatus values after which a backfill does nothing more.
TERMINAL = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"})
# A title Dagster accepts: at most 100 characters, none of % * " (dagster's is_valid_title).
MAX_TITLE = 100

LAUNCH = """
mutation LakehouseBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""

# What the asset graph is to this module: Definitions.resolve_asset_graph()'s result, whose
# class Dagster does not export; only get(), asset_nodes and AssetSelection.resolve use it.
AssetGraph = Any
# Partition keys per asset; None for an unpartitioned asset (materialized whole).
Targets = dict[dg.AssetKey, list[str] | None]


def resolve_selection(graph: AssetGraph, selection: str) -> list[dg.AssetKey]:
    """Asset keys of a Dagster selection string (``group:bronze``, ``key:a+``, ``a b``...)."""
    try:
        with warnings.catch_warnings():  # Dagster's beta notice for group:/tag: syntax
            warnings.simplefilter("ignore", category=dg.BetaWarning)
            parsed = dg.AssetSelection.from_string(selection)
        keys = parsed.resolve(graph)
    except Exception as exc:  # Dagster raises several types for a bad selection
        raise ValueError(f"--assets {selection!r} is not a valid asset selection: {exc}") from None
    # an asset made with others in one step (bronze_events with bronze_quarantine) brings
    # them: Dagster refuses a backfill of part of a multi-asset that cannot be split
    together = {t for k in keys for t in graph.get(k).execution_set_asset_keys}
    materializable = sorted(k for k in keys | together if graph.get(k).is_materializable)
    if not materializable:
        known = sorted({n.group_name for n in graph.asset_nodes if n.group_name} - {"default"}) or [
            "(none)"
        ]
        raise ValueError(
            f"--assets {selection!r} selects no materializable asset; groups: {', '.join(known)}"
        )
    return materializable


def job_assets(defs: dg.Definitions, graph: AssetGraph, job_name: str) -> list[dg.AssetKey]:
    """The materializable assets a partitioned asset job selects (what its runs materialize)."""
    jobs = {job.name: job for job in defs.jobs or []}
    job = jobs.get(job_name)
    if job is None:
        raise ValueError(f"--job {job_name!r} is not a job here; jobs: {', '.join(sorted(jobs))}")
    # define_asset_job's class is not public; an asset job is known by its asset selection
    selection = getattr(job, "selection", None)
    if not isinstance(selection, dg.AssetSelection):
        raise ValueError(
            f"--job {job_name} runs ops, not assets: it has no asset partitions to backfill "
            "(its partitions are its runs; launch them from the job's page in the UI)"
        )
    if defs.resolve_job_def(job_name).partitions_def is None:
        raise ValueError(f"--job {job_name} is not partitioned: there is no range to backfill")
    keys = sorted(k for k in selection.resolve(graph) if graph.get(k).is_materializable)
    if not keys:
        raise ValueError(f"--job {job_name} selects no materializable asset")
    return keys


def target_subset(
    graph: AssetGraph,
    keys: list[dg.AssetKey],
    start: dt.date,
    end: dt.date,
    regions: Collection[str] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> Targets:
    """Every selected asset's partitions overlapping the dates; unpartitioned assets whole."""
    out: Targets = {}
    for key in keys:
        pdef = graph.get(key).partitions_def
        if pdef is None:
            out[key] = None
            continue
        wanted = keys_between(pdef, start, end, regions, instance)
        if not wanted:
            every = pdef.get_partition_keys(dynamic_partitions_store=instance)
            span = f"its partitions run {every[0]} .. {every[-1]}" if every else "it has none"
            raise ValueError(
                f"{key.to_user_string()} has no partition between {start} and {end} "
                f"({span}); check --from/--to and LAKEHOUSE_START_DATE"
            )
        out[key] = list(wanted)
    return out


def backfill_params(
    targets: Targets, tags: dict[str, str], title: str, description: str
) -> dict[str, Any]:
    """``LaunchBackfillParams`` of the GraphQL schema: each asset with its own partitions."""
    by_asset = []
    for key, partitions in sorted(targets.items()):
        selector: dict[str, Any] = {"assetKey": {"path": list(key.path)}}
        if partitions is not None:  # a range per key: any subset of any partitioning
            selector["partitions"] = {"ranges": [{"start": k, "end": k} for k in partitions]}
        by_asset.append(selector)
    return {
        "partitionsByAssets": by_asset,
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        "title": title,
        "description": description,
    }


def _graphql_bin() -> str:
    """Dagster's ``dagster-graphql`` command, next to this interpreter (the venv's) or on PATH."""
    beside = Path(sys.executable).with_name("dagster-graphql")
    found = str(beside) if beside.exists() else shutil.which("dagster-graphql")
    if found is None:
        raise RuntimeError("dagster-graphql is not installed (it comes with dagster-webserver)")
    return found


def _post(webserver: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The mutation posted to a running webserver's /graphql."""
    body = json.dumps({"query": LAUNCH, "variables": variables}).encode()
    url = webserver.rstrip("/") + "/graphql"
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return dict(json.loads(resp.read()))
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"the Dagster webserver at {webserver} did not answer: {exc}") from None


def _in_process(
    instance: dg.DagsterInstance, workspace: Path, variables: dict[str, Any], env: str | None
) -> dict[str, Any]:
    """The mutation run by ``dagster-graphql`` against the workspace and the instance's home."""
    environ = {**process_environment(), "DAGSTER_HOME": str(instance.root_directory)}
    if env is not None:
        environ["LAKEHOUSE_ENV"] = env
    with tempfile.TemporaryDirectory() as tmp:
        answer = Path(tmp) / "answer.json"
        cmd = [_graphql_bin(), "-w", str(workspace), "-t", LAUNCH, "-v", json.dumps(variables)]
        done = subprocess.run(
            [*cmd, "-o", str(answer)],
            cwd=workspace.parent,
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not answer.exists():
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise RuntimeError(f"dagster-graphql -w {workspace} failed: {lines[-1]}")
        return dict(json.loads(answer.read_text()))


def _backfill_id(answer: dict[str, Any]) -> str:
    """The new backfill's id from the mutation's answer, or its error in one line."""
    if answer.get("errors"):
        raise RuntimeError(f"launchPartitionBackfill failed: {answer['errors'][0].get('message')}")
    result = (answer.get("data") or {}).get("launchPartitionBackfill") or {}
    if result.get("__typename") != "LaunchBackfillSuccess":
        why = result.get("message") or json.dumps(result)
        raise RuntimeError(f"launchPartitionBackfill: {result.get('__typename')}: {why}")
    return str(result["backfillId"])


def launch(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    selection: str | None,
    start: dt.date,
    end: dt.date,
    regions: Collection[str] | None = None,
    title: str | None = None,
    job: str | None = None,
    *,
    workspace: Path | None = None,
    webserver: str | None = None,
    env: str | None = None,
) -> str:
    """Launch an asset backfill for the daemon to run through GraphQL; returns its id.

    It covers the assets of ``selection`` or, given ``job``, those of that partitioned asset
    job (one of the two), with the job's run tags. The mutation goes to ``webserver`` (a URL)
    when given, else ``dagster-graphql`` runs it against ``workspace`` (the project's
    workspace.yaml by default, loading ``defs``' code location in environment ``env``).
    """
    if (selection is None) == (job is None):
        raise ValueError("give either --assets or --job")
    graph = defs.resolve_asset_graph()
    tags = {CLI_TAG: "true"}
    if job is not None:
        keys = job_assets(defs, graph, job)
        definition = defs.resolve_job_def(job)
        tags.update({k: str(v) for k, v in (definition.run_tags or {}).items()})
        tags[JOB_TAG] = job
        what = f"--job {job}"
    else:
        keys = resolve_selection(graph, str(selection))
        what = f"--assets {selection}"
    targets = target_subset(graph, keys, start, end, regions, instance)
    if any("dagster/kind/spark" in graph.get(k).tags for k in keys):
        tags[SPARK_TAG] = "true"
    if title is None:  # a selection may hold what Dagster's titles refuse (key:raw*)
        title = "".join(c for c in f"lakehouse backfill {what} {start}..{end}" if c not in '%*"')
        title = title[:MAX_TITLE]
    description = f"{what} --from {start} --to {end}" + (
        f" --regions {','.join(sorted(regions))}" if regions else ""
    )
    variables = {"params": backfill_params(targets, tags, title, description)}
    if webserver is not None:
        return _backfill_id(_post(webserver, variables))
    from pipelines.lake.config import PROJECT_ROOT

    where = workspace or PROJECT_ROOT / "workspace.yaml"
    return _backfill_id(_in_process(instance, where, variables, env))


def _count(subset: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in subset.asset_keys:
        name = key.to_user_string()
        if key in subset.non_partitioned_asset_keys:
            out[name] = 1
        else:
            out[name] = len(subset.get_partitions_subset(key))
    return out


def report(instance: dg.DagsterInstance, defs: dg.Definitions, backfill_id: str) -> dict[str, Any]:
    """Status, partitions requested/materialized/failed per asset, runs and check results."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise ValueError(
            f"no backfill {backfill_id!r} in the instance at {instance.root_directory}"
        )
    data = backfill.get_asset_backfill_data(defs.resolve_asset_graph())
    runs = instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))
    passed = failed_checks = 0
    by_check: dict[str, dict[str, int]] = {}
    for run in runs:
        for rec in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records:
            ev = rec.event_log_entry.dagster_event
            if ev is None:
                continue
            evaluation = ev.asset_check_evaluation_data
            outcome = "passed" if evaluation.passed else "failed"
            if evaluation.passed:
                passed += 1
            else:
                failed_checks += 1
            counts = by_check.setdefault(evaluation.check_name, {"passed": 0, "failed": 0})
            counts[outcome] += 1
    run_status: dict[str, int] = {}
    for run in runs:
        run_status[run.status.value] = run_status.get(run.status.value, 0) + 1
    requested = _count(data.target_subset)
    materialized = _count(data.materialized_subset)
    failed = _count(data.failed_and_downstream_subset)
    return {
        "backfill_id": backfill_id,
        "status": backfill.status.value,
        "title": backfill.title,
        "partitions": {
            "requested": sum(requested.values()),
            "materialized": sum(materialized.values()),
            "failed_or_downstream": sum(failed.values()),
            "by_asset": {
                name: {
                    "requested": n,
                    "materialized": materialized.get(name, 0),
                    "failed_or_downstream": failed.get(name, 0),
                }
                for name, n in sorted(requested.items())
            },
        },
        "runs": {"total": len(runs), "by_status": run_status},
        "checks": {"passed": passed, "failed": failed_checks, "by_check": by_check},
    }


def is_done(status: str) -> bool:
    """True once the backfill reached a terminal status."""
    return status in TERMINAL


# A daemon whose last heartbeat is older than this is taken as not running.
DAEMON_SILENT_AFTER = 60.0


def daemon_running(instance: dg.DagsterInstance, within: float = DAEMON_SILENT_AFTER) -> bool:
    """Whether a daemon beat on this instance in the last ``within`` seconds."""
    beats = instance.get_daemon_heartbeats()
    return any(time.time() - beat.timestamp <= within for beat in beats.values())


def wait(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    backfill_id: str,
    timeout: float,
    poll: float = 2.0,
    on_report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll until the backfill is terminal (raises TimeoutError with the last report if not).

    ``on_report`` sees each report polled (for progress).
    """
    deadline = time.monotonic() + timeout
    while True:
        out = report(instance, defs, backfill_id)
        if on_report is not None:
            on_report(out)
        if is_done(out["status"]):
            return out
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"backfill {backfill_id} still {out['status']} after {timeout:.0f}s "
                f"({out['partitions']['materialized']}/{out['partitions']['requested']} "
                "partitions materialized); is the daemon running (`make ui` or "
                "`dagster-daemon run -w workspace.yaml`) on this DAGSTER_HOME?"
            )
        time.sleep(poll)
