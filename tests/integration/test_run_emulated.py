"""``make run-emulated`` end to end: the demo's story on moto, Azurite and fake-gcs-server.

Three simulated days run through everything the command runs (ingest, Spark silver and gold
in each region's own cloud, the sync into the ML home, Spark features, training against a
real MLflow server with artifacts in S3, forecasts, drift, the retrain sensor), with the
production Dagster profile's S3 compute log manager on moto. Training needs weeks of
features (a 28-day warm-up, a window, a holdout), so the ML home's ``demand_features`` gets
synthetic history before the three days first; the three days' features are Spark's.
"""

import datetime as dt

import pytest
from deltalake import write_deltalake

from benchmarks.demo import reconciled
from devtools import run_emulated as emulated_run
from devtools.emulators import Endpoints
from pipelines.lake import delta, tables
from pipelines.ml import tracking
from pipelines.replication.verify import table_fingerprint
from tests.integration.servers import ROOT
from tests.synthetic import synthetic_features

pytestmark = [
    pytest.mark.spark,
    pytest.mark.s3,
    pytest.mark.azure,
    pytest.mark.gcs,
    pytest.mark.mlflow,
    pytest.mark.slow,
    # the whole story: about 11 min with the machine's load around 14 (2 cores)
    pytest.mark.timeout(2400),
]
START, END = dt.date(2026, 10, 26), dt.date(2026, 10, 28)
HISTORY_DAYS = 56


def _seed_feature_history(env: emulated_run.Emulated) -> None:
    home = env.cfg.home
    history = synthetic_features(START - dt.timedelta(days=HISTORY_DAYS), HISTORY_DAYS, skus=8)
    target, options = delta.deltalake_target(
        home.table_uri(tables.FEATURES.name), home.storage_options()
    )
    write_deltalake(
        target,
        history,
        partition_by=list(tables.FEATURES.partition_by),
        storage_options=options,
    )


@pytest.fixture
def own_buckets(tmp_path, monkeypatch):
    """lakehouse.yaml with the emulated buckets renamed: other tests' objects stay out."""
    text = (ROOT / "lakehouse.yaml").read_text()
    for name in ("lakehouse-aws-us", "lakehouse-azure-eu", "lakehouse-gcp-apac"):
        text = text.replace(name, name.replace("lakehouse-", "story-"))
    path = tmp_path / "lakehouse.yaml"
    path.write_text(text)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))


def test_the_story_on_three_emulated_clouds(
    tmp_path, monkeypatch, own_buckets, s3_endpoint, azurite, gcs_endpoint
):
    monkeypatch.setenv("LAKEHOUSE_PII_KEY", "emulated-test-key")
    # the suite's emulators (Azurite's port is fixed: a second one cannot start beside them)
    running = Endpoints(s3=s3_endpoint, azure=azurite, gcs=gcs_endpoint)
    with emulated_run.emulated(tmp_path / "run", running) as env:
        assert env.bucket == "story-aws-us"
        _seed_feature_history(env)
        summary = emulated_run.run_story(env, START, END, events_per_day=300)
        cfg = env.cfg

        # every bronze partition reconciled, in all three clouds
        regions = {loc.region for loc in cfg.locations.values()}
        assert set(summary["bronze"]) == regions
        assert summary["ingest_failed"] == []
        partitions = summary["ingest_partitions"]
        assert partitions >= 3 * len(regions)  # late events land a day after
        check = reconciled(env.dagster_home, partitions)
        assert check == {"reconciled": True, "partitions_checked": partitions}

        # silver and gold in each region's own bucket or container, read back with delta-rs
        for loc in cfg.locations.values():
            opts = loc.storage_options()
            for table in (tables.SILVER, tables.GOLD):
                uri = loc.table_uri(table.name)
                assert uri.split("://")[0] in ("s3", "az", "gs"), uri
                rows = delta.read_range(uri, opts, START, END, columns=["date", "region"])
                assert rows.num_rows > 0, uri
                assert set(rows.column("region").to_pylist()) == {loc.region}, uri
                assert set(rows.column("date").to_pylist()) <= {
                    START + dt.timedelta(days=i) for i in range(3)
                }

        # replicas in the ML home at the version of their sources, the same rows
        assert cfg.replicas()
        for rep in cfg.replicas():
            src_opts, dst_opts = rep.source.storage_options(), rep.target.storage_options()
            version = delta.table_version(rep.source_uri, src_opts)
            assert rep.target_uri.startswith(f"s3://{env.bucket}/replicas/")
            assert delta.table_version(rep.target_uri, dst_opts) == version
            assert table_fingerprint(rep.target_uri, dst_opts) == table_fingerprint(
                rep.source_uri, src_opts
            )
            assert summary["replicas"][rep.name]["versions_behind"] == 0

        # the registered model: lineage pins s3:// table versions, artifacts in the bucket
        track = tracking.Tracking(
            tracking_uri=env.tracking_uri,
            experiment=cfg.ml.experiment,
            model_name=cfg.ml.model_name,
        )
        champion = track.version_by_alias(tracking.CHAMPION)
        assert champion is not None
        params = track.client().get_run(champion.run_id).data.params
        features_uri = params[f"lineage.{tables.FEATURES.name}.uri"]
        assert features_uri == cfg.home.table_uri(tables.FEATURES.name)
        assert features_uri.startswith(f"s3://{env.bucket}/")
        version = int(params[f"lineage.{tables.FEATURES.name}.version"])
        assert delta.open_table(features_uri, cfg.home.storage_options(), version) is not None
        keys = _keys(env, emulated_run.MLFLOW_PREFIX + "/")
        run_files = [k for k in keys if f"/{champion.run_id}/artifacts/" in k]
        assert any(k.endswith("/lineage.json") for k in run_files), keys[:20]
        assert any(k.endswith(tracking.REFERENCE_ARTIFACT) for k in run_files)
        # MLflow 3 keeps a logged model's files under models/<model id> (the version's
        # source is models:/<model id>), not under the run
        model_id = champion.model_id or champion.source.removeprefix("models:/")
        assert model_id.startswith("m-"), champion.source
        assert any(f"/models/{model_id}/" in k and k.endswith("/MLmodel") for k in keys), keys
        assert summary["emulated"]["mlflow"]["artifact_objects"] == len(keys)

        # drift computed for every monitored day, stored in the ML home
        monitored = summary["ml"]["monitored_days"]
        assert monitored and not [d for d, v in monitored.items() if v.get("failed")]
        drift_uri = cfg.home.table_uri(tables.DRIFT.name)
        assert delta.table_rows(drift_uri, cfg.home.storage_options()) > 0

        # the production profile's compute logs, in S3 on moto
        logs = _keys(env, emulated_run.COMPUTE_LOG_PREFIX + "/")
        assert logs and summary["emulated"]["compute_logs"]["objects"] > 0
        assert set(summary["emulated"]["not_served_by_emulators"]) == set(emulated_run.NOT_SERVED)


def _keys(env: emulated_run.Emulated, prefix: str) -> list[str]:
    s3 = emulated_run.s3_client(env.clouds.s3)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=env.bucket, Prefix=prefix)
    return [o["Key"] for p in pages for o in p.get("Contents", [])]
