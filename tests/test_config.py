"""The typed model of lakehouse.yaml: loaded once, checked whole, errors on one line."""

import datetime as dt
import re

import pytest
import yaml

from pipelines.lake import config
from pipelines.lake.config import ENVIRONMENTS, ConfigError, load_config
from scripts import config_schema


def test_the_committed_json_schema_is_the_models():
    assert config_schema.TARGET.read_text() == config_schema.render(), (
        "lakehouse.schema.json is stale: run python scripts/config_schema.py"
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_projects_file_loads_in_every_environment(env):
    cfg = load_config(env)
    assert cfg.environment == env and cfg.home.name in cfg.locations


def _with(tmp_path, monkeypatch, edit) -> str:
    data = yaml.safe_load(config.config_path().read_text())
    edit(data)
    path = tmp_path / "lakehouse.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
    return str(path)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["maintenance"].update(retention_hours=-1),
            "maintenance.retention_hours -1: Input should be greater than or equal to 0",
        ),
        (
            lambda d: d["ml"].update(promotion_metric="r2"),
            "ml.promotion_metric 'r2' is not one of mae, rmse, wape",
        ),
        (
            lambda d: d["ml"]["drift"].update(alpah=0.1),
            "ml.drift.alpah: unknown key; known: alpha, min_normed_wasserstein",
        ),
        (
            lambda d: d["environments"]["local"]["locations"][0]["landing"].update(format="csv"),
            "environments.local.locations[0].landing.format 'csv' is not one of firehose",
        ),
        (
            lambda d: d["environments"]["local"]["locations"][0].pop("root"),
            "environments.local.locations[0].root: missing (required)",
        ),
        (
            lambda d: d["environments"]["local"].update(ml_home="nowhere"),
            "environments.local.ml_home: unknown lake location 'nowhere'",
        ),
        (
            lambda d: d.update(start_date="tomorrow"),
            "start_date 'tomorrow'",
        ),
        (
            lambda d: d["privacy"].update(patterns=[{"name": "badge", "regex": "B-(\\d+"}]),
            "privacy.patterns[0]: regex of 'badge' is not valid RE2: ",
        ),
        (
            lambda d: d["privacy"].update(patterns=[{"name": "email", "regex": "x"}]),
            "'email' is a built-in detector; give the pattern another name",
        ),
        (
            lambda d: d["privacy"].update(erasure_deadline_days=0),
            "privacy.erasure_deadline_days 0: Input should be greater than or equal to 1",
        ),
        (
            lambda d: d["regions"]["eu"].update(jurisdicton="EU"),
            "regions.eu.jurisdicton: unknown key; known: currency, jurisdiction, country",
        ),
        (
            lambda d: _loc(d, 1).update(name="aws-us"),
            "environments.local.locations[1].name 'aws-us' is the name of locations[0] too",
        ),
        (
            lambda d: _loc(d, 1).update(root=".lake/aws-us/"),
            "environments.local.locations[1].root '.lake/aws-us/' is the root of locations[0] "
            "('aws-us': '.lake/aws-us'); each location needs storage of its own",
        ),
        (
            lambda d: _loc(d, 2).update(root="file://./.lake//aws-us"),
            "locations[2].root 'file://./.lake//aws-us' is the root of locations[0] ('aws-us'",
        ),
        (
            lambda d: _loc(d, 1).update(root=".lake/aws-us/x"),
            "locations[1].root '.lake/aws-us/x' is inside the root of locations[0] ('aws-us'",
        ),
        (
            lambda d: _loc(d, 2).update(root="."),
            "locations[0].root '.lake/aws-us' is inside the root of locations[2] ('gcp-apac': '.')",
        ),
        (
            lambda d: _loc(d, 0)["landing"].update(straem="x"),
            "locations[0].landing: 'straem' is not an option of format firehose; known: prefix, "
            "partitions, stream",
        ),
        (
            lambda d: _loc(d, 1)["landing"].pop("hub"),
            "locations[1].landing: format eventhubs_capture needs hub",
        ),
        (
            lambda d: d["replication"][0].update(table="gold_daily_demnd"),
            "replication[0].table 'gold_daily_demnd' is not a table of the product; "
            "known: bronze_events, bronze_quarantine",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_file_the_key_path_and_the_value(
    tmp_path, monkeypatch, edit, expected
):
    path = _with(tmp_path, monkeypatch, edit)
    with pytest.raises(ConfigError) as err:
        load_config("local")
    message = str(err.value)
    assert message.startswith(path) and expected in message and "\n" not in message, message


def _loc(data: dict, i: int) -> dict:
    return data["environments"]["local"]["locations"][i]


def test_roots_that_only_look_alike_load_and_an_absolute_one_is_compared_resolved(
    tmp_path, monkeypatch
):
    _with(tmp_path, monkeypatch, lambda d: _loc(d, 1).update(root=".lake/aws-us2"))
    assert load_config("local").location("azure-eu").root == ".lake/aws-us2"
    home, other = tmp_path / "home", tmp_path / "other"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    other.mkdir()
    path = _with(other, monkeypatch, lambda d: _loc(d, 1).update(root=f"{home}/.lake/aws-us/"))
    with pytest.raises(ConfigError) as err:
        load_config("local")
    assert str(err.value).startswith(f"{path}: environments.local.locations[1].root ")
    assert "is the root of locations[0] ('aws-us': '.lake/aws-us')" in str(err.value)


def test_a_secret_is_never_echoed_in_an_error(tmp_path, monkeypatch):
    endpoint = {"databricks_host": "https://x", "databricks_token": "dapi-secret-123"}
    _with(
        tmp_path,
        monkeypatch,
        lambda d: d["environments"]["local"].update(
            compute={"spark_endpoints": {"azure-eu": endpoint}}
        ),
    )
    with pytest.raises(ConfigError) as err:
        load_config("local")
    assert "databricks_token must be a ${VARIABLE}" in str(err.value)
    assert "dapi-secret-123" not in str(err.value)


def test_privacy_defaults_and_patterns_load(tmp_path, monkeypatch):
    assert load_config("local").privacy.erasure_deadline_days == 30
    _with(
        tmp_path,
        monkeypatch,
        lambda d: d["privacy"].update(patterns=[{"name": "loyalty", "regex": "LC-[0-9]{10}"}]),
    )
    assert load_config("local").privacy.pattern_pairs() == (("loyalty", "LC-[0-9]{10}"),)


def test_the_start_date_override_is_part_of_what_is_cached(monkeypatch):
    monkeypatch.delenv("LAKEHOUSE_START_DATE", raising=False)
    default = load_config("local").start_date
    monkeypatch.setenv("LAKEHOUSE_START_DATE", "2026-01-15")
    assert load_config("local").start_date == dt.date(2026, 1, 15)
    monkeypatch.delenv("LAKEHOUSE_START_DATE")
    assert load_config("local").start_date == default


def test_ml_settings_come_from_the_one_load(monkeypatch):
    assert config.load_ml_settings() is load_config().ml


def test_a_bad_date_or_count_in_the_file_names_its_key(tmp_path, monkeypatch):
    from pipelines.lake.config import PROJECT_ROOT, ConfigError, load_config

    text = (PROJECT_ROOT / "lakehouse.yaml").read_text()
    cases = {
        "start_date: 2026-02-30": "start_date '2026-02-30': Input should be a valid date",
        "partitions: -3": ".landing.partitions -3: Input should be greater than 0",
        "partitions: two": ".landing.partitions 'two': Input should be a valid integer",
    }
    for wrong, said in cases.items():
        key = wrong.split(":")[0]
        right = re.search(rf"\b{key}: [0-9-]+", text)
        assert right is not None, key
        path = tmp_path / "lakehouse.yaml"
        path.write_text(text.replace(right.group(0), wrong, 1))
        monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
        with pytest.raises(ConfigError) as err:
            load_config("local")
        assert str(err.value).startswith(f"{path}: ") and said in str(err.value), err.value
        assert "\n" not in str(err.value)
