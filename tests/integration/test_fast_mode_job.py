"""Fast mode in the Flink job: slot updates equal library mode's, reach MLflow with their own steps,
and a failure in the middle of a fast-mode period changes no prediction."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conf.settings import load_settings
from jobs.run_summary import read_snapshots
from tests.faulty_job import FAILURE_MARKER
from tests.integration.conftest import outputs, run_job, write_stream
from udfs.offline.library_mode import LibraryResult, run_library
from udfs.sim.stream_generator import StreamSpec
from udfs.tracking.mlflow_reporter import window_step

# An hour is enough: the drift at 30 min switches fast mode on at 31 min and off at 35 (8 slot updates).
DRIFT_AT_S = 1800.0
SPEC = StreamSpec(n_events=12_000, n_users=600, duration_s=3600.0, seed=41, concept_drift_at_s=DRIFT_AT_S)
# Short slices: the injected failure lands where it is aimed, and results must not depend on slicing.
OVERRIDES = ("batching.slice_ms=10000", "job.checkpoint_interval_ms=1000", "mlflow.register_every_windows=100")


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> tuple[Path, list[dict], LibraryResult]:
    tmp = tmp_path_factory.mktemp("fast-mode")
    events = write_stream(tmp / "events.jsonl", SPEC)
    library = run_library(load_settings(), (tmp / "events.jsonl").read_text().splitlines())
    return tmp / "events.jsonl", events, library


def fast_period(library: LibraryResult) -> tuple[int, int]:
    """Event times at which the first fast-mode period starts and ends."""
    switches = [s["window_end"] for s in library.snapshots for d in s["decisions"] if d["kind"].startswith("fast_mode")]
    return switches[0], switches[1]


def assert_predictions_equal_library(out: Path, library: LibraryResult) -> None:
    committed = outputs(out, "predictions")
    counts = Counter(p["event_id"] for p in committed)
    expected = {p["event_id"]: p for p in map(json.loads, library.predictions)}
    assert set(counts) == set(expected) and max(counts.values()) == 1, "lost or doubled predictions"
    for p in committed:
        want = expected[p["event_id"]]
        assert p["model_version"] == want["model_version"] and abs(p["score"] - want["score"]) < 1e-9, (p, want)


def test_fast_mode_in_the_job_equals_library_mode_and_reaches_mlflow(stream, tmp_path):
    events_file, _, library = stream
    on, off = fast_period(library)
    assert SPEC.start_ms + DRIFT_AT_S * 1000 < on < off, "the stream must switch fast mode on after its drift"
    run_job(events_file, tmp_path / "out", *OVERRIDES)
    assert_predictions_equal_library(tmp_path / "out", library)
    snapshots = read_snapshots(tmp_path / "out")
    slot_updates = [s for s in snapshots if s["update"] == "slot"]
    assert slot_updates and [s["trained_version"] for s in snapshots] == [s["trained_version"] for s in library.snapshots]

    client = MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("online-learning").experiment_id])[0]
    history = lambda name: sorted(m.step for m in client.get_metric_history(run.info.run_id, name))  # noqa: E731
    assert history("slot_logloss") == [window_step(s) for s in slot_updates] == list(range(1, len(slot_updates) + 1))
    assert history("logloss") == [window_step(s) for s in snapshots if s["update"] == "window"]
    for kind in ("fast_mode_on", "fast_mode_off"):  # at the step of the window each switch lies in
        switched = [s.get("window", window_step(s)) for s in snapshots if any(d["kind"] == kind for d in s["decisions"])]
        assert switched and history(f"decision_{kind}") == switched, kind


def test_a_failure_mid_fast_mode_changes_no_prediction_version_or_score(stream, tmp_path):
    events_file, _, library = stream
    on, off = fast_period(library)
    times = [p["event_time"] for p in map(json.loads, library.predictions)]  # epoch ms, one per event
    middle = (on + off) // 2
    fail_after = sum(1 for t in times if t < middle)
    proc = run_job(events_file, tmp_path / "out", *OVERRIDES, "mlflow.enabled=false",
                   faults=("--fail", "trainer", "--after", str(fail_after)))
    marker = tmp_path / "out" / "checkpoints" / FAILURE_MARKER.format("trainer")
    assert marker.exists(), proc.stdout[-2000:]
    # The trainer failed while the rows it had received reached into the fast-mode period.
    seen = int(marker.read_text())
    assert sum(1 for t in times if t < on) < seen <= sum(1 for t in times if t < off)
    assert_predictions_equal_library(tmp_path / "out", library)
    versions = [s["trained_version"] for s in read_snapshots(tmp_path / "out")]
    assert versions == [s["trained_version"] for s in library.snapshots], "versions restart, skip or repeat"
