"""Content discovery on Azurite and moto: an EU table of e-mails stays in the EU, gold goes."""

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.lake.storage import open_storage
from pipelines.privacy.detect import BUILTIN_DETECTORS
from pipelines.privacy.sample import ContentScan, scan_delta
from pipelines.replication.sync import sync
from pipelines.sovereignty.policy import PolicyError
from tests.helpers import gold_rows

pytestmark = [pytest.mark.azure, pytest.mark.s3]


def _write(uri: str, opts: dict[str, str], data: pa.Table) -> None:
    target, options = delta.deltalake_target(uri, opts)
    write_deltalake(target, data, mode="append", storage_options=options or None)  # type: ignore[arg-type]


def test_emails_on_azurite_are_refused_towards_moto_and_gold_is_copied(emulated_env):
    cfg = load_config("emulated")
    eu = cfg.location("azure-eu")
    opts = eu.storage_options()
    contacts = eu.table_uri("contacts")
    _write(contacts, opts, pa.table({"contact": ["a@example.org", "b@example.org", "walk-in"]}))
    _, sample = scan_delta(contacts, opts, ContentScan(BUILTIN_DETECTORS))
    assert [(f.column, f.detector, f.count) for f in sample.report.findings] == [
        ("contact", "email", 2)
    ]
    dst = cfg.home.replica_uri("contacts", "azure-eu")
    with pytest.raises(PolicyError, match=r"column 'contact' holds email by content \(2 of 3"):
        sync(cfg, contacts, dst)
    home = open_storage(cfg.home.uri(), cfg.home.storage_options())
    assert not any(i.path.startswith("replicas/azure-eu/contacts") for i in home.list("replicas"))
    gold = eu.table_uri("gold_daily_demand")
    _write(gold, opts, gold_rows(dt.date(2026, 10, 1)))
    report = sync(cfg, gold, cfg.home.replica_uri("gold_daily_demand", "azure-eu"))
    assert report.files_copied == 1 and report.content_files_scanned == 1
