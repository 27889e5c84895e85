"""The sync engine on local folders: incremental, checkpoints, divergence, policy, crashes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse import cli
from pipelines.lake.config import ConfigError, load_config
from pipelines.lake.storage import bytes_read, bytes_read_since, open_storage
from pipelines.replication.deltalog import DivergedError, list_log
from pipelines.replication.options import SyncOptions
from pipelines.replication.plan import plan_sync
from pipelines.replication.sync import sync, sync_table
from pipelines.replication.verify import table_fingerprint
from pipelines.sovereignty.policy import PolicyError

ROOT = Path(__file__).resolve().parents[1]


def rows(n: int, start: int = 0, **extra) -> pa.Table:
    cols = {"id": list(range(start, start + n)), "sku": [f"s{i % 7}" for i in range(n)]}
    cols.update({k: [v] * n for k, v in extra.items()})
    return pa.table(cols)


def sorted_rows(uri: str, version: int) -> list[dict]:
    table = DeltaTable(uri, version=version).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def assert_replica_matches(src: str, dst: str) -> int:
    """Every version the replica has reads exactly as the source's same version."""
    latest = DeltaTable(dst).version()
    for v in range(latest + 1):
        assert sorted_rows(dst, v) == sorted_rows(src, v), f"version {v} differs"
    return latest


def data_files(uri: str) -> set[str]:
    return {p.name for p in Path(uri).rglob("*.parquet") if "_delta_log" not in p.parts}


def test_incremental_sync_after_appends_overwrite_delete_and_schema_change(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    write_deltalake(src, rows(50))
    first = sync_table(src, dst)
    assert (first.versions_behind_before, first.versions_behind_after) == (1, 0)
    assert first.files_copied == len(data_files(src)) and first.commits_copied == 1

    steps = [
        lambda: write_deltalake(src, rows(30, 50), mode="append"),
        lambda: write_deltalake(src, rows(20, 100), mode="overwrite"),
        lambda: DeltaTable(src).delete("id < 105"),
        lambda: write_deltalake(src, rows(5, 200, note="new"), mode="append", schema_mode="merge"),
    ]
    for step in steps:
        before = data_files(dst)
        step()
        new = data_files(src) - before
        report = sync_table(src, dst)
        assert report.versions_behind_before == 1
        assert report.versions_behind_after == 0
        assert report.files_copied == len(new), "only the files the replica lacks are copied"
        assert report.bytes_copied >= sum(
            (Path(src) / f).stat().st_size for f in new if (Path(src) / f).exists()
        )
        assert report.target_version_after == DeltaTable(src).version()
    assert assert_replica_matches(src, dst) == 4
    assert "note" in DeltaTable(dst).schema().to_arrow().names
    assert table_fingerprint(src, {}) == table_fingerprint(dst, {})
    noop = sync_table(src, dst)
    assert (noop.files_copied, noop.commits_copied, noop.bytes_copied) == (0, 0, 0)


def test_checkpoint_and_last_checkpoint_are_carried_over(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    for i in range(3):
        write_deltalake(src, rows(10, i * 10), mode="append")
    DeltaTable(src).create_checkpoint()
    write_deltalake(src, rows(10, 30), mode="append")
    report = sync_table(src, dst)
    assert report.checkpoints_copied == 1
    log = Path(dst) / "_delta_log"
    assert (log / f"{2:020d}.checkpoint.parquet").exists()
    assert (log / "_last_checkpoint").read_bytes() == (
        Path(src) / "_delta_log" / "_last_checkpoint"
    ).read_bytes()
    assert_replica_matches(src, dst)


def _plan_bytes_after_history(root: Path, versions: int, files_per_version: int) -> tuple[int, int]:
    """Source bytes a replica's plan reads for one new append after ``versions`` versions of
    ``files_per_version`` files each (the newest checkpoint just before the append), and the
    size of that checkpoint."""
    src, dst = str(root / "src"), str(root / "dst")
    for v in range(versions):
        days = [v * files_per_version + i for i in range(files_per_version)]
        data = pa.table({"day": days, "qty": days})
        write_deltalake(src, data, mode="append", partition_by=["day"])
    DeltaTable(src).create_checkpoint()
    sync_table(src, dst)
    write_deltalake(src, pa.table({"day": [-1], "qty": [0]}), mode="append", partition_by=["day"])
    source = open_storage(src)
    before = bytes_read()
    plan = plan_sync(source, open_storage(dst), SyncOptions())
    read = bytes_read_since(before).get(source.uri, 0)
    assert [c.version for c in plan.commits] == [versions]  # the new append, nothing else
    assert plan.metadata and plan.metadata[0][0] == versions - 1  # its schema was judged
    checkpoint = list_log(source, versions - 1).checkpoints[versions - 1][0].size
    return read, checkpoint


def test_a_plans_bytes_do_not_grow_with_the_files_and_versions_behind_it(tmp_path):
    """The planner reads the newest checkpoint's metaData and protocol by ranges (footer and
    those columns), never its add column: the bytes stay flat as the history grows 20-fold."""
    small, small_checkpoint = _plan_bytes_after_history(tmp_path / "small", 5, 40)
    large, large_checkpoint = _plan_bytes_after_history(tmp_path / "large", 100, 40)
    assert large_checkpoint > 10 * small_checkpoint  # the history did grow
    assert large <= 1.3 * small, (small, large)
    assert large < large_checkpoint / 10, "the whole checkpoint was read"


def test_fresh_replica_starts_from_checkpoint_when_early_commits_are_gone(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    for i in range(3):
        write_deltalake(src, rows(10, i * 10), mode="append")
    DeltaTable(src).create_checkpoint()
    write_deltalake(src, rows(10, 30), mode="append")
    for v in (0, 1):  # as log cleanup would
        (Path(src) / "_delta_log" / f"{v:020d}.json").unlink()
    report = sync_table(src, dst)
    assert report.target_version_after == 3
    assert sorted_rows(dst, 3) == sorted_rows(src, 3)


def test_diverged_replica_stops_with_clear_error_and_reseed_repairs_it(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    write_deltalake(src, rows(10))
    sync_table(src, dst)
    write_deltalake(dst, rows(3, 1000), mode="append")  # someone wrote into the replica
    write_deltalake(src, rows(4, 2000), mode="append")
    with pytest.raises(DivergedError, match=r"diverged.*commit 1 differs.*a reseed"):
        sync_table(src, dst)
    write_deltalake(src, rows(4, 3000), mode="append")
    with pytest.raises(DivergedError):  # still diverged, nothing written meanwhile
        sync_table(src, dst)
    assert DeltaTable(dst).version() == 1
    report = sync_table(src, dst, options=SyncOptions(reseed=True))
    assert report.reseeded and report.target_version_after == 2
    assert assert_replica_matches(src, dst) == 2


def test_target_ahead_of_source_is_diverged(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    write_deltalake(src, rows(10))
    sync_table(src, dst)
    write_deltalake(dst, rows(1, 99), mode="append")
    with pytest.raises(DivergedError, match="target is at version 1, the source at 0"):
        sync_table(src, dst)


def test_dry_run_copies_nothing_and_reports_what_it_would(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    write_deltalake(src, rows(10))
    write_deltalake(src, rows(10, 10), mode="append")
    report = sync_table(src, dst, options=SyncOptions(dry_run=True))
    assert report.dry_run and report.files_copied == 2 and report.commits_copied == 2
    assert report.bytes_copied > 0 and report.target_version_after is None
    assert not Path(dst).exists() or not any(Path(dst).rglob("*.*"))


def _pii_table(lake_home: Path, location: str, table: str) -> str:
    uri = load_config("local").location(location).table_uri(table)
    write_deltalake(uri, pa.table({"customer_id": ["c1", "c2"], "qty": [1, 2]}))
    return uri


def test_forbidden_route_is_refused_before_any_byte(lake_home):
    cfg = load_config("local")
    src = _pii_table(lake_home, "azure-eu", "customers")
    dst = cfg.home.replica_uri("customers", "azure-eu")
    with pytest.raises(PolicyError) as err:
        sync(cfg, src, dst)
    msg = str(err.value)
    for part in ("'customers'", "azure-eu (EU) -> aws-us (US)", "customer_id", "pii_columns"):
        assert part in msg
    assert not Path(dst).exists() or not any(Path(dst).rglob("*"))
    # Within the jurisdiction the same table may be copied.
    ok = sync(cfg, src, load_config("local").location("azure-eu").uri("copies", "customers"))
    assert ok.route_checked and ok.files_copied == 1


def test_route_not_in_allowed_routes_is_refused(lake_home, tmp_path, monkeypatch):
    text = (ROOT / "lakehouse.yaml").read_text().replace("EU: [EU, US, APAC]", "EU: [EU]")
    (tmp_path / "lakehouse.yaml").write_text(text)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(tmp_path / "lakehouse.yaml"))
    cfg = load_config("local")
    src = cfg.location("azure-eu").table_uri("gold_daily_demand")
    write_deltalake(src, rows(5))
    with pytest.raises(PolicyError, match=r"allowed_routes\.EU = \[EU\] does not list US"):
        sync(cfg, src, cfg.home.replica_uri("gold_daily_demand", "azure-eu"))


def test_cli_sync_reports_json_and_refuses_with_exit_1(lake_home, capsys):
    cfg = load_config("local")
    src = cfg.location("azure-eu").table_uri("gold_daily_demand")
    write_deltalake(src, rows(20))
    dst = cfg.home.replica_uri("gold_daily_demand", "azure-eu")
    assert cli.main(["sync", "--from", src, "--to", dst]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files_copied"] == 1 and report["route"] == "azure-eu (EU) -> aws-us (US)"
    assert report["egress_usd_per_gb"] == 0.087
    assert report["egress_usd"] == pytest.approx(report["bytes_copied"] / 2**30 * 0.087)
    pii = _pii_table(lake_home, "gcp-apac", "people")
    assert cli.main(["sync", "--from", pii, "--to", dst + "_people"]) == 1
    assert "refused" in capsys.readouterr().err
    outside = str(lake_home / "elsewhere" / "t")
    assert cli.main(["sync", "--from", src, "--to", outside]) == 1
    assert "lie(s) under no lake location" in capsys.readouterr().err
    assert cli.main(["sync", "--from", src, "--to", outside, "--unchecked-route"]) == 0
    assert json.loads(capsys.readouterr().out)["route_checked"] is False


def test_unconfigured_uri_is_a_config_error(lake_home):
    with pytest.raises(ConfigError, match="no lake location"):
        sync(load_config("local"), str(lake_home / "x"), str(lake_home / "y"))


class Crash(Exception):
    pass


@pytest.mark.parametrize(("kind", "after"), [("file", 3), ("commit", 2), ("checkpoint", 1)])
def test_crash_mid_sync_then_resume_copies_only_the_rest(tmp_path, kind, after):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    for i in range(4):
        write_deltalake(src, rows(10, i * 10), mode="append")
    DeltaTable(src).create_checkpoint()
    write_deltalake(src, rows(10, 40), mode="append")
    seen = []

    def hook(k: str, path: str) -> None:
        if k == kind:
            seen.append(path)
            if len(seen) == after:
                raise Crash(path)

    with pytest.raises(Crash):
        sync_table(src, dst, options=SyncOptions(hook=hook, concurrency=1))
    partial = list_log(open_storage(dst)).latest
    if partial is not None:  # whatever the replica shows is a complete source version
        assert sorted_rows(dst, partial) == sorted_rows(src, partial)
    copied_before = data_files(dst)
    report = sync_table(src, dst)
    assert report.files_copied == len(data_files(src) - copied_before)
    assert report.files_already_present >= (len(copied_before) if kind == "file" else 0)
    assert assert_replica_matches(src, dst) == 4


# The child says on stdout when it has copied its third data file, then blocks on stdin (the
# parent never writes to it): the kill lands at that known point, whatever the machine's speed.
CHILD = textwrap.dedent(
    """
    import sys
    from pipelines.replication.options import SyncOptions
    from pipelines.replication.sync import sync_table
    copied = []
    def hook(kind, path):
        if kind == "file":
            copied.append(path)
            if len(copied) == 3:
                print("copied 3", flush=True)
                sys.stdin.read()
    sync_table(sys.argv[1], sys.argv[2], options=SyncOptions(concurrency=1, hook=hook))
    """
)


def test_sync_killed_with_sigkill_then_resumed(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    for i in range(6):
        write_deltalake(src, rows(10, i * 10), mode="append")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, src, dst],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "copied 3\n", "the child ended before its third file"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list_log(open_storage(dst)).latest is None  # data files first, commits after
    assert len(data_files(dst)) == 3
    report = sync_table(src, dst)
    assert report.files_copied == 3 and report.files_already_present == 3
    assert assert_replica_matches(src, dst) == 5


def test_two_syncs_into_one_replica_at_once_both_finish_consistent(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    for i in range(8):
        write_deltalake(src, rows(200, i * 200), mode="append")
    with ThreadPoolExecutor(2) as pool:
        reports = list(
            pool.map(lambda _: sync_table(src, dst, options=SyncOptions(concurrency=2)), range(2))
        )
    assert all(r.target_version_after == 7 for r in reports)
    assert sum(r.commits_copied for r in reports) == 8, "each commit written exactly once"
    assert assert_replica_matches(src, dst) == 7
