"""The sync and the sovereignty policy against hostile or careless input (issue 14).

Each class of problem is tested with inputs written from the class: personal data crossing a
border (seeded replicas, the quarantine table, column spellings, unchecked routes), paths
leaving a table's root, reseeding another table, crashes on the error path, bad URIs and a
corrupt log. Local folders throughout; a few cases again on S3 (moto, 127.0.0.1).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse import cli
from pipelines.ingest.events import BRONZE_PARTITION_BY, QUARANTINE_SCHEMA
from pipelines.lake.config import load_config
from pipelines.lake.storage import StorageError, UriError, open_storage, parse_uri
from pipelines.lake.tables import TABLES
from pipelines.replication.deltalog import (
    DivergedError,
    Remedy,
    SyncError,
    UnrelatedTargetError,
    table_id,
)
from pipelines.replication.options import SyncOptions
from pipelines.replication.sync import sync, sync_table
from pipelines.sovereignty.policy import (
    PolicyError,
    Route,
    TableEvidence,
    check_route,
    location_of,
    normalize_name,
    personal_data_reasons,
)

ROOT = Path(__file__).resolve().parents[1]
RETAIN_NO_LOG = {"delta.logRetentionDuration": "interval 0 seconds"}


def eu_uri(name: str) -> str:
    return load_config("local").location("azure-eu").table_uri(name)


def us_replica(name: str) -> str:
    return load_config("local").home.replica_uri(name, "azure-eu")


def tree(path: str | Path) -> dict[str, bytes]:
    """Every file below a folder with its bytes (symbolic links not followed)."""
    root = Path(path)
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def assert_nothing_written(target: str) -> None:
    assert not Path(target).exists(), f"{target} was created by a refused sync"


def pii_rows(n: int = 4, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "customer_id": [f"c{i}" for i in range(start, start + n)],
            "qty": list(range(start, start + n)),
        }
    )


def seed_from_checkpoint(uri: str, versions: list[pa.Table], *, drop_checkpoint_commit: bool):
    """Write versions, checkpoint the last, and clean the log up as retention would."""
    for i, data in enumerate(versions):
        write_deltalake(uri, data, mode="append", configuration=RETAIN_NO_LOG if i == 0 else None)
    table = DeltaTable(uri)
    table.create_checkpoint()
    table.cleanup_metadata()
    log = Path(uri) / "_delta_log"
    last = len(versions) - 1
    assert not (log / f"{0:020d}.json").exists(), "cleanup_metadata kept the first commit"
    if drop_checkpoint_commit:
        (log / f"{last:020d}.json").unlink()
    assert (log / f"{last:020d}.checkpoint.parquet").exists()
    return last


def raw_table(
    root: str | Path,
    fields: list[dict],
    adds: list[dict] | None = None,
    *,
    name: str | None = None,
    table_uuid: str | None = None,
) -> Path:
    """A Delta table written by hand: commit 0 with protocol, metaData and the given adds."""
    log = Path(root) / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    actions = [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {
            "metaData": {
                "id": table_uuid or str(uuid.uuid4()),
                "name": name,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps({"type": "struct", "fields": fields}),
                "partitionColumns": [],
                "configuration": {},
                "createdTime": 0,
            }
        },
        *({"add": a} for a in adds or []),
    ]
    (log / f"{0:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    return Path(root)


def field(name: str, type_: object = "string", metadata: dict | None = None) -> dict:
    return {"name": name, "type": type_, "nullable": True, "metadata": metadata or {}}


def add(path: str, size: int = 10, **extra: object) -> dict:
    return {"path": path, "size": size, "modificationTime": 0, "dataChange": True, **extra}


def commit(root: str | Path, version: int, *actions: dict) -> None:
    path = Path(root) / "_delta_log" / f"{version:020d}.json"
    path.write_text("\n".join(json.dumps(a) for a in actions) + "\n")


# 1a. The schema of whatever the plan copies: seed checkpoint, and every metaData in range.


@pytest.mark.parametrize("drop_checkpoint_commit", [False, True])
@pytest.mark.parametrize("commits_after", [0, 2])
def test_replica_seeded_from_checkpoint_of_pii_table_is_refused(
    lake_home, drop_checkpoint_commit, commits_after
):
    src, dst = eu_uri("customers"), us_replica("customers")
    seed_from_checkpoint(src, [pii_rows(3, i * 3) for i in range(4)], drop_checkpoint_commit=False)
    for i in range(commits_after):  # later commits carry no metaData of their own
        write_deltalake(src, pii_rows(2, 100 + i * 2), mode="append")
    if drop_checkpoint_commit:
        (Path(src) / "_delta_log" / f"{3:020d}.json").unlink()
    with pytest.raises(PolicyError) as err:
        sync(load_config("local"), src, dst)
    msg = str(err.value)
    assert "customer_id" in msg and "azure-eu (EU) -> aws-us (US)" in msg
    assert "at version 3" in msg, "the schema judged is the seed checkpoint's"
    assert_nothing_written(dst)


def test_seeded_pii_free_replica_is_copied_and_reads_equal(lake_home):
    src, dst = eu_uri("gold_daily_demand"), us_replica("gold_daily_demand")
    rows = [pa.table({"sku": [f"s{i}"], "qty": [i]}) for i in range(4)]
    last = seed_from_checkpoint(src, rows, drop_checkpoint_commit=True)
    report = sync(load_config("local"), src, dst)
    assert report.target_version_after == last and report.checkpoints_copied == 1
    assert DeltaTable(dst).to_pyarrow_table().sort_by("qty") == DeltaTable(
        src
    ).to_pyarrow_table().sort_by("qty")


def test_pii_column_added_then_dropped_between_two_syncs_is_refused(lake_home):
    """Only the intermediate version has the column: every metaData in range is judged."""
    cfg = load_config("local")
    src, dst = eu_uri("orders"), us_replica("orders")
    write_deltalake(src, pa.table({"sku": ["a"], "qty": [1]}))
    assert sync(cfg, src, dst).target_version_after == 0
    write_deltalake(
        src,
        pa.table({"sku": ["b"], "qty": [2], "email": ["x@y.z"]}),
        schema_mode="merge",
        mode="append",
    )
    write_deltalake(
        src, pa.table({"sku": ["c"], "qty": [3]}), mode="overwrite", schema_mode="overwrite"
    )
    assert "email" not in DeltaTable(src).schema().to_arrow().names
    before = tree(dst)
    with pytest.raises(PolicyError, match=r"'email' at version 1"):
        sync(cfg, src, dst)
    assert tree(dst) == before, "nothing copied"


# 1b. The table registry: a registered personal-data table is PII whatever its columns.


def quarantine_rows(n: int = 3) -> pa.Table:
    return pa.table(
        {
            "landing_date": [dt.date(2026, 10, 5)] * n,
            "region": ["eu"] * n,
            "source_object": [f"landing/capture/o{i}.avro" for i in range(n)],
            "record_index": list(range(n)),
            "reason": ["unparseable"] * n,
            "raw": [b'{"customer_id": "c1", "email": "a@b.c"}'] * n,
        },
        schema=QUARANTINE_SCHEMA,
    )


def write_quarantine(uri: str, *, seeded: bool) -> None:
    kwargs = {"partition_by": BRONZE_PARTITION_BY}
    if not seeded:
        write_deltalake(uri, quarantine_rows(), **kwargs)
        return
    for i in range(3):
        write_deltalake(
            uri,
            quarantine_rows(),
            mode="append",
            configuration=RETAIN_NO_LOG if i == 0 else None,
            **kwargs,
        )
    table = DeltaTable(uri)
    table.create_checkpoint()
    table.cleanup_metadata()


@pytest.mark.parametrize("seeded", [False, True])
def test_quarantine_table_never_leaves_its_jurisdiction(lake_home, seeded):
    cfg = load_config("local")
    src, dst = eu_uri("bronze_quarantine"), us_replica("bronze_quarantine")
    write_quarantine(src, seeded=seeded)
    for table in (None, "gold_daily_demand"):  # a harmless --table changes nothing
        with pytest.raises(PolicyError, match="table registry marks 'bronze_quarantine'"):
            sync(cfg, src, dst, SyncOptions(table=table))
    assert_nothing_written(dst)


def test_quarantine_layout_under_another_name_is_refused(lake_home):
    src, dst = eu_uri("rejects_copy"), us_replica("rejects_copy")
    write_quarantine(src, seeded=True)
    with pytest.raises(PolicyError, match="layout of registered personal-data table"):
        sync(load_config("local"), src, dst)
    assert_nothing_written(dst)


def test_registry_refusal_comes_before_any_store_is_opened(lake_home):
    """A registered PII table is refused from its name alone: not even its folder is read."""
    src = eu_uri("bronze_events")  # does not exist
    with pytest.raises(PolicyError, match="'bronze_events' as personal data"):
        sync(load_config("local"), src, us_replica("bronze_events"))
    assert not Path(src).exists() and not Path(us_replica("bronze_events")).exists()


def test_name_recorded_in_the_delta_log_counts(lake_home):
    src, dst = eu_uri("t1"), us_replica("t1")
    raw_table(src, [field("x")], name="Bronze_Events")
    with pytest.raises(PolicyError, match="'bronze_events' as personal data"):
        sync(load_config("local"), src, dst)


def test_every_pii_free_registered_table_passes_the_policy():
    cfg = load_config("local")
    for spec in TABLES.values():
        schema = json.dumps({"type": "struct", "fields": [field(c) for c in spec.columns]})
        reasons = personal_data_reasons(cfg, TableEvidence((spec.name,), ((0, schema),)))
        assert bool(reasons) == spec.personal_data, (spec.name, reasons)


# 1c. Column names: normalized, at any depth, and Delta metadata tags.


@pytest.mark.parametrize(
    "fields",
    [
        [field("Customer_ID")],
        [field(" email ")],
        [field("EMAIL")],
        [field("Phone-Number"), field("customerId")],
        [field("ip\u200b_address")],  # an invisible character
        [field("\uff45\uff4d\uff41\uff49\uff4c")],  # fullwidth letters (NFKC)
        [field("contact", {"type": "struct", "fields": [field("Email")]})],
        [
            field(
                "orders",
                {
                    "type": "array",
                    "elementType": {"type": "struct", "fields": [field("customer_id")]},
                    "containsNull": True,
                },
            )
        ],
        [
            field(
                "by_store",
                {
                    "type": "map",
                    "keyType": "string",
                    "valueType": {"type": "struct", "fields": [field(" Phone ")]},
                    "valueContainsNull": True,
                },
            )
        ],
        [field("note", metadata={"comment": "free text, may hold PII"})],
        [field("x1", metadata={"pii": "true"})],
        [field("x2", metadata={"tags": ["finance", "Personal Data"]})],
    ],
    ids=lambda f: json.dumps(f)[:60],
)
def test_pii_spellings_and_nested_fields_are_refused(lake_home, fields):
    src, dst = eu_uri("hidden"), us_replica("hidden")
    raw_table(src, fields)
    with pytest.raises(PolicyError, match="personal data"):
        sync(load_config("local"), src, dst)
    assert_nothing_written(dst)


def test_pii_columns_in_config_are_normalized_too(lake_home, tmp_path, monkeypatch):
    text = (
        (ROOT / "lakehouse.yaml")
        .read_text()
        .replace(
            "pii_columns: [customer_id, email, phone, ip_address]",
            "pii_columns: [' Customer_ID', EMAIL]",
        )
    )
    (tmp_path / "lakehouse.yaml").write_text(text)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(tmp_path / "lakehouse.yaml"))
    schema = json.dumps({"type": "struct", "fields": [field("customer_id"), field("e_mail")]})
    reasons = personal_data_reasons(load_config("local"), TableEvidence((), ((2, schema),)))
    assert len(reasons) == 2 and all("at version 2" in r for r in reasons)


def test_nested_pii_table_written_by_deltalake_is_refused(lake_home):
    src, dst = eu_uri("nested"), us_replica("nested")
    contact = pa.struct([("Customer_ID", pa.string()), ("city", pa.string())])
    write_deltalake(src, pa.table({"sku": ["a"], "who": pa.array([("c1", "x")], contact)}))
    with pytest.raises(PolicyError, match=r"'who\.Customer_ID' \(as customer_id\)"):
        sync(load_config("local"), src, dst)


def test_normalize_name():
    assert normalize_name(" Customer_ID ") == normalize_name("customerid") == "customerid"
    assert normalize_name("customers") != normalize_name("customer_id")


# 1d. Unchecked routes.


def test_unchecked_route_never_exports_pii_of_a_configured_location(lake_home):
    cfg = load_config("local")
    src = eu_uri("people")
    write_deltalake(src, pii_rows())
    outside = str(lake_home / "elsewhere" / "people")
    with pytest.raises(PolicyError) as err:
        sync(cfg, src, outside, SyncOptions(allow_unchecked=True))
    msg = str(err.value)
    assert "'people'" in msg and "(unconfigured)" in msg and "an unchecked route" in msg
    assert "customer_id" in msg
    assert_nothing_written(outside)
    gold = eu_uri("gold_daily_demand")
    write_deltalake(gold, pa.table({"sku": ["a"], "qty": [1]}))
    ok = sync(cfg, gold, str(lake_home / "elsewhere" / "gold"), SyncOptions(allow_unchecked=True))
    assert not ok.route_checked and ok.files_copied == 1
    # An unconfigured source has no jurisdiction to protect: unchecked means unchecked.
    loose = str(lake_home / "scratch" / "people")
    write_deltalake(loose, pii_rows())
    assert sync(cfg, loose, outside, SyncOptions(allow_unchecked=True)).files_copied == 1


def test_unchecked_route_through_a_symlinked_alias_is_still_the_location(lake_home):
    cfg = load_config("local")
    write_deltalake(eu_uri("people"), pii_rows())
    alias = lake_home / "alias"
    alias.symlink_to(Path(cfg.location("azure-eu").root_uri()))
    with pytest.raises(PolicyError, match="azure-eu"):
        sync(
            cfg,
            str(alias / "tables" / "people"),
            str(lake_home / "out"),
            SyncOptions(allow_unchecked=True),
        )


def test_uri_aliases_name_the_same_location():
    cfg = load_config("emulated")
    assert location_of(cfg, "s3a://lakehouse-aws-us/tables/x").name == "aws-us"
    assert location_of(cfg, "S3://lakehouse-aws-us/tables/x/").name == "aws-us"
    azure = "abfss://lakehouse-azure-eu@devstoreaccount1.dfs.core.windows.net/tables/x"
    assert location_of(cfg, azure).name == "azure-eu"
    assert location_of(cfg, "az://lakehouse-azure-eu").name == "azure-eu"
    assert location_of(cfg, "s3://lakehouse-aws-us-2/tables/x") is None


def test_check_route_with_unconfigured_target_and_registry_name():
    cfg = load_config("local")
    route = Route("a", "b", cfg.location("gcp-apac"), None)
    with pytest.raises(PolicyError, match="rule: personal data never leaves"):
        check_route(cfg, "x", route, TableEvidence(("silver_events",)))
    check_route(cfg, "x", route, TableEvidence(("gold_daily_demand",)))


# 2. Paths: only inside the two table roots.


def small_table(uri: str, n: int = 3, partitioned: bool = False) -> None:
    data = pa.table({"part": ["a", "b", "a"][:n], "v": list(range(n))})
    write_deltalake(uri, data, partition_by=["part"] if partitioned else None)


def test_symlinked_data_file_in_source_is_refused_and_never_read(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    small_table(str(src))
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-BYTES")
    victim = next(src.glob("*.parquet"))
    victim.unlink()
    victim.symlink_to(secret)
    with pytest.raises(StorageError, match="symbolic link"):
        sync_table(str(src), str(dst))
    assert all(b"TOP-SECRET" not in data for data in tree(dst).values())


@pytest.mark.parametrize("what", ["partition", "log"])
def test_symlinked_folder_in_source_is_refused(tmp_path, what):
    src, dst = tmp_path / "src", tmp_path / "dst"
    small_table(str(src), partitioned=True)
    elsewhere = tmp_path / "elsewhere"
    folder = src / ("part=a" if what == "partition" else "_delta_log")
    folder.rename(elsewhere)
    folder.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StorageError, match="symbolic link"):
        sync_table(str(src), str(dst))
    copied = tree(dst)
    assert not any(name.startswith(("part=a", "_delta_log")) for name in copied), copied


def test_symlink_planted_in_target_is_never_written_through(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    small_table(str(src), partitioned=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    dst.mkdir()
    (dst / "part=a").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="symbolic link"):
        sync_table(str(src), str(dst))
    assert list(outside.iterdir()) == []


def test_symlink_to_root_in_log_folder_is_not_walked(tmp_path):
    src = tmp_path / "src"
    small_table(str(src))
    (src / "_delta_log" / "loop").symlink_to("/", target_is_directory=True)
    names = [i.path for i in open_storage(str(src)).list("_delta_log/")]
    assert "_delta_log/loop" in names and len(names) < 10, "the link is listed, not entered"


HOSTILE_PATHS = [
    "../outside.parquet",
    "%2E%2E/outside.parquet",
    "a/../../outside.parquet",
    "/etc/passwd",
    "file:///etc/passwd",
    "file:/etc/passwd",
    "s3://someone-elses-bucket/x.parquet",
    "C:/Windows/x.parquet",
    "_delta_log/00000000000000000007.json",
    "a//b.parquet",
    "..\\..\\outside.parquet",
]


@pytest.mark.parametrize("hostile", HOSTILE_PATHS)
@pytest.mark.parametrize("kind", ["add", "cdc", "remove"])
def test_log_paths_outside_the_root_are_refused(tmp_path, hostile, kind):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (tmp_path / "outside.parquet").write_bytes(b"PAR1-outside")
    raw_table(src, [field("v")])
    action = {kind: add(hostile)} if kind != "remove" else {"remove": {"path": hostile}}
    commit(src, 1, action)
    with pytest.raises(SyncError) as err:
        sync_table(str(src), str(dst))
    msg = str(err.value)
    assert f"{src}/_delta_log/{1:020d}.json (version 1)" in msg and repr(hostile) in msg
    assert "\n" not in msg
    assert_nothing_written(str(dst))


@pytest.mark.parametrize(
    "dv",
    [
        {"storageType": "p", "pathOrInlineDv": "file:///etc/passwd", "sizeInBytes": 1},
        {"storageType": "u", "pathOrInlineDv": "../../" + "0" * 20, "sizeInBytes": 1},
        {"storageType": "u", "pathOrInlineDv": "~~~~~~~~~~~~~~~~~~~~", "sizeInBytes": 1},
        {"storageType": "u", "pathOrInlineDv": "short", "sizeInBytes": 1},
        {"storageType": "q", "pathOrInlineDv": "x", "sizeInBytes": 1},
    ],
)
def test_hostile_deletion_vectors_are_refused(tmp_path, dv):
    src, dst = tmp_path / "src", tmp_path / "dst"
    raw_table(src, [field("v")], [add("f.parquet", deletionVector=dv)])
    with pytest.raises(SyncError, match=r"version 0\): deletion vector"):
        sync_table(str(src), str(dst))
    assert_nothing_written(str(dst))


def test_store_keys_are_confined_whatever_the_store(tmp_path):
    store = open_storage(str(tmp_path))
    for key in ("../x", "/x", "a/./b", "a//b", "a\nb"):
        with pytest.raises(StorageError, match="refusing to leave the root"):
            store.get(key)
        with pytest.raises(StorageError):
            store.put(key, b"x")
    assert list(tmp_path.iterdir()) == []


# 3. Reseeding only ever replaces a replica of the same table.


def test_reseed_refuses_to_replace_an_unrelated_table(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    write_deltalake(src, pii_rows(3))
    write_deltalake(src, pii_rows(3, 3), mode="append")
    write_deltalake(dst, pa.table({"precious": [1, 2, 3]}))  # someone else's table
    write_deltalake(dst, pa.table({"precious": [4]}), mode="append")
    before = tree(dst)
    assert table_id(open_storage(src)) != table_id(open_storage(dst))
    with pytest.raises(UnrelatedTargetError) as err:
        sync_table(src, dst)
    msg = str(err.value)
    assert (
        "is not a replica" in msg
        and err.value.remedy == Remedy.REPLACE_UNRELATED
        and "--" not in msg
    )
    with pytest.raises(UnrelatedTargetError, match="a reseed only replaces a replica") as err:
        sync_table(src, dst, options=SyncOptions(reseed=True))
    assert err.value.remedy == Remedy.REPLACE_UNRELATED
    assert tree(dst) == before, "the other table is untouched"
    report = sync_table(src, dst, options=SyncOptions(replace_unrelated=True))
    assert report.reseeded and report.target_version_after == 1
    assert DeltaTable(dst).to_pyarrow_table().sort_by("qty") == DeltaTable(
        src
    ).to_pyarrow_table().sort_by("qty")


def test_reseed_replaces_a_diverged_replica_of_the_same_table(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    write_deltalake(src, pii_rows(3))
    sync_table(src, dst)
    write_deltalake(dst, pii_rows(1, 90), mode="append")
    write_deltalake(src, pii_rows(1, 50), mode="append")
    with pytest.raises(DivergedError, match="a reseed replaces") as err:
        sync_table(src, dst)
    assert not isinstance(err.value, UnrelatedTargetError) and err.value.remedy == Remedy.RESEED
    assert sync_table(src, dst, options=SyncOptions(reseed=True)).reseeded


def test_reseed_refuses_a_target_whose_log_cannot_be_read(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    write_deltalake(src, pii_rows(3))
    write_deltalake(src, pii_rows(3, 3), mode="append")
    log = Path(dst) / "_delta_log"
    log.mkdir(parents=True)
    (log / f"{0:020d}.json").write_text("not json at all\n")
    with pytest.raises(UnrelatedTargetError, match="no readable table id"):
        sync_table(src, dst, options=SyncOptions(reseed=True))
    assert (log / f"{0:020d}.json").read_text() == "not json at all\n"


def test_cli_reseed_of_unrelated_target_exits_1_with_one_line(lake_home, capsys):
    src, dst = str(lake_home / "a" / "src"), str(lake_home / "a" / "dst")
    write_deltalake(src, pii_rows(3))
    write_deltalake(src, pii_rows(3, 3), mode="append")
    write_deltalake(dst, pa.table({"other": [1]}))
    write_deltalake(dst, pa.table({"other": [2]}), mode="append")
    args = ["sync", "--from", src, "--to", dst, "--unchecked-route", "--reseed"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a replica" in err
    assert cli.main([*args, "--replace-unrelated-target"]) == 0
    assert json.loads(capsys.readouterr().out)["reseeded"] is True


# 4. Deterministic exit codes on the error path.


def many_files_table(uri: str, files: int = 40) -> str:
    for i in range(files):
        data = pa.table({"id": list(range(i * 20_000, (i + 1) * 20_000))})
        write_deltalake(uri, data, mode="append")
    victim = sorted(p.name for p in Path(uri).glob("*.parquet"))[files // 2]
    (Path(uri) / victim).unlink()
    return victim


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_missing_source_file_with_copies_in_flight_exits_1_every_time(tmp_path):
    """30 runs, 16 copies in flight when one file is found missing: always exit 1, one line.

    Before the fix 10-28 % of such runs died of SIGABRT/SIGSEGV or "Event loop is closed".
    """
    src = str(tmp_path / "src")
    victim = many_files_table(src)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAKEHOUSE_HOME": str(tmp_path)}

    def once(i: int) -> tuple[int, str]:
        dst = str(tmp_path / f"dst{i}")
        done = run_cli(["sync", "--from", src, "--to", dst, "--unchecked-route"], env)
        return done.returncode, done.stderr

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(once, range(30)))
    codes = [code for code, _ in results]
    assert codes == [1] * 30, f"exit codes {sorted(set(codes))}"
    for _, stderr in results:
        # progress lines of the copies done so far, then the one-line error, no traceback
        error = stderr.splitlines()[-1]
        assert "Traceback" not in stderr, stderr
        assert error.startswith("lakehouse sync: error: ") and victim in error, stderr


@pytest.mark.slow
def test_policy_refusal_exits_1_every_time(lake_home):
    src = eu_uri("people")
    for i in range(3):
        write_deltalake(src, pii_rows(2, i * 2), mode="append")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAKEHOUSE_HOME": str(lake_home)}
    args = ["sync", "--from", src, "--to", us_replica("people")]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_cli(args, env), range(30)))
    assert [r.returncode for r in results] == [1] * 30
    assert all(r.stderr.count("\n") == 1 and "refused" in r.stderr for r in results)


# 5. URIs, a missing source, a corrupt log.


BAD_URIS = [
    ("", "is empty"),
    ("   ", "is empty"),
    (" /tmp/x", "whitespace"),
    ("/tmp/x\n", "whitespace"),
    ("/tmp/a\tb", "control character"),
    ("s3:/bucket/t", "did you mean 's3://bucket/t'"),
    ("s3:bucket/t", "did you mean 's3://bucket/t'"),
    ("file:/x/t", "did you mean 'file:///x/t'"),
    ("file://host/x", "absolute path"),
    ("ftp://host/x", "unknown scheme 'ftp:'"),
    ("hdfs://nn/x", "unknown scheme"),
    ("s3://", "names no bucket"),
    ("s3://bu cket/t", "not a bucket name"),
    ("s3://b//t", "empty, '.' or '..'"),
    ("gs://b/../t", "empty, '.' or '..'"),
    ("s3://b/t?versionId=1", "query"),
    ("abfss://c@/t", "not a container"),
]


@pytest.mark.parametrize(("uri", "problem"), BAD_URIS)
def test_bad_uris_give_one_line_naming_option_and_value(lake_home, capsys, uri, problem):
    good = str(lake_home / "t")
    for option, args in (("--from", [uri, good]), ("--to", [good, uri])):
        with pytest.raises(UriError) as err:
            parse_uri(uri, option)
        assert problem in str(err.value) and str(err.value).startswith(f"{option} {uri!r}")
        code = cli.main(["sync", "--from", args[0], "--to", args[1], "--unchecked-route"])
        err_text = capsys.readouterr().err
        assert code == 1 and err_text.count("\n") == 1 and option in err_text, err_text
    assert not Path(good).exists()


def test_missing_source_is_an_error_and_is_not_created(tmp_path):
    src, dst = tmp_path / "nope" / "table", tmp_path / "dst"
    with pytest.raises(UriError, match=r"source .*no such folder"):
        sync_table(str(src), str(dst))
    assert not src.exists() and not src.parent.exists() and not dst.exists()


def test_empty_target_never_writes_into_the_current_folder(tmp_path, monkeypatch):
    src = tmp_path / "src"
    small_table(str(src))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for target in ("", " ", "\t"):
        with pytest.raises(UriError, match="target"):
            sync_table(str(src), target)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_overlapping_source_and_target_are_refused(tmp_path, where):
    src = tmp_path / "lake" / "src"
    small_table(str(src))
    before = tree(tmp_path)
    target = {"same": src, "inside": src / "replica", "around": tmp_path / "lake"}[where]
    with pytest.raises(UriError, match="overlap"):
        sync_table(str(src), str(target))
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json", "line 2 is not JSON"),
        (b"\xff\xfe\x00", "line 2 is not JSON"),
        (b"[1, 2]", "line 2 is not a JSON object"),
        (b'{"add": "x"}', "add action is not an object"),
        (b'{"add": {"path": "f.parquet", "size": "big"}}', "is not a byte count"),
        (b'{"metaData": {"schemaString": "{oops"}}', "schemaString is not a JSON schema"),
        (b"[" * 100_000, "line 2 is not JSON"),
    ],
)
def test_corrupt_commit_names_file_and_version(tmp_path, line, problem):
    src, dst = tmp_path / "src", tmp_path / "dst"
    small_table(str(src))
    write_deltalake(str(src), pa.table({"part": ["c"], "v": [9]}), mode="append")
    path = src / "_delta_log" / f"{1:020d}.json"
    path.write_bytes(path.read_bytes().splitlines()[0] + b"\n" + line + b"\n")
    with pytest.raises(SyncError) as err:
        sync_table(str(src), str(dst))
    msg = str(err.value)
    assert f"{path} (version 1)" in msg and problem in msg and "\n" not in msg


def test_corrupt_seed_checkpoint_names_file_and_version(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    seed_from_checkpoint(src, [pii_rows(2, i) for i in range(3)], drop_checkpoint_commit=True)
    checkpoint = Path(src) / "_delta_log" / f"{2:020d}.checkpoint.parquet"
    checkpoint.write_bytes(b"PAR1 truncated")
    with pytest.raises(SyncError, match=rf"{checkpoint} \(checkpoint of version 2\)"):
        sync_table(src, dst)


def test_checkpoint_without_metadata_is_refused(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    log = src / "_delta_log"
    log.mkdir(parents=True)
    pq.write_table(
        pa.table({"add": pa.array([{"path": "f.parquet", "size": 1}])}),
        log / f"{4:020d}.checkpoint.parquet",
    )
    with pytest.raises(SyncError, match="version 4 has no metaData"):
        sync_table(str(src), str(dst))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_object_store_is_one_line(tmp_path):
    options = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "max_retries": "0",
    }
    with pytest.raises(StorageError) as err:
        sync_table("s3://bucket/table", str(tmp_path / "dst"), options)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 500
    assert "s3://bucket/table" in msg and "Connection refused" in msg
    assert not (tmp_path / "dst").exists()


# The same rules on S3 (moto on 127.0.0.1).


@pytest.fixture(scope="module")
def s3_options():
    import boto3
    from moto.server import ThreadedMotoServer

    port = closed_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="hostile")
    yield {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    server.stop()


@pytest.mark.s3
def test_s3_log_paths_outside_the_root_are_refused(s3_options, tmp_path):
    local = tmp_path / "src"
    raw_table(local, [field("v")], [add("../../other-table/part-0.parquet")])
    s3 = open_storage("s3://hostile/t1", s3_options)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            s3.put(str(p.relative_to(local)), p.read_bytes())
    with pytest.raises(SyncError, match=r"version 0\): add path '../../other-table"):
        sync_table("s3://hostile/t1", str(tmp_path / "dst"), s3_options)
    with pytest.raises(StorageError, match="refusing to leave the root"):
        s3.get("../t2/_delta_log/00000000000000000000.json")


@pytest.mark.s3
def test_s3_round_trip_and_missing_file_with_copies_in_flight(s3_options, tmp_path):
    src = str(tmp_path / "src")
    for i in range(12):
        write_deltalake(src, pii_rows(50, i * 50), mode="append")
    first = sync_table(src, "s3://hostile/t3", None, s3_options)  # hashed copies (S3 MD5s)
    assert first.files_copied == 12
    back = sync_table("s3://hostile/t3", str(tmp_path / "back"), s3_options)
    assert back.files_copied == 12
    s3 = open_storage("s3://hostile/t3", s3_options)
    victim = sorted(i.path for i in s3.list() if i.path.endswith(".parquet"))[5]
    s3.delete(victim)
    with pytest.raises(SyncError, match=f"{victim} is referenced by the source's log"):
        sync_table(
            "s3://hostile/t3",
            str(tmp_path / "again"),
            s3_options,
            options=SyncOptions(concurrency=8),
        )
    assert not (tmp_path / "again" / "_delta_log").exists(), "no commit without its files"


@pytest.mark.s3
def test_s3_multi_chunk_object_streams_both_ways_with_md5(s3_options, tmp_path):
    import hashlib

    from pipelines.lake.storage import CHUNK, stream_copy

    payload = os.urandom(2 * CHUNK + 12345)  # a multipart upload, three chunks read back
    local = open_storage(str(tmp_path / "big"))
    local.put("f.bin", payload)
    s3 = open_storage("s3://hostile/big", s3_options)
    expected = hashlib.md5(payload).hexdigest()
    up = stream_copy(local, "f.bin", s3)
    assert (up.size, up.md5) == (len(payload), expected)
    down = stream_copy(s3, "f.bin", local, "g.bin")
    assert down.md5 == expected and local.get("g.bin") == payload
