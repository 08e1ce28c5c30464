"""The job against a real MLflow tracking server (sqlite backend, proxied artifacts)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from jobs.run_summary import read_snapshots
from tests.integration.conftest import outputs, run_job, write_stream
from udfs.learning.model import Model
from udfs.sim.stream_generator import StreamSpec
from udfs.tracking.mlflow_reporter import window_step
from udfs.tracking.pyfunc_model import bucket_columns

MODEL = "ol-test-model"


@pytest.fixture(scope="module")
def job_run(mlflow_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow-job")
    spec = StreamSpec(n_events=12_000, n_users=500, duration_s=3600.0, seed=5)
    write_stream(tmp / "events.jsonl", spec)
    run_job(tmp / "events.jsonl", tmp / "out", f"mlflow.tracking_uri={mlflow_server}",
            "mlflow.experiment=ol-test", f"mlflow.registered_model={MODEL}", "mlflow.register_every_windows=5")
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("ol-test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0], tmp / "out"


def test_run_has_config_params_and_finished(job_run):
    _, run, _ = job_run
    assert run.info.status == "FINISHED"
    assert run.data.params["window.size_ms"] == "300000"
    assert run.data.params["mlflow.registered_model"] == MODEL


def test_per_window_metrics_with_steps(job_run):
    client, run, out = job_run
    versions = sorted(window_step(s) for s in outputs(out, "snapshots") if s["update"] == "window")
    assert len(versions) >= 12
    for name in ("examples", "logloss", "accuracy", "auc", "update_seconds", "drift_detections"):
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in history) == versions, name


def test_snapshot_artifact_per_window(job_run):
    client, run, out = job_run
    files = [a.path for a in client.list_artifacts(run.info.run_id, "snapshots")]
    assert len(files) == len(outputs(out, "snapshots"))
    windows = [f for f in files if f.startswith("snapshots/snapshot-")]  # slot updates: snapshots/slot-*
    local = client.download_artifacts(run.info.run_id, windows[-1])
    assert window_step(json.loads(Path(local).read_text())) == len(windows)


def test_champion_is_loadable_and_matches_last_snapshot(job_run, mlflow_server):
    client, _, out = job_run
    last = read_snapshots(out)[-1]
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["snapshot_version"] == str(last["version"])
    assert len(client.search_model_versions(f"name = '{MODEL}'")) >= 2  # periodic + final
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(20, len(last["dense_names"])))
    buckets = rng.integers(0, last["parameters"]["hash_buckets"], size=(20, 2))
    frame = pd.DataFrame(dense, columns=last["dense_names"])
    snapshot_model = Model.from_parameters(last["parameters"])
    onehot = snapshot_model.scaler.design(dense, buckets)[:, len(last["dense_names"]):]  # the one-hot part
    frame[bucket_columns(onehot.shape[1])] = onehot
    expected = snapshot_model.predict_proba(dense, buckets)
    np.testing.assert_allclose(np.asarray(model.predict(frame)), expected, rtol=1e-9)
