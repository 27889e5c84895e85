"""Each location's ``spark:`` block: Spark's root and Hadoop settings come from lakehouse.yaml."""

from typing import Any

import pytest

from pipelines.lake.config import ConfigError, load_config
from pipelines.spark.session import configure_storage
from tests.helpers import config_with


def _location(data: dict[str, Any], env: str, name: str) -> dict[str, Any]:
    return next(x for x in data["environments"][env]["locations"] if x["name"] == name)


class _Session:
    """Records what would be set on a Spark session's runtime configuration."""

    def __init__(self) -> None:
        self.set: dict[str, str] = {}

        class _Conf:
            def set(_, key: str, value: str) -> None:
                self.set[key] = value

        self.conf = _Conf()


@pytest.fixture
def endpoints(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT", "http://127.0.0.1:5999")
    monkeypatch.setenv("LAKEHOUSE_GCS_ENDPOINT", "http://127.0.0.1:4999")


@pytest.mark.parametrize(
    ("name", "spark_root", "setting", "value"),
    [
        (
            "aws-us",
            "s3a://lakehouse-aws-us",
            "fs.s3a.bucket.lakehouse-aws-us.endpoint",
            "http://127.0.0.1:5999",
        ),
        (
            "azure-eu",
            "wasb://lakehouse-azure-eu@devstoreaccount1",
            "fs.azure.storage.emulator.account.name",
            "devstoreaccount1",
        ),
        ("gcp-apac", "gs://lakehouse-gcp-apac", "fs.gs.storage.root.url", "http://127.0.0.1:4999"),
    ],
)
def test_emulated_locations_map_to_their_connectors(endpoints, name, spark_root, setting, value):
    loc = load_config("emulated").location(name)
    opts = loc.storage_options()
    session = _Session()
    uri = configure_storage(session, loc.table_uri("gold_daily_demand"), opts, loc)  # type: ignore[arg-type]
    assert uri == f"{spark_root}/tables/gold_daily_demand"
    # ${AWS_ENDPOINT_URL} and ${GCS_EMULATOR_ENDPOINT} are the location's own storage options
    assert session.set[setting] == value


def test_prod_keys_and_roots_resolve_from_the_environment(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_AZURE_CONTAINER", "lake")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    loc = load_config("prod").location("azure-eu")
    conf = loc.spark_conf(loc.storage_options())
    assert conf["fs.azure.account.auth.type.acct.dfs.core.windows.net"] == "OAuth"
    assert loc.spark_uri(loc.table_uri("t"), {}) == (
        "abfss://lake@acct.dfs.core.windows.net/tables/t"
    )


def test_an_unset_variable_is_named(monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("LAKEHOUSE_GCS_BUCKET", "b")
    loc = load_config("prod").location("gcp-apac")
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        loc.spark_conf(loc.storage_options())


def test_local_folders_need_no_block_and_foreign_uris_are_refused(endpoints):
    loc = load_config("local").location("aws-us")
    session = _Session()
    uri = loc.table_uri("t")
    assert configure_storage(session, uri, {}, loc) == uri  # type: ignore[arg-type]
    assert session.set == {}
    s3 = load_config("emulated").location("aws-us")
    with pytest.raises(ConfigError, match="is not under location 'aws-us'"):
        s3.spark_uri("gs://elsewhere/t", s3.storage_options())
    with pytest.raises(ConfigError, match="needs the lake location"):
        configure_storage(session, "s3://bucket/t", {}, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"rooot": "s3a://x"}, "spark.rooot: unknown key; known: root, conf"),
        ({"root": "no-scheme"}, "is not a URI"),
        ({"conf": ["a"]}, "must be a mapping"),
        ({"conf": {"fs.x": {"nested": 1}}}, "conf.fs.x must be a single value"),
    ],
)
def test_a_bad_spark_block_is_a_one_line_error(tmp_path, monkeypatch, block, message):
    config_with(
        tmp_path, monkeypatch, lambda d: _location(d, "emulated", "aws-us").update(spark=block)
    )
    with pytest.raises(ConfigError, match=message):
        load_config("emulated")
