"""The sync judges what a table holds: personal data by content refuses a border crossing."""

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from pipelines.lake.config import load_config
from pipelines.replication.sync import sync
from pipelines.sovereignty.policy import PolicyError
from tests.helpers import DAY, gold_rows


def _contacts(n: int = 40) -> pa.Table:
    return pa.table(
        {
            "store_id": list(range(n)),
            "contact": [f"shopper{i}@example.org" if i % 4 else "walk-in" for i in range(n)],
            "note": [f"SKU-{i:010d} at 1.299,00 EUR" for i in range(n)],
        }
    )


def test_a_contact_column_of_emails_is_refused_eu_to_us_in_one_line(lake_home):
    cfg = load_config("local")
    src = cfg.location("azure-eu").table_uri("contacts")
    write_deltalake(src, _contacts())
    dst = cfg.home.replica_uri("contacts", "azure-eu")
    with pytest.raises(PolicyError) as err:
        sync(cfg, src, dst)
    msg = str(err.value)
    assert "\n" not in msg and "@" not in msg and "shopper" not in msg, msg
    for part in (
        "'contacts'",
        "azure-eu (EU) -> aws-us (US)",
        "column 'contact' holds email by content (30 of 40 sampled values)",
        "content detectors",
    ):
        assert part in msg, msg
    assert "'note'" not in msg, "SKUs and prices are not phone numbers"
    assert not Path(dst).exists() or not any(Path(dst).rglob("*"))
    # Within its jurisdiction the table may go, and is not scanned (nothing to decide).
    eu_copy = cfg.location("azure-eu").uri("copies", "contacts")
    ok = sync(cfg, src, eu_copy)
    assert ok.files_copied == 1 and ok.content_files_scanned == 0


def test_pii_free_gold_is_still_allowed_and_its_sample_is_bounded(lake_home, monkeypatch):
    cfg = load_config("local")
    src = cfg.location("azure-eu").table_uri("gold_daily_demand")
    for _ in range(12):
        write_deltalake(src, gold_rows(DAY), mode="append")
    report = sync(cfg, src, cfg.home.replica_uri("gold_daily_demand", "azure-eu"))
    assert report.files_copied == 12
    assert report.content_files_scanned == cfg.privacy.sample_files == 8
    assert report.content_bytes_read > 0


def test_only_new_files_are_scanned_and_a_rescued_field_is_seen(lake_home):
    cfg = load_config("local")
    src = cfg.location("azure-eu").table_uri("events_clean")
    dst = cfg.home.replica_uri("events_clean", "azure-eu")
    first = pa.table(
        {"sku": ["SKU-1", "SKU-2"], "_rescued_data": pa.array([None, None], pa.string())}
    )
    write_deltalake(src, first)
    assert sync(cfg, src, dst).content_files_scanned == 1
    rescued = [json.dumps({"loyalty": {"phone": "+49 151 12345678"}}), None]
    write_deltalake(
        src, pa.table({"sku": ["SKU-3", "SKU-4"], "_rescued_data": rescued}), mode="append"
    )
    with pytest.raises(PolicyError, match=r"column '_rescued_data\.loyalty\.phone' holds phone"):
        sync(cfg, src, dst)


def test_a_configured_pattern_refuses_too(lake_home, tmp_path, monkeypatch):
    from tests.test_sync import ROOT

    text = (
        (ROOT / "lakehouse.yaml")
        .read_text()
        .replace("  patterns: []", '  patterns: [{name: loyalty_card, regex: "LC-[0-9]{10}"}]')
    )
    (tmp_path / "lakehouse.yaml").write_text(text)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(tmp_path / "lakehouse.yaml"))
    cfg = load_config("local")
    src = cfg.location("gcp-apac").table_uri("cards")
    write_deltalake(src, pa.table({"ref": ["LC-0123456789", "none"]}))
    with pytest.raises(PolicyError, match=r"column 'ref' holds loyalty_card by content \(1 of 2"):
        sync(cfg, src, cfg.home.replica_uri("cards", "gcp-apac"))


def test_a_vacuumed_file_is_passed_over_for_the_next_one(tmp_path):
    from pipelines.lake.storage import open_storage
    from pipelines.privacy.detect import BUILTIN_DETECTORS
    from pipelines.privacy.sample import ContentScan, scan_files

    uri = str(tmp_path / "t")
    for i in range(3):
        write_deltalake(uri, pa.table({"contact": [f"p{i}@example.org"]}), mode="append")
    files = sorted(str(p.relative_to(uri)) for p in Path(uri).glob("*.parquet"))
    (Path(uri) / files[0]).unlink()
    scan = ContentScan(BUILTIN_DETECTORS, max_files=2, rows_per_file=10)
    sample = scan_files(open_storage(uri, {}), files, scan)
    assert sample.files_missing == 1 and len(sample.files) == 2
    assert [(f.column, f.count) for f in sample.report.findings] == [("contact", 2)]
