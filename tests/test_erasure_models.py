"""Models trained on erased data are marked and retrained; MLflow artifacts are read back.

A real local lake holding a subject (tests/erasure_lake.py), a real MLflow store where the
Dagster resource keeps it (SQLite and an artifact folder under LAKEHOUSE_HOME/.mlflow), a real
training run registered with a lineage that pins silver_events at the version holding the
subject, and a run that logged raw bronze rows as an artifact (what the product never does).
"""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lakehouse import cli
from pipelines.erasure.models import retraining_due, scan_artifacts
from pipelines.erasure.requests import ErasureRequest
from pipelines.lake import delta
from pipelines.lake.config import MLSettings, load_config
from pipelines.ml import tracking
from pipelines.ml.lineage import upstream_lineage
from pipelines.sovereignty.compute import COMPUTE_ENV
from tests.erasure_lake import build, files_holding, subject
from tests.helpers import definitions
from tests.synthetic import synthetic_features

LOCATION = "azure-eu"
START = dt.date(2026, 9, 1)
END = dt.date(2026, 10, 30)
SETTINGS = MLSettings()


@pytest.fixture
def lake(lake_home, monkeypatch, pii_key):
    monkeypatch.delenv(COMPUTE_ENV, raising=False)
    for name in ("MLFLOW_TRACKING_URI", "LAKEHOUSE_MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    out = build("local", LOCATION, pii_key, "EUR")
    cfg = load_config()
    folder = lake_home / ".mlflow"
    folder.mkdir()
    # where MLflowResource and the CLI's default_tracking find the local store
    out["tracking"] = tracking.Tracking(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        experiment=cfg.ml.experiment,
        model_name=cfg.ml.model_name,
        artifact_location=str(folder / "artifacts"),
    )
    out["artifacts"] = folder / "artifacts"
    return out


@pytest.fixture(scope="module")
def features():
    return synthetic_features(START, 63, stores=3, skus=12).to_pandas()


def _train(lake, features, trigger=None):
    loc = lake["location"]
    silver = loc.table_uri("silver_events")
    version = delta.table_version(silver, loc.storage_options())
    lineage = [
        tracking.Lineage("demand_features", "/lake/demand_features", 5, len(features)),
        # what a model trained on a personal table records: its exact version
        tracking.Lineage("silver_events", silver, version, 2),
    ]
    return tracking.train_and_register(
        lake["tracking"], features, lineage, SETTINGS, params={"max_iter": 3}, end=END,
        trigger=trigger,
    )  # fmt: skip


def _log_raw_rows(lake, run_id: str, tmp: Path) -> str:
    """A run that logged raw bronze rows (the subject's among them) as an artifact."""
    rows = DeltaTable(lake["location"].table_uri("bronze_events")).to_pyarrow_table()
    path = tmp / "bronze_sample.parquet"
    pq.write_table(rows.select(["event_id", "customer_id", "email"]), path)
    with lake["tracking"].session() as client:
        client.log_artifact(run_id, str(path), artifact_path="samples")
    return "samples/bronze_sample.parquet"


@pytest.mark.slow
def test_erase_marks_the_pinned_model_removes_the_raw_artifact_and_the_next_run_replaces_it(
    lake, features, tmp_path, capsys
):
    t = lake["tracking"]
    first = _train(lake, features)
    assert first.promoted
    logged = _log_raw_rows(lake, first.run_id, tmp_path)
    needles = {"r": lake["needles"]}
    before = scan_artifacts(t, needles, remove=False)
    assert [p for p in before.found["r"] if p.endswith(logged)], before.found
    assert len(before.found["r"]) == 1  # the model, its input example, reference: no subject

    customer, email = subject(lake["location"])
    argv = ["erase", "--customer-id", customer, "--email", email, "--location", LOCATION]
    assert cli.main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["verified_absent"] is True
    (marked,) = report["models_marked"]
    assert marked["version"] == first.version and "champion" in marked["aliases"]
    assert marked["trained_on"][0].startswith("silver_events@v")
    (due,) = report["retraining_due"]
    assert f"v{first.version} (champion, challenger)" in due
    (place,) = report["locations"]
    art = place["mlflow_artifacts"]
    assert [p for p in art["removed"] if p.endswith(logged)] and len(art["removed"]) == 1
    assert art["files"] >= 5 and art["bytes"] > 0
    assert place["scanned"]["mlflow_artifacts"]["files"] == art["files"] - 1
    assert customer not in json.dumps(report) and email not in json.dumps(report)
    assert files_holding(lake["storage"], lake["needles"]) == []
    # a byte scan of the artifact folder, independent of the product's
    left = [p for p in lake["artifacts"].rglob("*") if p.is_file()]
    assert left and not [p for p in left if any(n in p.read_bytes() for n in lake["needles"])]
    assert not [p for p in left if p.name == "bronze_sample.parquet"]

    mv = t.client().get_model_version(t.model_name, first.version)
    assert mv.tags[tracking.ERASED_TAG] == report["request_id"]
    receipt = DeltaTable(lake["location"].table_uri("erasure_receipts")).to_pyarrow_table()
    models = json.loads(receipt["models"][0].as_py())
    assert models["marked"][0]["version"] == first.version
    assert json.loads(receipt["artifacts"][0].as_py())["removed"] == art["removed"]

    # the model still loads (only the logged sample went), and the next run replaces it
    assert t.load_model(first.version) is not None
    second = _train(lake, features, trigger={"trigger": "erasure"})
    assert second.promoted and "trained on erased data" in second.reason
    assert "champion" not in second.metrics  # the marked champion was not scored
    assert retraining_due(t) == []
    assert str(t.version_by_alias(tracking.CHAMPION).version) == second.version


def test_a_model_pinned_to_a_version_without_the_subject_is_not_marked(lake, capsys):
    loc = lake["location"]
    bronze = loc.table_uri("bronze_events")
    clean = lake["bronze_clean_version"]
    with lake["tracking"].session() as client:
        client.create_registered_model(lake["tracking"].model_name)
        mv = client.create_model_version(
            lake["tracking"].model_name,
            source=str(lake["artifacts"] / "model"),
            tags={"lineage.bronze_events.uri": bronze, "lineage.bronze_events.version": str(clean)},
        )
    customer, _ = subject(loc)
    assert cli.main(["erase", "--customer-id", customer, "--location", LOCATION]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified_absent"] and report["models_marked"] == []
    assert report["retraining_due"] == []
    kept = lake["tracking"].client().get_model_version(lake["tracking"].model_name, mv.version)
    assert tracking.ERASED_TAG not in kept.tags
    assert (
        DeltaTable(bronze, version=clean).to_pyarrow_table().num_rows == lake["bronze_rows_clean"]
    )


def _retrain_sensor(instance: dg.DagsterInstance, cursor: str | None = None):
    sensor = definitions().resolve_sensor_def("erased_model_retrain_sensor")
    with dg.build_sensor_context(instance=instance, cursor=cursor) as ctx:
        return sensor(ctx)


@pytest.mark.slow
def test_the_erasure_run_marks_the_model_and_the_sensor_asks_for_retraining(lake, features):
    from pipelines.erasure import requests

    t = lake["tracking"]
    first = _train(lake, features)
    instance = dg.DagsterInstance.ephemeral()
    assert not _retrain_sensor(instance).run_requests
    loc = lake["location"]
    customer, email = subject(loc)
    request = ErasureRequest.new(customer, email)
    requests.submit(loc, loc.storage_options(), request)
    job = definitions().resolve_job_def("erasure_job")
    result = job.execute_in_process(instance=instance, partition_key=LOCATION)
    assert result.success
    (mat,) = result.asset_materializations_for_node("erasure_receipts")
    assert mat.metadata["models_marked"].value == 1
    (due,) = mat.metadata["retraining_due"].value
    assert due["version"] == first.version and due["aliases"] == ["champion", "challenger"]
    assert mat.metadata["mlflow_artifacts"].value["files"] > 0

    found = _retrain_sensor(instance)
    (run,) = found.run_requests
    assert run.job_name in (None, "retrain_job")
    assert run.tags["lakehouse/trigger"] == "erased_model_retrain_sensor"
    assert LOCATION in run.tags["lakehouse/drift_reason"]
    assert not _retrain_sensor(instance, found.cursor).run_requests  # a replayed tick: nothing
    assert t.client().get_model_version(t.model_name, first.version).tags[tracking.ERASED_TAG]


def _commit_naming(uri: str, rows, inputs: dict[str, int], partition_by: list[str]) -> int:
    """Write ``rows`` to ``uri`` with a commit naming what it read, as a transform's does."""
    meta = {
        delta.lineage.INPUTS_KEY: json.dumps([{"uri": u, "version": v} for u, v in inputs.items()])
    }
    write_deltalake(
        uri, rows, partition_by=partition_by, mode="append",
        commit_properties=CommitProperties(custom_metadata=meta),
    )  # fmt: skip
    return delta.table_version(uri, {})


def test_the_forecaster_is_marked_through_the_versions_behind_its_features(lake, features, capsys):
    """Features -> gold -> silver: a model recording only its features version is marked."""
    cfg = load_config()
    loc = lake["location"]
    silver = loc.table_uri("silver_events")
    held = delta.table_version(silver, {})  # the version holding the subject
    gold = loc.table_uri("gold_daily_demand")
    day = pa.table({"date": [dt.date(2026, 10, 1)], "region": [loc.region], "units": [3]})
    gold_version = _commit_naming(gold, day, {silver: held}, ["date", "region"])
    feats = cfg.home.table_uri("demand_features")
    table = pa.Table.from_pandas(features, preserve_index=False)
    features_version = _commit_naming(feats, table, {gold: gold_version}, ["date"])
    behind = upstream_lineage(cfg, feats, features_version, lambda loc: loc.storage_options())
    assert {(x.table, x.version) for x in behind} == {
        (f"gold_daily_demand.{LOCATION}", gold_version),
        (f"silver_events.{LOCATION}", held),
    }
    lineage = [tracking.Lineage("demand_features", feats, features_version, len(features))]
    first = tracking.train_and_register(
        lake["tracking"], features, [*lineage, *behind], SETTINGS, params={"max_iter": 3}, end=END
    )
    customer, email = subject(loc)
    argv = ["erase", "--customer-id", customer, "--email", email, "--location", LOCATION]
    assert cli.main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    (marked,) = report["models_marked"]
    assert marked["version"] == first.version
    assert f"silver_events@v{held}" in marked["trained_on"]


def test_upstream_versions_follow_spark_user_metadata_and_take_the_latest(tmp_path):
    bronze, silver = str(tmp_path / "bronze"), str(tmp_path / "silver")
    one = pa.table({"a": [1]})
    for _ in range(3):
        write_deltalake(bronze, one, mode="append")
    # Spark's commits carry the list in userMetadata; delta-rs's under its own key
    for version in (0, 2):
        write_deltalake(
            silver, one, mode="append",
            commit_properties=CommitProperties(
                custom_metadata={"userMetadata": delta.inputs_metadata({bronze: version})}
            ),
        )  # fmt: skip
    write_deltalake(silver, one, mode="append")  # a commit naming nothing
    assert delta.upstream_versions(silver, 2, lambda u: {}) == {bronze: 2}
    assert delta.upstream_versions(silver, 0, lambda u: {}) == {bronze: 0}
    assert delta.upstream_versions(str(tmp_path / "gone"), 0, lambda u: {}) == {}
    assert delta.commit_inputs({"userMetadata": "not json"}) == {}


def test_upstream_versions_read_the_newest_naming_commit_not_the_history(tmp_path):
    from pipelines.lake.storage import bytes_read, bytes_read_since, bytes_under

    bronze, gold = str(tmp_path / "bronze"), str(tmp_path / "gold")
    write_deltalake(bronze, pa.table({"a": [1]}))
    for version in range(30):  # a month of daily writes, each naming what it read
        write_deltalake(
            gold, pa.table({"a": [version]}), mode="append",
            commit_properties=CommitProperties(
                custom_metadata={"userMetadata": delta.inputs_metadata({bronze: version})}
            ),
        )  # fmt: skip
    write_deltalake(gold, pa.table({"a": [0]}), mode="append")  # upkeep's: names nothing
    log = tmp_path / "gold" / "_delta_log"
    newest = [log / f"{v:020d}.json" for v in (30, 29)]
    before = bytes_read()
    assert delta.upstream_versions(gold, 30, lambda u: {} if u == gold else None) == {bronze: 29}
    # the two newest commits, not the thirty before them
    assert bytes_under(bytes_read_since(before), gold) == sum(p.stat().st_size for p in newest)
