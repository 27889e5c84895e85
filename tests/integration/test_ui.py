"""The web UI over the data the demo produces, and the screenshots the docs show.

Runs ``lakehouse demo`` (what ``make run`` runs) over a few weeks into a private lake and
instance, refreshes the health view as of each of the last days (the trend its plots draw, as
its daily automation would have), then starts ``dg dev`` (webserver and daemon, as ``make ui``
does) and drives Debian's installed Chromium through Playwright. Screenshots go to
docs/screenshots/ (README and docs/operating.md show them).
"""

import datetime as dt
import os
import re
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest

from assets.partitions import date_region_key
from lakehouse.definitions import build_definitions
from lakehouse.demo import demo_bad_day
from tests.integration.browser import (
    chromium_binary,
    chromium_page,
    dismiss_dialogs,
    save_png,
    wait_for_text,
)
from tests.integration.dagster_env import dagster_process, lakehouse, make_env
from tests.integration.servers import ROOT

pytestmark = pytest.mark.ui

# The demo's own range: the model needs four weeks of features after four weeks of look-back.
START, END = dt.date(2026, 9, 1), dt.date(2026, 10, 28)
TREND_DAYS = 14
LOCATION = "lakehouse"  # the code location name (pyproject [tool.dg.project], workspace.yaml)
SHOTS = ROOT / "docs" / "screenshots"
GROUP = "ml"
HEALTH = "lakehouse_health"
DRIFT = "feature_drift"
SHOT_NAMES = (
    "lineage.png",
    "asset-graph.png",
    "bronze-partition.png",
    "asset-checks.png",
    "health-plots.png",
    "health-overview.png",
    "drift-heatmap.png",
)
GX_ASSET, GX_CHECK = "bronze_events", "bronze_events_expectations"
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


def _assert_no_error(page: str, text: str) -> None:
    shown = [m for m in ERROR_MARKERS if m in text]
    assert not shown, f"{page} shows an error ({shown}):\n{text[:3000]}"


def _health_trend(env: dict[str, str]) -> list[str]:
    """The health view of each of the last days, oldest first: one plot point per day."""
    saved = {k: os.environ.get(k) for k in ("LAKEHOUSE_HOME", "DAGSTER_HOME", "LAKEHOUSE_ENV")}
    os.environ.update({k: env[k] for k in saved})
    try:
        defs = build_definitions("local")
        job = defs.resolve_job_def("health_job")
        anomalies = []
        with dg.DagsterInstance.get() as instance:
            first = (END - dt.timedelta(days=TREND_DAYS - 1)).isoformat()
            region_job = defs.resolve_job_def("region_health_job")
            by_region = region_job.partitions_def
            assert isinstance(by_region, dg.MultiPartitionsDefinition)
            codes = by_region.get_partitions_def_for_dimension("region").get_partition_keys()
            regions = region_job.execute_in_process(
                instance=instance,
                tags={  # every region's days in one run, as the demo measures them
                    "dagster/asset_partition_range_start": str(date_region_key(first, codes[0])),
                    "dagster/asset_partition_range_end": str(
                        date_region_key(END.isoformat(), codes[-1])
                    ),
                },
            )
            assert regions.success
            for i in range(TREND_DAYS - 1, -1, -1):
                day = (END - dt.timedelta(days=i)).isoformat()
                result = job.execute_in_process(instance=instance, partition_key=day)
                assert result.success, day
                # every rule, compute seconds included: a range run's seconds are shared over
                # all the days it materialized, so re-measuring a day does not inflate it
                anomalies += [
                    str(e.metadata["alert"].value)
                    for e in result.get_asset_check_evaluations()
                    if not e.passed
                ]
        return anomalies
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _screenshots(env: dict[str, str], log: Path) -> None:
    """Start `dg dev` over the env's instance and take the docs' screenshots, checking each page."""
    defs = build_definitions("local")
    graph = defs.resolve_asset_graph()
    members = [
        k.to_user_string()
        for k in graph.toposorted_asset_keys
        if graph.get(k).group_name == GROUP and graph.get(k).is_materializable
    ]
    groups = sorted({graph.get(k).group_name for k in graph.toposorted_asset_keys})
    spike = f"{demo_bad_day(END).day}|{demo_bad_day(END).region}"
    drift_day = (END - dt.timedelta(days=7)).isoformat()  # the demo's injected eu drift

    with dagster_process(env, "dev", log) as port, chromium_page(1600, 1000) as page:
        base = f"http://127.0.0.1:{port}"
        page.goto(f"{base}/locations")
        text = wait_for_text(page, LOCATION, "Loaded", timeout_ms=300_000)
        _assert_no_error("code locations", text)
        dismiss_dialogs(page, wait_ms=15_000)

        # the whole lineage: every group, from bronze to the model and the operators' views
        page.goto(f"{base}/asset-groups")
        text = wait_for_text(page, "Global asset lineage", *groups)
        dismiss_dialogs(page)
        _assert_no_error("global lineage", text)
        page.wait_for_timeout(2000)  # the layout settles
        save_png(page, SHOTS / "lineage.png")

        # one group's graph, expanded: its assets with their latest materializations
        page.goto(f"{base}/locations/{LOCATION}/asset-groups/{GROUP}")
        shown = [n if len(n) <= 24 else n[-16:] for n in members]  # long names are cut
        text = wait_for_text(page, *shown, "Materialized")
        dismiss_dialogs(page)
        _assert_no_error(f"group {GROUP}", text)
        page.wait_for_timeout(2000)
        save_png(page, SHOTS / "asset-graph.png")

        # the apac incident's bronze partition: its counts, reconciled
        page.goto(f"{base}/assets/{GX_ASSET}?view=partitions&partition={quote(spike)}")
        text = wait_for_text(page, spike, "quarantined", "reconciled")
        dismiss_dialogs(page)
        _assert_no_error("bronze partition", text)
        save_png(page, SHOTS / "bronze-partition.png")

        # a Great Expectations check's latest evaluation: the suite's figures and the partition
        # (date|region) it judged
        page.goto(f"{base}/assets/{GX_ASSET}?view=checks&checkDetail={GX_CHECK}")
        wait_for_text(page, "Execution history")
        dismiss_dialogs(page)
        page.get_by_text("Execution history", exact=True).first.click()
        wait_for_text(page, "Target materialization", "Passed")
        rows = page.locator("table tbody tr")
        for i in range(min(rows.count(), 12)):  # the newest evaluation that validated rows
            rows.nth(i).locator("button").last.click()
            text = wait_for_text(page, "great_expectations_suite", "partition", "rows_validated")
            validated = re.search(r"rows_validated\s+(\d+)", text)
            if validated and int(validated.group(1)) > 0:
                break
            page.get_by_role("button", name="Close").last.click()
        assert re.search(r"\d{4}-\d{2}-\d{2}\|(us|eu|apac)", text), text[-2000:]
        _assert_no_error("asset checks", text)
        page.wait_for_timeout(1000)
        save_png(page, SHOTS / "asset-checks.png")

        # the health view's plots, one point per day (the asset is daily-partitioned)
        page.goto(f"{base}/assets/{HEALTH}")
        wait_for_text(page, "quarantine_pct/apac")
        dismiss_dialogs(page)
        page.get_by_role("button", name="Plots").first.click()
        text = wait_for_text(page, "quarantine_pct/apac", "events/us", "Partition")
        _assert_no_error("health plots", text)
        page.get_by_text("quarantine_pct/apac", exact=True).first.scroll_into_view_if_needed()
        page.wait_for_timeout(2000)
        save_png(page, SHOTS / "health-plots.png")

        # its latest materialization: the per-region table and the recommendations
        page.goto(f"{base}/assets/{HEALTH}?view=events")
        text = wait_for_text(page, "Health on", "recommendations")
        _assert_no_error("health events", text)
        page.get_by_text("Health on", exact=False).first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        save_png(page, SHOTS / "health-overview.png")

        # the drift heatmap of the first drifted day (features x segments, drifted cells marked)
        page.goto(f"{base}/assets/{DRIFT}?view=events&partition={drift_day}")
        text = wait_for_text(page, drift_day, "retrain_recommended", "[Show Markdown]")
        _assert_no_error("drift events", text)
        dismiss_dialogs(page)
        page.get_by_text("[Show Markdown]").first.click()
        page.get_by_role("dialog").locator("img").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        save_png(page, SHOTS / "drift-heatmap.png")


@pytest.mark.skipif(chromium_binary() is None, reason="chromium missing: `make setup` installs it")
def test_ui_over_demo_data_shows_graph_gx_results_and_health_plots(tmp_path):
    env = make_env(tmp_path, START)
    # `make run`'s own data: its days and its default volume
    demo = lakehouse(
        env, "demo", "--from", START.isoformat(), "--to", END.isoformat(), timeout=3000
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    anomalies = _health_trend(env)
    # the demo's injected apac incident, and nothing else
    assert len(anomalies) == 1 and "quarantine rate of apac" in anomalies[0], anomalies

    _screenshots(env, tmp_path / "dev.log")

    for name in SHOT_NAMES:
        png = (SHOTS / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 400_000, name
