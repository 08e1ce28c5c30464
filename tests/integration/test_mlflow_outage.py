"""The tracking server goes down mid-run and comes back: the job keeps scoring, and every
window's metrics end up in MLflow, once each."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from jobs.progress import lines_written
from jobs.run_summary import read_snapshots
from scripts.broker import wait_until
from tests.integration.conftest import REPO, MlflowServer, job_command, outputs, write_stream
from udfs.sim.stream_generator import StreamSpec
from udfs.tracking.mlflow_reporter import window_step

SPEC = StreamSpec(n_events=40_000, n_users=2_000, duration_s=4 * 3600.0, seed=29)
# The reader slowed to 1 s a chunk of 500 lines (80 s for the stream, a window about every 2 s): long enough
# that the job is still running while the server restarts (about 20 s) and the reporter catches up.
PACING = ("source.chunk_lines=500",)
SLOW = ("--slow-reader", "1000")
# MLflow's own HTTP retries (minutes of backoff by default) made short, so that the reporter's
# retry loop, the part under test, decides when a window goes through.
MLFLOW_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                     "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def test_job_rides_out_an_mlflow_outage_and_logs_every_window(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    events = write_stream(tmp_path / "events.jsonl", SPEC)
    (tmp_path / "mlflow").mkdir()
    server = MlflowServer(tmp_path / "mlflow").start()
    request.addfinalizer(server.stop)  # back after the outage, it stays up for the checks after the job
    out = tmp_path / "out"
    cmd = job_command(tmp_path / "events.jsonl", out, f"mlflow.tracking_uri={server.url}", "mlflow.experiment=outage",
                      "mlflow.register_every_windows=100", *PACING, module="tests.faulty_job") + list(SLOW)
    job = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, **MLFLOW_CLIENT_ENV})
    try:
        client = MlflowClient(server.url)
        wait_until(lambda: _windows_logged(client) >= 2 or job.poll() is not None, 300, "2 windows in MLflow", 0.5)
        server.stop()
        during = lines_written(out / "snapshots"), lines_written(out / "predictions")
        # Snapshots and predictions leave different operators, each a bundle at a time: wait for both.
        wait_until(lambda: (lines_written(out / "snapshots") >= during[0] + 3
                            and lines_written(out / "predictions") > during[1]) or job.poll() is not None, 300,
                   "3 more windows and more predictions while MLflow is down", 0.5)
        assert job.poll() is None, "the job ended before the outage was over; make the stream longer"
        assert lines_written(out / "predictions") > during[1], "predictions stalled while MLflow was down"
        server.start()
        behind = _windows_logged(client)
        wait_until(lambda: _windows_logged(client) > behind + 2 or job.poll() is not None, 300,
                   "the reporter to catch up after the outage", 0.5)
        assert job.poll() is None, "the job ended before the reporter caught up; make the stream longer"
        stdout, _ = job.communicate(timeout=600)
    finally:
        job.kill()
    assert job.returncode == 0, stdout[-4000:]

    assert len(outputs(out, "predictions")) == len(events)
    snapshots = read_snapshots(out)
    run_id = _run(client).info.run_id
    steps = Counter(m.step for m in client.get_metric_history(run_id, "window_end"))
    assert sorted(steps) == [window_step(s) for s in snapshots if s["update"] == "window"], "windows missing in MLflow"
    assert max(steps.values()) == 1, "a window logged twice"
    summary = json.loads((out / "summary.json").read_text())
    # The client's reconcile waits for the job's reporter (Flink does not wait for it): with no
    # snapshot dropped, the reporter delivered every window, its backlog from the outage included.
    assert summary["mlflow_windows_logged_after_job"] == 0, "windows the job's reporter did not deliver"


def _run(client: MlflowClient):
    experiment = client.get_experiment_by_name("outage")
    return client.search_runs([experiment.experiment_id])[0]


def _windows_logged(client: MlflowClient) -> int:
    try:
        return len(client.get_metric_history(_run(client).info.run_id, "window_end"))
    except Exception:  # noqa: BLE001 - the run may not exist yet
        return 0
