"""The hybrid pattern: a model trained on the history (Parquet) with scripts/train_batch.py, then the
job on what came after, warm-started from ``@batch`` with the users' state at the end of the history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from jobs.run_summary import read_snapshots
from tests.integration.conftest import REPO, run_job, write_parquet
from udfs.sim.stream_generator import StreamSpec, generate_events

SPEC = StreamSpec(n_events=24_000, n_users=1_000, duration_s=4 * 3600.0, seed=11)  # 48 windows, 24 per half


def first_and_late(snapshots: list[dict]) -> tuple[float, float]:
    """Example-weighted logloss of the first two windows and of windows 10+."""
    def mean(part: list[dict]) -> float:
        return float(np.average([s["metrics"]["logloss"] for s in part], weights=[s["metrics"]["examples"] for s in part]))
    return mean(snapshots[:2]), mean(snapshots[9:])


def test_batch_model_then_online_starts_where_the_history_left_off(tmp_path: Path) -> None:
    events = list(generate_events(SPEC))
    half = len(events) // 2
    write_parquet(tmp_path / "history.parquet", events[:half])
    (tmp_path / "live.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events[half:]))
    out = tmp_path / "out"

    trained = subprocess.run([sys.executable, "scripts/train_batch.py", "--history", str(tmp_path / "history.parquet"),
                              "--output", str(out), "--epochs", "5"], cwd=REPO, capture_output=True, text=True,
                             timeout=600)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "registered       models:/online-learning-model@batch (version 1)" in trained.stdout
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    batch = client.get_model_version_by_alias("online-learning-model", "batch")
    assert client.get_run(batch.run_id).info.run_name == "train-batch"

    warm = run_job(tmp_path / "live.jsonl", out, "model.warm_start=models:/online-learning-model@batch",
                   f"features.initial_user_state={out / 'batch' / 'user_state.pkl'}")
    assert "warm start from models:/online-learning-model@batch: model version 1" in warm.stdout
    assert "user state       " in warm.stdout
    warm_snapshots = read_snapshots(out)
    cold_out = tmp_path / "cold"
    run_job(tmp_path / "live.jsonl", cold_out, "mlflow.enabled=false")
    cold_snapshots = read_snapshots(cold_out)

    warm_first, warm_late = first_and_late(warm_snapshots)
    cold_first, _ = first_and_late(cold_snapshots)
    assert len(warm_snapshots) == len(cold_snapshots) >= 20
    assert warm_snapshots[0]["trained_version"] == 2, "versions go on from the batch model's"
    assert abs(warm_first / warm_late - 1) <= 0.10, (warm_first, warm_late)
    assert cold_first >= 1.25 * warm_first, (cold_first, warm_first)
