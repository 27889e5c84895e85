"""The web UI over a little real data: every group's graph, GX check results, no error shown.

Starts ``dg dev`` (webserver and daemon, as ``make ui`` does) on a free port over a private
instance, drives Debian's headless Chromium over the DevTools protocol, and saves the
screenshots the README shows into docs/screenshots/.
"""

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.definitions import build_definitions
from tests.integration.browser import Browser, chromium_binary
from tests.integration.dagster_env import dagster_process, lakehouse, make_env
from tests.integration.servers import ROOT

pytestmark = pytest.mark.ui

DAY = dt.date(2026, 10, 5)
LOCATION = "lakehouse"  # the code location name (pyproject [tool.dg.project], workspace.yaml)
SHOTS = ROOT / "docs" / "screenshots"
ERROR_MARKERS = (
    "Something went wrong",
    "An unexpected error",
    "Unexpected error",
    "Error loading",
    "Failed to load",
    "PythonError",
    "Traceback",
    "DagsterInvalidDefinitionError",
)

IN_PROGRESS = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)


def _wait_for_ingestion(home: str, timeout: float = 600) -> None:
    """Wait until the landed-objects sensor's runs ingested the day in every region."""
    wanted = {f"{DAY.isoformat()}|{r}" for r in ("us", "eu", "apac")}
    deadline = time.time() + timeout
    with dg.DagsterInstance.from_config(home) as instance:
        while time.time() < deadline:
            done = instance.get_materialized_partitions(dg.AssetKey("bronze_events"))
            ingest = dg.RunsFilter(job_name="ingest_job", statuses=list(IN_PROGRESS))
            if wanted <= set(done) and instance.get_runs_count(ingest) == 0:
                failed = instance.get_runs(
                    dg.RunsFilter(job_name="ingest_job", statuses=[dg.DagsterRunStatus.FAILURE])
                )
                assert not failed, [r.run_id for r in failed]
                return
            time.sleep(2)
    raise TimeoutError(f"the sensor's ingestion runs did not finish within {timeout}s")


def _assert_no_error(page: str, text: str) -> None:
    shown = [m for m in ERROR_MARKERS if m in text]
    assert not shown, f"{page} shows an error ({shown}):\n{text[:3000]}"


def _dismiss_nudges(browser: Browser, wait: float = 8) -> None:
    """Close the first-visit "Join the Dagster community" dialog, which covers the page."""
    deadline = time.time() + wait
    while time.time() < deadline:
        if "Join the Dagster community" in browser.text():
            browser.click_text("Skip", selector="button")
            time.sleep(1)
            assert "Join the Dagster community" not in browser.text(), "dialog did not close"
            return
        time.sleep(0.5)


def _save(browser: Browser, name: str) -> Path:
    """Screenshot, reduced to a small palette PNG for the docs."""
    from PIL import Image

    path = SHOTS / name
    browser.screenshot(path)
    with Image.open(path) as img:
        img.convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path


@pytest.mark.skipif(chromium_binary() is None, reason="chromium missing: `make setup` installs it")
def test_ui_shows_every_group_checks_with_gx_results_and_no_error(tmp_path):
    env = make_env(tmp_path, dt.date(2026, 10, 1))
    landed = lakehouse(
        env, "simulate", "--from", DAY.isoformat(), "--to", DAY.isoformat(),
        "--events-per-day", "300", "--bad-rate", "0.01", "--corrupt-per-day", "1",
    )  # fmt: skip
    assert landed.returncode == 0, landed.stderr

    defs = build_definitions("local")
    graph = defs.resolve_asset_graph()
    nodes = [graph.get(k) for k in graph.toposorted_asset_keys if graph.get(k).is_materializable]
    groups = sorted({n.group_name for n in nodes})
    assert groups, "the definitions hold no asset group"
    checked = next(
        n.key.to_user_string()
        for n in nodes
        if any(c.name == f"{n.key.to_user_string()}_expectations" for c in n.check_keys)
    )

    with dagster_process(env, "dev", tmp_path / "dev.log") as port:
        base = f"http://127.0.0.1:{port}"
        # the little data: landed_objects_sensor (running by default) requests the ingestion
        _wait_for_ingestion(env["DAGSTER_HOME"])
        browser = Browser(tmp_path / "chromium")
        try:
            browser.open(f"{base}/locations")
            text = browser.wait_for_text(LOCATION, "Loaded", timeout=300)
            _assert_no_error("code locations", text)
            _dismiss_nudges(browser, wait=15)

            # the global asset graph: every group is drawn (with this many assets Dagster
            # collapses groups to their names; each group's own page below shows its assets)
            browser.open(f"{base}/asset-groups")
            text = browser.wait_for_text(*groups)
            _dismiss_nudges(browser, wait=3)
            _assert_no_error("asset graph", text)
            time.sleep(2)  # let the layout settle before the picture
            _save(browser, "asset-graph.png")

            # each group's own graph names the group and shows its assets
            for group in groups:
                browser.open(f"{base}/locations/{LOCATION}/asset-groups/{group}")
                # long names are drawn cut in the middle ("gold_daily_de…_replica_azure_eu")
                members = [
                    name if len(name) <= 24 else name[-16:]
                    for name in (n.key.to_user_string() for n in nodes if n.group_name == group)
                ]
                text = browser.wait_for_text(group, "Asset Group in", *members)
                _assert_no_error(f"group {group}", text)

            # an asset's checks show the Great Expectations result and its metadata
            check = f"{checked}_expectations"
            browser.open(f"{base}/assets/{checked}?view=checks")
            browser.wait_for_text(check)
            _dismiss_nudges(browser, wait=3)
            browser.click_text(check)
            text = browser.wait_for_text(
                "Great Expectations", "great_expectations_suite", f"{checked}_suite", "Passed"
            )
            _assert_no_error("asset checks", text)
            _save(browser, "asset-checks.png")

            # the asset's overview shows its freshness policy and state
            browser.open(f"{base}/assets/{checked}")
            text = browser.wait_for_text("Freshness policy", "Latest materialization")
            _assert_no_error("asset overview", text)
            _dismiss_nudges(browser, wait=3)
            _save(browser, "asset-overview.png")
        finally:
            browser.close()

    for name in ("asset-graph.png", "asset-checks.png", "asset-overview.png"):
        png = (SHOTS / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 400_000, name
