"""The health view, its anomaly checks and alerts, and per-region freshness.

One small lake for the module: five weeks of three regions (a few hundred events a day)
landed by the simulator and ingested by the real ingest, with one injected bad day.
"""

import datetime as dt
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from assets.freshness import build_region_freshness, region_check_name
from assets.health import anomaly_check_name, build_health, build_region_health, rounded
from assets.keys import UNPREFIXED
from assets.partitions import build_partitions, date_region_key
from jobs.alerts import check_failure_message, check_failure_sensor, failed_checks_since
from lakehouse import cli
from pipelines.ingest import partition as ingest
from pipelines.ingest.reasons import reason_kind
from pipelines.lake import delta, tables
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from pipelines.operations import advice, anomaly, health
from pipelines.replication.deltalog import BYTES_PER_GB
from pipelines.replication.options import SyncOptions
from pipelines.replication.sync import sync
from pipelines.simulation.simulate import BadDay, SimulationConfig, land_day
from resources import LakeResource
from resources.pii import PiiKeyResource
from tests.helpers import date_partition_bytes, gold_rows, suites

START, END = dt.date(2026, 9, 7), dt.date(2026, 10, 7)  # 31 days: 3-4 weeks of baseline
BAD = BadDay("eu", dt.date(2026, 10, 1), 0.15)  # a producer breaks a field
GOLD_DAYS = (dt.date(2026, 10, 5), dt.date(2026, 10, 6))


def _bronze_resources() -> dict[str, object]:
    """The bronze asset's resources: the lake, and the key its closed days are clustered by."""
    return {"lake": LakeResource(), "pii": PiiKeyResource(key=os.environ["LAKEHOUSE_PII_KEY"])}


def _options(loc):
    return loc.storage_options()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's lake: landed, ingested, one gold partition of eu synced to the ML home."""
    home = tmp_path_factory.mktemp("health")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_HOME", str(home))
        mp.setenv("LAKEHOUSE_ENV", "local")
        cfg = load_config("local")
        sim = SimulationConfig(
            start=START,
            end=END,
            events_per_day=200,
            objects_per_day=4,
            bad_rate=0.004,
            bad_days=(BAD,),
        )
        for loc in cfg.locations.values():
            storage = open_storage(loc.root_uri(), loc.storage_options())
            for day in sim.days():
                land_day(sim, loc, storage, day, cfg.currency_of(loc.region))
                ingest.ingest_partition(loc, loc.storage_options(), day)
            # the last day's late events: a landing date still filling, never judged
            ingest.ingest_partition(loc, loc.storage_options(), END + dt.timedelta(days=1))
        eu = cfg.location("azure-eu")
        gold = eu.table_uri(tables.GOLD.name)
        part = {"date": GOLD_DAYS[0], "region": "eu"}
        delta.write_partition(gold, gold_rows(GOLD_DAYS[0]), part, {})
        replica = next(r for r in cfg.replicas() if r.source.name == "azure-eu")
        options = SyncOptions(table=tables.GOLD.name)
        report = sync(cfg, replica.source_uri, replica.target_uri, options)
        (home / "sync.json").write_text(json.dumps(report.as_dict()))
        # a newer gold day the replica has not received yet
        part = {"date": GOLD_DAYS[1], "region": "eu"}
        delta.write_partition(gold, gold_rows(GOLD_DAYS[1]), part, {})
        yield home


@pytest.fixture(scope="module")
def measured(lake: Path) -> health.Health:
    return health.measure(load_config("local"), START, END, _options)


def _row(measured: health.Health, region: str, day: dt.date) -> dict:
    return next(r for r in measured.records() if r["region"] == region and r["date"] == day)


def _folder_bytes(table: Path, folder: str) -> int:
    """Bytes of the partition's files the table's version holds (delta-rs's reading of the log:
    a closed day's rewrite leaves the files it replaced on disk until VACUUM)."""
    live = {Path(u).resolve() for u in DeltaTable(str(table)).file_uris()}
    return sum(p.stat().st_size for p in (table / folder).rglob("*.parquet") if p.resolve() in live)


@pytest.mark.parametrize(
    ("region", "day"),
    [("us", dt.date(2026, 9, 8)), ("eu", BAD.day), ("apac", dt.date(2026, 10, 7))],
)
def test_health_figures_equal_independent_counts(lake, measured, region, day):
    cfg = load_config("local")
    loc = cfg.location_for_region(region)
    part = {"landing_date": day, "region": region}
    bronze = delta.read_partition(loc.table_uri(tables.BRONZE.name), {}, part)
    quarantine = delta.read_partition(loc.table_uri(tables.QUARANTINE.name), {}, part)
    row = _row(measured, region, day)
    assert row["ingested"] == bronze.num_rows > 0
    assert row["quarantined"] == quarantine.num_rows > 0
    rate = quarantine.num_rows / (bronze.num_rows + quarantine.num_rows)
    assert row["quarantine_rate"] == pytest.approx(rate)
    reasons = Counter(reason_kind(r) for r in quarantine.column("reason").to_pylist())
    assert row["top_reasons"] == dict(reasons.most_common(health.TOP_REASONS))
    folder = f"landing_date={day}/region={region}"
    on_disk = {
        t: _folder_bytes(Path(loc.table_uri(t)), folder)
        for t in (tables.BRONZE.name, tables.QUARANTINE.name, tables.LEDGER.name)
    }
    assert {k: row["bytes_by_table"][k] for k in on_disk} == on_disk
    price = cfg.storage_price(loc)
    assert row["storage_usd_month"] == pytest.approx(sum(on_disk.values()) / BYTES_PER_GB * price)
    assert row["ingested_at"] is not None and row["freshness_hours"] >= 0


def test_egress_and_replica_lag_follow_the_sync(lake, measured):
    cfg = load_config("local")
    report = json.loads((lake / "sync.json").read_text())
    synced = _row(measured, "eu", GOLD_DAYS[0])
    assert synced["egress_route"] == "azure-eu->aws-us"
    # the sync also copied the Delta log's commits: a route's overhead, not a day's data
    log = Path(report["target"]) / "_delta_log"
    log_bytes = sum(p.stat().st_size for p in log.iterdir() if p.is_file())
    assert synced["egress_bytes"] == report["bytes_copied"] - log_bytes > 0
    price = cfg.egress_price(cfg.location("azure-eu"), cfg.location("aws-us"))
    assert synced["egress_usd"] == pytest.approx(synced["egress_bytes"] / BYTES_PER_GB * price)
    assert synced["replica_versions_behind"] == 0
    pending = _row(measured, "eu", GOLD_DAYS[1])
    assert pending["egress_bytes"] == 0
    assert pending["replica_versions_behind"] == 1
    assert pending["replica_lag_hours"] >= 0


def test_the_injected_bad_day_is_flagged_and_a_normal_week_is_not(measured):
    rows = measured.records()
    last_two_weeks = [END - dt.timedelta(days=i) for i in range(14)]
    found = anomaly.detect(rows, last_two_weeks)
    flagged = {(a.region, a.date) for a in found}
    assert flagged == {(BAD.region, BAD.day)}
    assert [a.metric for a in found] == ["quarantine_rate"]
    score = anomaly.precision_recall(flagged, [(BAD.region, BAD.day)])
    assert score["precision"] == 1.0 and score["recall"] == 1.0
    normal_week = [BAD.day - dt.timedelta(days=i) for i in range(1, 8)]
    assert anomaly.detect(rows, normal_week) == []


def test_the_band_ignores_one_earlier_outlier_and_a_flat_history():
    rule = anomaly.RULES[0]
    median, width = anomaly.band([0.01, 0.01, 0.3, 0.012], rule, anomaly.Baseline())
    assert median == pytest.approx(0.011)
    assert width == pytest.approx(rule.abs_floor)  # the MAD ignores the 0.3, the floor holds


def _health_defs() -> dg.Definitions:
    cfg = load_config("local")
    bronze = [dg.AssetKey(tables.BRONZE.name)]
    regions = build_region_health(cfg, build_partitions(cfg), suites(), UNPREFIXED, bronze)
    return dg.Definitions(
        assets=[regions, build_health(cfg, suites(), [regions.key], bronze)],
        jobs=[
            dg.define_asset_job("regions", selection=[tables.REGION_HEALTH.name]),
            dg.define_asset_job("health_only", selection=[tables.HEALTH.name]),
        ],
        sensors=[check_failure_sensor],
        resources={"lake": LakeResource()},
    )


def _measure_regions(
    instance: dg.DagsterInstance, first: dt.date, last: dt.date
) -> dg.ExecuteInProcessResult:
    """region_health of every region over ``first..last`` in one run, as the demo runs it."""
    result = (
        _health_defs()
        .resolve_job_def("regions")
        .execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": str(
                    date_region_key(first.isoformat(), "us")
                ),
                "dagster/asset_partition_range_end": str(date_region_key(last.isoformat(), "apac")),
            },
        )
    )
    assert result.success
    return result


def _materialize_health(instance: dg.DagsterInstance, day: dt.date) -> dg.ExecuteInProcessResult:
    _measure_regions(instance, day, day)
    return (
        _health_defs()
        .resolve_job_def("health_only")
        .execute_in_process(instance=instance, partition_key=day.isoformat())
    )


def test_an_anomaly_fails_a_warning_check_and_is_alerted(lake, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_HOME", str(lake))
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    cfg = load_config("local")
    # the days before, as earlier daily runs kept them: the baseline each run reads back
    health.write(cfg, health.measure(cfg, START, BAD.day - dt.timedelta(days=2), _options), {})
    instance = dg.DagsterInstance.ephemeral()
    normal = _materialize_health(instance, BAD.day - dt.timedelta(days=1))
    assert normal.success
    checks = {e.check_name: e for e in normal.get_asset_check_evaluations()}
    assert all(checks[anomaly_check_name(r.metric)].passed for r in anomaly.RULES)
    assert checks["lakehouse_health_expectations"].passed
    keys = list(_health_defs().resolve_asset_graph().asset_check_keys)
    assert failed_checks_since(instance, keys, 0) == []

    bad = _materialize_health(instance, BAD.day)
    evaluation = next(
        e
        for e in bad.get_asset_check_evaluations()
        if e.check_name == anomaly_check_name("quarantine_rate")
    )
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert f"eu on {BAD.day}" in evaluation.metadata["alert"].value
    assert "lakehouse quarantine --location azure-eu --date 2026-10-01" in (
        evaluation.metadata["alert"].value
    )
    (mat,) = bad.asset_materializations_for_node("lakehouse_health")
    assert mat.partition == BAD.day.isoformat()  # the day's point on the Plots tab
    meta = mat.metadata
    # the baseline is the kept days of the window before the day: no table's history is read
    assert meta["baseline_days_kept"].value == (BAD.day - START).days
    assert {"quarantine_pct/us", "quarantine_pct/eu", "events/apac"} <= set(meta)
    row = _row(health.measure(cfg, BAD.day, BAD.day, _options), "eu", BAD.day)
    assert meta["quarantine_pct/eu"].value == rounded(100 * row["quarantine_rate"])
    assert len(repr(meta["quarantine_pct/eu"].value)) <= 7  # 4 significant digits, not 17
    assert "| eu |" in meta["health"].value
    kept = health.read(cfg, {}, BAD.day, BAD.day)
    assert kept.num_rows == 3 and set(kept.column("date").to_pylist()) == {BAD.day}

    failed = failed_checks_since(instance, keys, 0)
    assert len(failed) == 1
    text = check_failure_message(failed[0])
    assert "quarantine_rate_anomalies" in text and "(WARN)" in text and str(BAD.day) in text
    ctx = dg.build_sensor_context(
        instance=instance, repository_def=_health_defs().get_repository_def()
    )
    alerts: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: alerts.append(record.getMessage())  # type: ignore[method-assign]
    ctx.log.addHandler(handler)  # the sensor's own logger: what the daemon shows and keeps
    check_failure_sensor(ctx)
    assert [a for a in alerts if text in a]
    assert json.loads(ctx.cursor)["id"] == failed[0].id
    again = dg.build_sensor_context(
        instance=instance, repository_def=_health_defs().get_repository_def(), cursor=ctx.cursor
    )
    assert failed_checks_since(instance, keys, json.loads(again.cursor)["id"]) == []

    # a week after a day the asset kept: that day's rows carry the baseline, one day is read
    week_on = _materialize_health(instance, BAD.day - dt.timedelta(days=1) + anomaly.WEEK)
    (mat,) = week_on.asset_materializations_for_node("lakehouse_health")
    assert mat.metadata["baseline_days_kept"].value == 1
    assert "by the history the rows carry" in mat.metadata["baseline"].value


def test_a_range_in_one_run_gives_each_day_its_own_figures_and_flags_the_bad_day(lake, monkeypatch):
    """A backfill (or the demo) measures days in one run: per-day points, the spike on its day."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(lake))
    cfg = load_config("local")
    health.write(cfg, health.measure(cfg, START, BAD.day - dt.timedelta(days=3), _options), {})
    first, last = BAD.day - dt.timedelta(days=2), BAD.day + dt.timedelta(days=1)
    instance = dg.DagsterInstance.ephemeral()
    _measure_regions(instance, first, last)
    result = (
        _health_defs()
        .resolve_job_def("health_only")
        .execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
        )
    )
    assert result.success
    mats = {
        m.partition: m.metadata for m in result.asset_materializations_for_node(tables.HEALTH.name)
    }
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    assert sorted(mats) == [d.isoformat() for d in days]
    for day in days:
        row = _row(health.measure(cfg, day, day, _options), "eu", day)
        assert mats[day.isoformat()]["quarantine_pct/eu"].value == rounded(
            100 * row["quarantine_rate"]
        )
        assert mats[day.isoformat()]["anomalies"].value == (1 if day == BAD.day else 0), day
    assert "quarantine_rate of eu" in mats[BAD.day.isoformat()]["flagged"].value
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == anomaly_check_name("quarantine_rate")
    ]
    assert not check.passed and f"eu on {BAD.day}" in check.metadata["alert"].value
    kept = health.read(cfg, {}, first, last)
    assert sorted(set(kept.column("date").to_pylist())) == days


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("corrupt_object: gzip: bad header", "corrupt_object"),
        ("ingest_error: boom", "ingest_error"),
        ("object_rewritten: etag", "object_rewritten"),
        ("missing_field:sku", "missing_field:sku"),
    ],
)
def test_whole_object_reasons_count_by_kind_and_record_reasons_as_they_are(reason, kind):
    assert reason_kind(reason) == kind


def test_values_read_as_a_person_writes_them():
    assert [health.usd(x) for x in (0.0, 0.000013, 0.0123, 1234.5)] == [
        "$0",
        "<$0.01",
        "$0.01",
        "$1,234",
    ]
    assert health.lag(0, 0.25) == "up to date"
    assert health.lag(0, 0.25, wide=True) == "up to date, arrived after 15 min"
    assert (health.lag(1, 3.0), health.lag(3, None)) == ("1 version behind", "3 versions behind")
    assert anomaly.fmt("quarantine_rate", 0.0512) == "5.12%"
    hit = anomaly.Anomaly(
        "quarantine_rate", "apac", dt.date(2026, 10, 23), 0.05, 0.004, -0.006, 0.014, 8
    )
    assert "is 5.00%; usual for the weekday 0.40% (alert above 1.40%, 8 earlier weeks)" in (
        hit.describe()
    )
    assert rounded(0.0035435094436009726) == 0.003544


def _bronze_partition(instance: dg.DagsterInstance, region: str, day: dt.date) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            tables.BRONZE.name,
            partition=str(dg.MultiPartitionKey({"date": day.isoformat(), "region": region})),
        )
    )


def test_a_late_region_fails_its_own_freshness_check_while_the_others_pass():
    instance = dg.DagsterInstance.ephemeral()
    due = advice.expected_date(dt.datetime.now(dt.UTC), dt.timedelta(hours=2))
    for region in ("us", "apac"):
        _bronze_partition(instance, region, due)
    _bronze_partition(instance, "eu", due - dt.timedelta(days=3))
    # eu's newest is late even though us has a fresher partition than due
    _bronze_partition(instance, "us", due + dt.timedelta(days=1))
    checks = build_region_freshness(["us", "eu", "apac"])
    result = dg.materialize(
        [checks], instance=instance, selection=dg.AssetSelection.all_asset_checks()
    )
    verdicts = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {k: v.passed for k, v in verdicts.items()} == {
        region_check_name("us"): True,
        region_check_name("eu"): False,
        region_check_name("apac"): True,
    }
    eu = verdicts[region_check_name("eu")]
    assert eu.metadata["latest_partition"].value == str(due - dt.timedelta(days=3))
    assert "3 day(s) late" in eu.metadata["alert"].value
    keys = [dg.AssetCheckKey(dg.AssetKey(tables.BRONZE.name), k) for k in verdicts]
    failed = failed_checks_since(instance, keys, 0)
    assert [f.key.name for f in failed] == [region_check_name("eu")]
    assert "eu: latest partition" in check_failure_message(failed[0])


def test_recommendations_name_the_command_that_acts(lake, measured):
    cfg = load_config("local")
    rows = measured.records()
    found = anomaly.detect(rows, [BAD.day])
    recs = advice.recommend(cfg, measured.stored, rows, found)
    kinds = {r.kind: r for r in recs}
    assert all(r.command.startswith("lakehouse ") for r in recs)
    spike = kinds["quarantine_spike"]
    assert spike.target == f"azure-eu on {BAD.day}"
    assert spike.command == f"lakehouse quarantine --location azure-eu --date {BAD.day}"
    # a few KB of gold replicated against weeks of bronze at rest: egress is not dominant
    assert "egress" not in kinds
    assert "compaction" not in kinds  # every partition here holds a file or two
    crowded = [
        health.Stored(
            "bronze_events",
            "bronze_events",
            cfg.location("aws-us"),
            {("us", START): health.Part(files=6, bytes=6000, small_files=6)},
        )
    ]
    (rec,) = advice.compaction(crowded)
    assert rec.command == "lakehouse maintain --table bronze_events --location aws-us"
    costly = [
        {**r, "egress_usd": r["storage_usd_month"] * 3 if r["region"] == "eu" else 0.0}
        for r in measured.records()
    ]
    (rec,) = advice.egress(cfg, costly)
    assert rec.target == "azure-eu->aws-us (gold_daily_demand)"
    replica = next(r for r in cfg.replicas() if r.source.name == "azure-eu")
    assert rec.command == (
        f"lakehouse sync --from {replica.source_uri} --to {replica.target_uri} --dry-run"
    )


def test_the_health_table_is_written_once_per_range_and_rerunning_is_safe(lake, measured):
    cfg = load_config("local")
    health.write(cfg, measured, {})
    health.write(cfg, measured, {})
    stored = health.read(cfg, {}, START, END)
    assert stored.num_rows == measured.rows.num_rows
    assert set(stored.column_names) == set(tables.HEALTH.columns)
    assert health.read(cfg, {}, END, END).num_rows == measured.rows.num_rows / 31


def test_the_quarantine_is_read_for_the_window_only(lake):
    """Measuring one day reads that day's quarantine files, not every day's."""
    from pipelines.lake.storage import bytes_read, bytes_read_since, bytes_under

    cfg = load_config("local")
    quarantine = [loc.table_uri(tables.QUARANTINE.name) for loc in cfg.locations.values()]

    def quarantine_bytes(start: dt.date, end: dt.date) -> int:
        before = bytes_read()
        health.measure(cfg, start, end, _options)
        counts = bytes_read_since(before)
        return sum(bytes_under(counts, uri) for uri in quarantine)

    whole, one_day = quarantine_bytes(START, END), quarantine_bytes(END, END)
    assert 0 < one_day < whole / 10


def test_status_reads_the_kept_rows_fits_100_columns_and_names_commands(
    lake, measured, monkeypatch, capsys
):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(lake))
    cfg = load_config("local")
    health.write(cfg, measured, {})
    assert cli.main(["status", "--recommend"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Health on {END}")
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "quarantine rate of eu on 2026-10-01" in text
    assert "-> lakehouse quarantine --location azure-eu --date 2026-10-01" in text
    assert "e-0" not in text  # no float in scientific notation
    # without DAGSTER_HOME: where it looked, as `make ui` would
    flat = " ".join(text.split())  # the note folds where the path's length puts it
    assert f"Dagster instance: none at {lake / '.dagster'} (DAGSTER_HOME unset" in flat
    assert cli.main(["status", "--wide"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) > 100
    assert cli.main(["status", "--json", "--recommend"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["as_of"] == END.isoformat()
    assert {r["region"] for r in report["regions"]} == {"us", "eu", "apac"}
    (spike,) = report["anomalies_last_7_days"]
    assert spike["date"] == BAD.day.isoformat() and spike["command"].startswith("lakehouse ")
    assert [r["kind"] for r in report["recommendations"]] == ["quarantine_spike"]
    assert all(r["command"].startswith("lakehouse ") for r in report["recommendations"])
    # status reads the kept rows: the bronze and quarantine data are not opened
    from pipelines.lake.storage import bytes_read, bytes_read_since

    before = bytes_read()
    assert cli.main(["status", "--json"]) == 0
    capsys.readouterr()
    read = bytes_read_since(before)
    for loc in cfg.locations.values():
        for table in (tables.BRONZE.name, tables.QUARANTINE.name):
            assert not [k for k in read if k.startswith(loc.table_uri(table))], table


def test_status_judges_the_week_from_its_own_kept_rows(lake, measured, monkeypatch, capsys):
    """Rows that carry their baseline: status reads the week's files, and flags the same day."""
    from pipelines.lake.storage import bytes_read, bytes_read_since, bytes_under

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(lake))
    cfg = load_config("local")
    days = [START + dt.timedelta(days=i) for i in range((END - START).days + 1)]
    judged = health.judge(cfg, {}, measured, days)
    health.write(cfg, judged.health, {})
    week = {END - dt.timedelta(days=i) for i in range(cli.STATUS_JUDGED_DAYS)}
    uri = cfg.home.table_uri(tables.HEALTH.name)
    week_bytes = date_partition_bytes(uri, week)
    before = bytes_read()
    assert cli.main(["status", "--json"]) == 0
    assert bytes_under(bytes_read_since(before), uri) == week_bytes > 0
    report = json.loads(capsys.readouterr().out)
    whole = anomaly.detect(measured.records(), sorted(week))
    assert [(a["metric"], a["region"], a["date"]) for a in report["anomalies_last_7_days"]] == [
        (a.metric, a.region, a.date.isoformat()) for a in whole
    ]
    assert [a.date for a in whole] == [BAD.day]
    # storage at rest as the day's rows kept it: no table's log read
    today = [health.decoded(r) for r in delta.python_rows(health.read(cfg, {}, END, END))]
    assert report["storage_by_location"] == health.kept_storage(cfg, today)
    assert report["storage_measured"] != "now"


def test_the_storage_at_rest_a_row_keeps_is_what_the_logs_say(lake):
    cfg = load_config("local")
    day = health.measure(cfg, END, END, _options)
    kept = health.kept_storage(cfg, day.records())
    now = health.storage_by_location(cfg, health.stored_tables(cfg, _options))
    assert kept is not None and set(kept) == set(now) == set(cfg.locations)
    for where, entry in now.items():
        assert kept[where]["tables"] == entry["tables"]
        assert kept[where]["bytes"] == entry["bytes"] > 0
        assert kept[where]["usd_month"] == pytest.approx(entry["usd_month"])
    # a region's row kept before rows held storage (no such column): rolled up all the same,
    # without that location's part, so status reads the logs rather than show a partial sum
    eu = cfg.location("azure-eu")
    regional = health.measure_region(cfg, eu, END, END, _options).records_raw()
    old = [{k: v for k, v in r.items() if k != "storage_at_rest"} for r in regional]
    rolled = health.roll_up(cfg, old, END, END, _options).records()
    assert [r["region"] for r in rolled] == ["eu"]
    assert eu.name not in rolled[0]["storage_at_rest"]
    assert health.kept_storage(cfg, rolled) is None


def test_quarantine_lists_a_days_reasons_and_sample_objects_never_raw_values(
    lake, monkeypatch, capsys
):
    monkeypatch.setenv("LAKEHOUSE_HOME", str(lake))
    eu = load_config("local").location("azure-eu")
    part = {"landing_date": BAD.day, "region": "eu"}
    rows = delta.read_partition(eu.table_uri(tables.QUARANTINE.name), {}, part)
    assert cli.main(["quarantine", "--location", "azure-eu", "--date", str(BAD.day), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quarantined"] == rows.num_rows
    want = Counter(reason_kind(r) for r in rows.column("reason").to_pylist())
    top = report["reasons"][0]
    assert top["records"] == max(want.values()) == want[top["reason"]]  # ties: any of them
    assert set(top["sample_objects"]) <= set(rows.column("source_object").to_pylist())
    assert cli.main(["quarantine", "--location", "azure-eu", "--date", str(BAD.day)]) == 0
    text = capsys.readouterr().out
    assert f"{rows.num_rows:,} records" in text and top["sample_objects"][0] in text
    for raw in rows.column("raw").to_pylist()[:50]:
        value = bytes(raw).decode("utf-8", "replace")
        assert len(value) < 8 or value not in text
    assert cli.main(["quarantine", "--location", "nowhere", "--date", str(BAD.day)]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_status_without_data_says_what_to_run(lake_home, capsys):
    assert cli.main(["status"]) == 1
    assert "no region has ingested data yet" in capsys.readouterr().err


def test_status_of_a_lake_without_kept_rows_shows_the_newest_day_that_has_data(lake_home, capsys):
    """One landing date: that day, not the empty day before; then a pause in landing."""
    from tests.helpers import DAY, land

    loc = load_config("local").location("aws-us")
    bronze = loc.table_uri(tables.BRONZE.name)

    def status() -> dict:
        assert cli.main(["status", "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    land("aws-us", SimulationConfig(start=DAY, end=DAY, events_per_day=100, late_share=0.0))
    ingest.ingest_partition(loc, {}, DAY)
    report = status()
    (us,) = [r for r in report["regions"] if r["region"] == "us"]
    assert report["as_of"] == DAY.isoformat()
    assert us["ingested"] == delta.partition_rows(bronze, {}, {"landing_date": DAY}) > 0
    assert cli.main(["status"]) == 0
    assert "no region has landed data" not in capsys.readouterr().out
    # three days later (the newest, still landing): the day shown is the newest before it
    # that holds data, not the empty calendar day before it
    later = DAY + dt.timedelta(days=3)
    land("aws-us", SimulationConfig(start=later, end=later, events_per_day=100, late_share=0.0))
    ingest.ingest_partition(loc, {}, later)
    assert status()["as_of"] == DAY.isoformat()


def test_observe_reads_ingest_counts_and_step_seconds_from_the_instance(lake_home):
    from assets.health import observe
    from assets.partitions import date_region_key
    from tests.helpers import DAY, asset, land

    land("aws-us", SimulationConfig(start=DAY, end=DAY, events_per_day=300, bad_rate=0.02))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [asset("bronze_events")],
        partition_key=date_region_key(DAY.isoformat(), "us"),
        resources={
            "lake": LakeResource(),
            "pii": PiiKeyResource(key=os.environ["LAKEHOUSE_PII_KEY"]),
        },
        instance=instance,
    )
    meta = result.asset_materializations_for_node("bronze")[0].metadata
    keys = [dg.AssetKey(tables.BRONZE.name), dg.AssetKey(tables.QUARANTINE.name)]
    seen = observe(instance, load_config("local"), keys, DAY, DAY)
    assert seen.ingest[("us", DAY)] == {
        "landed": meta["landed"].value,
        "duplicates": meta["duplicates_dropped"].value,
    }
    (stats,) = [s for s in instance.get_run_step_stats(result.run_id) if s.step_key == "bronze"]
    compute = seen.compute[("us", DAY)]
    assert set(compute) == {tables.BRONZE.name, tables.QUARANTINE.name}
    # one step wrote both tables: its seconds are shared, not counted twice
    assert sum(compute.values()) == pytest.approx(stats.end_time - stats.start_time)


def test_a_range_runs_step_seconds_are_shared_over_every_day_it_materialized(lake_home):
    """One day's health, measured after a run over many days, gets that day's share only."""
    from assets.health import observe
    from tests.helpers import DAY

    days = [DAY + dt.timedelta(days=i) for i in range(6)]
    parts = dg.DailyPartitionsDefinition(start_date=DAY.isoformat())

    @dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run())
    def ranged(context: dg.AssetExecutionContext) -> None:
        time.sleep(0.6)  # a step long enough that a whole-step misattribution shows
        assert len(context.partition_keys) == len(days)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [ranged],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
    )
    (stats,) = instance.get_run_step_stats(result.run_id)
    step = stats.end_time - stats.start_time
    cfg = load_config("local")
    one = observe(instance, cfg, [ranged.key], days[2], days[2])
    assert one.compute == {(cfg.home.region, days[2]): {"ranged": pytest.approx(step / 6)}}
    every = observe(instance, cfg, [ranged.key], days[0], days[-1])
    assert sum(v["ranged"] for v in every.compute.values()) == pytest.approx(step)


def test_a_runless_ingests_own_seconds_count_once_for_its_region_day(lake_home):
    """The worker's commits have no run steps: their reported seconds are the compute."""
    from assets.bronze import COMPUTE_SECONDS
    from assets.health import observe
    from assets.partitions import date_region_key
    from tests.helpers import DAY

    instance = dg.DagsterInstance.ephemeral()
    part = str(date_region_key(DAY.isoformat(), "eu"))
    for seconds in (1.25, 0.5):  # two commits of the partition
        for table, meta in (
            (tables.BRONZE.name, {"landed": 10, "duplicates_dropped": 0, COMPUTE_SECONDS: seconds}),
            (tables.QUARANTINE.name, {"run_quarantined": 0}),
        ):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=table, partition=part, metadata=meta)
            )
    keys = [dg.AssetKey(tables.BRONZE.name), dg.AssetKey(tables.QUARANTINE.name)]
    seen = observe(instance, load_config("local"), keys, DAY, DAY)
    assert seen.compute[("eu", DAY)] == {tables.BRONZE.name: pytest.approx(1.75)}
