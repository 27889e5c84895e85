"""Training and registry against a real ``mlflow server`` on 127.0.0.1 (not the SQLite default)."""

import datetime as dt

import dagster as dg
import pytest
from deltalake import write_deltalake

from pipelines.lake import delta
from pipelines.lake.config import load_config
from pipelines.ml import tracking
from resources import LakeResource, MLflowResource
from tests.helpers import asset
from tests.integration.servers import mlflow_server
from tests.synthetic import synthetic_features

pytestmark = pytest.mark.mlflow
END = dt.date(2026, 10, 31)


@pytest.fixture
def tracking_server(tmp_path):
    with mlflow_server(tmp_path, "--default-artifact-root", str(tmp_path / "artifacts")) as url:
        yield url


def test_train_and_register_against_a_real_server(lake_home, tracking_server):
    home = load_config("local").home
    uri = home.table_uri("demand_features")
    write_deltalake(
        uri,
        synthetic_features(dt.date(2026, 9, 1), 61, stores=3, skus=15),
        partition_by=["date"],
    )
    resources = {"lake": LakeResource(), "mlflow": MLflowResource(tracking_uri=tracking_server)}
    instance = dg.DagsterInstance.ephemeral()
    metas = []
    for cfg in ({}, {"max_iter": 3}):
        result = dg.materialize(
            [asset("demand_model", "emulated")],
            resources=resources,
            instance=instance,
            run_config={"ops": {"demand_model": {"config": {"end_date": END.isoformat(), **cfg}}}},
        )
        assert result.success
        metas.append(result.asset_materializations_for_node("demand_model")[0].metadata)
    assert metas[0]["promoted"].value is True
    assert metas[1]["promoted"].value is False

    track = tracking.Tracking(tracking_uri=tracking_server)
    champ = track.version_by_alias("champion")
    assert str(champ.version) == metas[0]["model_version"].value
    assert str(track.version_by_alias("challenger").version) == metas[1]["model_version"].value
    run = track.client().get_run(champ.run_id)
    assert run.data.params["lineage.demand_features.uri"] == uri
    assert run.data.params["lineage.demand_features.version"] == str(delta.table_version(uri, {}))
    assert run.info.experiment_id == track.experiment_id()

    scored = dg.materialize(
        [asset("demand_forecast", "emulated")],
        partition_key=END.isoformat(),
        resources=resources,
        instance=instance,
    )
    assert scored.success
    meta = scored.asset_materializations_for_node("demand_forecast")[0].metadata
    assert meta["model_version"].value == str(champ.version)
