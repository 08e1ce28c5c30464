"""scripts/evaluate.py end to end: the Flink job and the baselines on a reference stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import REPO


def evaluate(tmp_path: Path, *args: str) -> tuple[str, list[dict]]:
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, "scripts/evaluate.py", "--json", str(out), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_evaluate_on_sine1_with_the_flink_job(tmp_path: Path) -> None:
    stdout, (flink,) = evaluate(tmp_path, "--streams", "sine1", "--events", "30000")
    assert "post-drift logloss" in stdout and "job/static" in stdout
    assert flink["detection_delay_windows"] and all(d is not None and d <= 2 for d in flink["detection_delay_windows"])
    assert flink["job_over_static"] <= 0.9, flink
    assert flink["job_over_per_event_after_drift_windows"] <= 1.05, flink
    assert flink["false_alarms_per_100_stationary_windows"] <= 5.0

    _, (library,) = evaluate(tmp_path, "--streams", "sine1", "--events", "30000", "--engine", "library")
    assert library["post_drift_logloss"] == flink["post_drift_logloss"], "the two engines must agree"


def test_evaluate_rejects_unknown_streams(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "scripts/evaluate.py", "--streams", "nope"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--streams: unknown ['nope']" in proc.stderr
