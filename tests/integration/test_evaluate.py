"""scripts/evaluate.py end to end: the Flink job and the baselines on a reference stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


ABRUPT = ("sine1", "stagger", "sine_flips_slow", "hyperplane_flips")  # the rest: README "Quality under drift"


def test_abrupt_streams_adapt_within_the_drift_window_as_well_as_rivers_per_event_learner(tmp_path: Path) -> None:
    """From each drift-start window to 10 windows later, the job is at most 1.25x River's logloss (library
    engine: identical to the job), flips at the start, middle and end of windows included, and a slot finds
    each SINE1 and STAGGER drift within 120 s."""
    stdout, results = evaluate(tmp_path, "--streams", ",".join(ABRUPT), "--events", "30000", "--engine", "library")
    ratios = {r["stream"]: r["job_over_river_after_drift"] for r in results}
    assert set(ratios) == set(ABRUPT) and all(ratio <= 1.25 for ratio in ratios.values()), ratios
    for r in results:
        if r["stream"] in ("sine1", "stagger"):
            assert all(d is not None and d <= 120 for d in r["detection_delay_seconds"]), r
    assert "job/river" in stdout and "(s of event time)" in stdout
    assert "3 of 3 abrupt-drift runs within 1.25x River" in stdout, stdout[-500:]  # STAGGER's kind: recurring


def test_evaluate_puts_model_kinds_side_by_side_on_the_non_linear_stream(tmp_path: Path) -> None:
    stdout, results = evaluate(tmp_path, "--streams", "rbf", "--events", "30000", "--engine", "library",
                               "--model", "logistic,mlp")
    figures = {r["model"]: r["post_drift_logloss"]["job"] for r in results}
    assert figures["mlp"] <= 0.5 * figures["logistic"], figures
    assert "mlp/logistic" in stdout and "model mlp" in stdout


@pytest.mark.parametrize("flag", ["--streams", "--model"])
def test_evaluate_rejects_unknown_streams_and_models(tmp_path: Path, flag: str) -> None:
    proc = subprocess.run([sys.executable, "scripts/evaluate.py", flag, "nope"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"{flag}: unknown ['nope']" in proc.stderr
