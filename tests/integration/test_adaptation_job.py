"""Rollback and warm start in the Flink job, against a real MLflow server: the restored version
shows in the predictions and in the registry, and a new job starts from the registered champion."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from jobs.run_summary import read_snapshots
from tests.integration.conftest import outputs, run_job, write_stream
from udfs.sim.stream_generator import StreamSpec
from udfs.tracking.mlflow_reporter import CHAMPION_ALIAS, window_step

WINDOW_MS = 300_000
MODEL = "rollback-model"
STREAM = StreamSpec(n_events=20_000, n_users=600, duration_s=2 * 3600.0, seed=37)


@pytest.fixture(scope="module")
def rollback_run(tmp_path_factory, mlflow_server: str) -> tuple[Path, MlflowClient]:
    tmp = tmp_path_factory.mktemp("rollback")
    write_stream(tmp / "events.jsonl", STREAM)
    run_job(tmp / "events.jsonl", tmp / "out", f"mlflow.tracking_uri={mlflow_server}",
            "mlflow.experiment=rollback", f"mlflow.registered_model={MODEL}", "mlflow.register_every_windows=100",
            "adaptation.gate=false",
            "adaptation.fast_mode=false",  # tests/unit/test_adaptation.py has fast mode on as well as off
            faults=("--corrupt-candidate-at", "10"))
    return tmp / "out", MlflowClient(mlflow_server)


def test_a_bad_snapshot_that_got_through_is_rolled_back_in_predictions_and_registry(rollback_run):
    out, client = rollback_run
    snapshots = read_snapshots(out)
    assert snapshots[9]["version"] == 10, "without the gate the corrupted candidate serves one window"
    rollback = next(d for d in snapshots[10]["decisions"] if d["kind"] == "rollback")
    restored = rollback["to_version"]
    assert restored < 10 and snapshots[10]["version"] == restored

    start, end = snapshots[9]["window_end"], snapshots[10]["window_end"]
    versions = {p["model_version"] for p in outputs(out, "predictions") if start <= p["event_time"] < end + WINDOW_MS}
    assert versions == {10, restored}, "the corrupted window scored by v10, the next by the restored version"

    registered = client.search_model_versions(f"name = '{MODEL}'")
    for_rollback = [m for m in registered if m.tags.get("registered_for") == "rollback"]
    assert [m.tags["snapshot_version"] for m in for_rollback] == [str(restored)]
    run_id = for_rollback[0].run_id
    assert [m.step for m in client.get_metric_history(run_id, "decision_rollback")] == [window_step(snapshots[10])]
    champion = client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS)
    assert champion.tags["snapshot_version"] == str(snapshots[-1]["version"]), "champion follows the serving model"


def test_a_job_warm_starts_from_the_registered_champion(rollback_run, mlflow_server: str, tmp_path: Path):
    out, client = rollback_run
    champion = client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS)
    last = read_snapshots(out)[-1]
    write_stream(tmp_path / "events.jsonl", StreamSpec(n_events=6_000, n_users=300, duration_s=1800.0, seed=38))
    proc = run_job(tmp_path / "events.jsonl", tmp_path / "out", f"mlflow.tracking_uri={mlflow_server}",
                   "mlflow.experiment=warm", f"mlflow.registered_model={MODEL}-warm",
                   f"model.warm_start=models:/{MODEL}@{CHAMPION_ALIAS}")
    assert f"model version {champion.tags['snapshot_version']}" in proc.stdout
    first_window = [p for p in outputs(tmp_path / "out", "predictions")
                    if p["event_time"] < STREAM.start_ms - STREAM.start_ms % WINDOW_MS + WINDOW_MS]
    assert first_window and {p["model_version"] for p in first_window} == {last["version"]}
    snapshots = read_snapshots(tmp_path / "out")
    assert snapshots[0]["trained_version"] == last["trained_version"] + 1, "versions go on from the warm start"
