"""The client's reconcile after a bounded run, against a real MLflow store (sqlite, no server).

Flink reports a job finished without waiting for its Python functions' ``close``, so the job's
reporter may still be delivering when the client reconciles. The two must not both log a window.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conf.settings import load_settings
from udfs.offline.library_mode import run_library
from udfs.sim.stream_generator import StreamSpec, generate_events
from udfs.tracking.mlflow_reporter import MlflowReporter

MODEL = "reconcile-test"


@pytest.fixture(scope="module")
def snapshots() -> list[dict]:
    spec = StreamSpec(n_events=3_000, n_users=100, duration_s=4 * 300.0, seed=5)
    return run_library(load_settings(), [json.dumps(e) for e in generate_events(spec)]).snapshots


@pytest.fixture
def run(tmp_path: Path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("reconcile", artifact_location=(tmp_path / "artifacts").as_uri())
    return uri, client.create_run(experiment).info.run_id


def test_reconcile_waits_for_a_job_reporter_still_delivering(snapshots: list[dict], run: tuple[str, str]) -> None:
    uri, run_id = run
    job_reporter = MlflowReporter(uri, run_id, MODEL, register_every=100, queue_size=100)
    for snapshot in snapshots:
        job_reporter.submit(snapshot)
    # The job's reporter starts its backlog only once the client is already reconciling.
    late = threading.Timer(1.0, lambda: job_reporter.start().close(60))
    late.start()
    logged_here = MlflowReporter(uri, run_id, MODEL, 100, 1).reconcile(snapshots, timeout_s=60)
    late.join()
    job_reporter.thread.join(60)

    assert len(snapshots) >= 3
    assert logged_here == 0, "the client logged windows the job's reporter was delivering"
    versions = MlflowClient(uri).search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == 1, f"the final model registered {len(versions)} times"


def test_reconcile_logs_what_a_reporter_that_never_finished_left(snapshots: list[dict], run: tuple[str, str]) -> None:
    uri, run_id = run
    logged_here = MlflowReporter(uri, run_id, MODEL, 100, 1).reconcile(snapshots, timeout_s=1)

    assert logged_here == len(snapshots)
    steps = [m.step for m in MlflowClient(uri).get_metric_history(run_id, "window_end")]
    assert sorted(steps) == [s["step"] for s in snapshots]
    versions = MlflowClient(uri).search_model_versions(f"name = '{MODEL}'")
    assert [v.tags["snapshot_version"] for v in versions] == [str(snapshots[-1]["version"])]
