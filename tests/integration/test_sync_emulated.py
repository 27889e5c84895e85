"""The sync in every direction among a local folder, moto S3, Azurite and fake-gcs-server."""

import itertools

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.replication.deltalog import DivergedError
from pipelines.replication.sync import sync_table
from pipelines.replication.verify import table_fingerprint

STORES = ["local", "aws-us", "azure-eu", "gcp-apac"]
MARKS = {"aws-us": pytest.mark.s3, "azure-eu": pytest.mark.azure, "gcp-apac": pytest.mark.gcs}


def _pairs():
    for src, dst in itertools.permutations(STORES, 2):
        marks = [MARKS[s] for s in (src, dst) if s in MARKS]
        yield pytest.param(src, dst, marks=marks, id=f"{src}->{dst}")


def _where(store: str, tmp_path, *parts: str) -> tuple[str, dict[str, str]]:
    if store == "local":
        return str(tmp_path.joinpath(*parts)), {}
    loc = load_config("emulated").location(store)
    return loc.uri(*parts), loc.storage_options()


def _write(uri: str, opts: dict[str, str], data: pa.Table, mode: str) -> None:
    target, options = delta.deltalake_target(uri, opts)
    # The test's own tables, written by delta-rs itself (OpenDAL on fake-gcs); no partitions.
    write_deltalake(target, data, mode=mode, storage_options=options or None)  # type: ignore[arg-type]


def _rows(start: int, n: int = 500) -> pa.Table:
    return pa.table({"id": list(range(start, start + n)), "v": [i * 0.5 for i in range(n)]})


@pytest.mark.parametrize(("src_store", "dst_store"), list(_pairs()))
def test_sync_between_emulated_clouds(emulated_env, tmp_path, src_store, dst_store):
    name = f"{src_store}-to-{dst_store}"
    src, src_opts = _where(src_store, tmp_path, "sync-src", name, "t")
    dst, dst_opts = _where(dst_store, tmp_path, "sync-dst", name, "t")
    _write(src, src_opts, _rows(0), "append")
    _write(src, src_opts, _rows(500), "append")
    first = sync_table(src, dst, src_opts, dst_opts)
    assert first.files_copied == 2 and first.commits_copied == 2
    assert first.target_version_after == 1 and first.versions_behind_after == 0
    assert table_fingerprint(dst, dst_opts) == table_fingerprint(src, src_opts)

    _write(src, src_opts, _rows(2000, 100), "overwrite")
    second = sync_table(src, dst, src_opts, dst_opts)
    assert second.files_copied == 1 and second.versions_behind_before == 1
    for version in range(3):
        assert table_fingerprint(dst, dst_opts, version) == table_fingerprint(
            src, src_opts, version
        )
    assert delta.table_version(dst, dst_opts) == 2
    noop = sync_table(src, dst, src_opts, dst_opts)
    assert (noop.files_copied, noop.commits_copied) == (0, 0)

    _write(dst, dst_opts, _rows(9000, 3), "append")  # a writer touched the replica
    _write(src, src_opts, _rows(9100, 3), "append")
    with pytest.raises(DivergedError):
        sync_table(src, dst, src_opts, dst_opts)


@pytest.mark.s3
@pytest.mark.gcs
def test_large_object_streams_through_gcs_json_api_and_s3_with_md5(emulated_env, tmp_path):
    import hashlib
    import os

    from pipelines.lake.storage import CHUNK, gives_md5, open_storage, stream_copy

    payload = os.urandom(2 * CHUNK + 12345)  # more than one chunk: resumable / multipart
    local = open_storage(str(tmp_path / "big"))
    local.put("f.bin", payload)
    gcs_loc = load_config("emulated").location("gcp-apac")
    s3_loc = load_config("emulated").location("aws-us")
    gcs = open_storage(gcs_loc.uri("big"), gcs_loc.storage_options())
    s3 = open_storage(s3_loc.uri("big"), s3_loc.storage_options())
    assert gives_md5(gcs) and gives_md5(s3) and not gives_md5(local)
    expected = hashlib.md5(payload).hexdigest()
    to_gcs = stream_copy(local, "f.bin", gcs)
    assert to_gcs.size == len(payload) and to_gcs.md5 == expected
    assert gcs.head("f.bin").md5 == expected  # the emulator's md5Hash
    to_s3 = stream_copy(gcs, "f.bin", s3)
    assert to_s3.md5 == expected and s3.head("f.bin").size == len(payload)
    back = stream_copy(s3, "f.bin", local, "g.bin")
    assert back.md5 == expected and local.get("g.bin") == payload


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("azure-eu", marks=[pytest.mark.azure, pytest.mark.s3]),
        pytest.param("gcp-apac", marks=[pytest.mark.gcs, pytest.mark.s3]),
    ],
)
def test_replica_asset_on_emulated_clouds(emulated_env, source):
    import datetime as dt

    import dagster as dg

    from resources import resources_for
    from tests.helpers import asset, gold_rows

    cfg = load_config("emulated")
    loc = cfg.location(source)
    uri, opts = loc.table_uri("gold_daily_demand"), loc.storage_options()
    _write(uri, opts, gold_rows(dt.date(2026, 10, 1)), "append")
    _write(uri, opts, gold_rows(dt.date(2026, 10, 2)), "append")
    name = f"gold_daily_demand_replica_{source.replace('-', '_')}"
    result = dg.materialize([asset(name, "emulated")], resources=resources_for("emulated"))
    assert result.success
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    assert meta["replica_uri"].value.startswith("s3://lakehouse-aws-us/replicas/")
    assert meta["replica_version"].value == 1 and meta["files_copied"].value == 2
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {f"{name}_consistency": True, f"{name}_expectations": True}
