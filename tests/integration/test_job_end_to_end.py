"""The whole job on the MiniCluster over generated streams: exactly-once predictions,
prequential versions, learning, drift detection and false alarms, dead letters."""

from __future__ import annotations

import bisect
import json
import re
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conf.settings import load_settings
from jobs.run_summary import read_snapshots
from tests.faulty_job import FAILURE_MARKER
from tests.integration.conftest import assert_same_model, differing_predictions, outputs, run_job, write_stream
from udfs.features.events import window_start
from udfs.learning.metrics import log_loss
from udfs.offline.library_mode import run_library
from udfs.sim.stream_generator import CovariateShift, StreamSpec
from udfs.tracking.mlflow_reporter import window_step

WINDOW_MS = 300_000
SLOT_MS = 30_000
ALPHA = 0.05
STATIONARY = StreamSpec(n_events=40_000, n_users=1_000, duration_s=3 * 3600.0, seed=11)
DUPLICATES = 7  # valid events sent twice in a row: the second copy is a dead letter


def bad_corpus(spec: StreamSpec) -> list[tuple[str, str]]:
    """(line, expected dead-letter reason); every case the validator promises to catch."""
    good = {"event_id": "bad-0", "user_id": "u-bad", "item_id": None, "event_time": spec.start_ms + 3_600_000,
            "features": {"amount": 1.0}, "label": 1}

    def variant(i: int, **changes) -> str:
        return json.dumps({**good, "event_id": f"bad-{i}", **changes})

    return [
        ("{not json", "malformed_json"),
        ('"just a string"', "not_an_object"),
        (json.dumps({k: v for k, v in good.items() if k != "user_id"}), "missing_field"),
        (variant(1, user_id={"id": 3}), "bad_field_type"),
        (variant(2, event_time="tomorrow"), "bad_event_time"),
        (variant(3, event_time=10**15), "event_time_out_of_range"),
        (variant(4, event_time=0), "event_time_out_of_range"),
        (variant(5, label=7), "bad_label"),
        (variant(6, features={"amount": "abc"}), "bad_feature_type"),
        (variant(7, features={"amount": float("nan")}), "non_finite_feature"),
        (variant(8, features={"price": float("inf")}), "non_finite_feature"),
        (variant(9, features={"amount": 1.0, "blob": "x" * 100_000}), "oversized"),
        (variant(10, event_time=spec.start_ms + 1_000), "late_event"),
        (variant(11, features={"amount": 10**400}), "non_finite_feature"),  # an integer no float holds
        ("[" * 5000 + "]" * 5000, "malformed_json"),  # nested deeper than the JSON parsers allow
    ]


@pytest.fixture(scope="module")
def stationary_run(tmp_path_factory) -> tuple[Path, list[dict], list[tuple[str, str]]]:
    tmp = tmp_path_factory.mktemp("stationary")
    corpus = bad_corpus(STATIONARY)
    events = write_stream(tmp / "events.jsonl", STATIONARY, [line for line, _ in corpus], duplicates=DUPLICATES)
    run_job(tmp / "events.jsonl", tmp / "out", f"drift.alpha={ALPHA}", "mlflow.register_every_windows=100")
    return tmp / "out", events, corpus


def test_exactly_one_prediction_per_valid_event(stationary_run):
    out, events, _ = stationary_run
    counts = Counter(p["event_id"] for p in outputs(out, "predictions"))
    assert set(counts) == {e["event_id"] for e in events}
    assert max(counts.values()) == 1
    assert all(isinstance(p["model_version"], int) for p in outputs(out, "predictions"))


def test_each_event_is_scored_by_the_newest_model_trained_before_its_slot(stationary_run):
    out, _, _ = stationary_run
    snapshots = read_snapshots(out)
    assert [s["trained_version"] for s in snapshots] == list(range(1, len(snapshots) + 1))
    ends = [s["window_end"] for s in snapshots]  # of windows and of fast-mode slot updates
    for p in outputs(out, "predictions"):
        newest = bisect.bisect_right(ends, window_start(p["event_time"], SLOT_MS))
        assert p["model_version"] == (snapshots[newest - 1]["version"] if newest else 0), p


def test_model_learns_on_a_stationary_stream(stationary_run):
    out, _, _ = stationary_run
    snapshots = [s for s in read_snapshots(out) if s["update"] == "window"]
    assert len(snapshots) >= 30
    late = [s["metrics"] for s in snapshots[10:]]
    weights = [m["examples"] for m in late]
    model = np.average([m["logloss"] for m in late], weights=weights)
    base = np.average([m["baseline_logloss"] for m in late], weights=weights)
    assert model <= 0.8 * base, (model, base)
    # The same judgement from the emitted predictions themselves.
    start_10 = snapshots[9]["window_end"]
    scored = [p for p in outputs(out, "predictions") if p["label"] is not None and p["event_time"] >= start_10]
    y = np.array([p["label"] for p in scored], dtype=float)
    p_model = np.array([p["score"] for p in scored])
    assert log_loss(y, p_model) <= 0.8 * log_loss(y, np.full(len(y), y.mean()))


def test_false_alarms_per_window_within_alpha(stationary_run):
    out, _, _ = stationary_run
    windows = len([s for s in outputs(out, "snapshots") if s["update"] == "window"])
    drift = outputs(out, "drift")
    assert len(drift) / windows <= ALPHA, drift


def test_every_bad_record_is_accounted_for_by_reason(stationary_run):
    out, _, corpus = stationary_run
    dead = outputs(out, "dead_letters")
    expected = Counter(reason for _, reason in corpus) + Counter({"duplicate_event_id": DUPLICATES})
    assert Counter(d["reason"] for d in dead) == expected
    assert all(d["detail"] for d in dead)
    predicted = {p["event_id"] for p in outputs(out, "predictions")}
    assert not any(i.startswith("bad-") for i in predicted)


def test_run_summary_is_written_and_consistent(stationary_run):
    out, events, corpus = stationary_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["predictions"] == len(events)
    assert summary["dead_letters"] == len(corpus) + DUPLICATES
    snapshots = outputs(out, "snapshots")
    assert summary["windows"] + summary["slot_updates"] == len(snapshots)
    assert summary["windows"] == len([s for s in snapshots if s["update"] == "window"])


def test_covariate_shift_is_detected_within_two_windows(tmp_path):
    # 8,000 events an hour: 18 windows before the shift to count false alarms in, and 6 after it,
    # room for a detection up to two windows late.
    shift_s = 5400.0
    spec = StreamSpec(n_events=16_000, n_users=800, duration_s=2 * 3600.0, seed=23,
                      covariate_shifts=(CovariateShift("amount", shift_s, 1.0),))
    write_stream(tmp_path / "events.jsonl", spec)
    run_job(tmp_path / "events.jsonl", tmp_path / "out", "mlflow.enabled=false", f"drift.alpha={ALPHA}")
    shift_window = window_start(spec.start_ms + int(shift_s * 1000), WINDOW_MS)
    hits = [d for d in outputs(tmp_path / "out", "drift") if d["kind"] == "feature" and d["name"] == "amount"]
    assert hits, "no drift event for the shifted feature 'amount'"
    first = min(d["window_start"] for d in hits if d["window_start"] >= shift_window)
    assert (first - shift_window) // WINDOW_MS <= 2
    before = [d for d in outputs(tmp_path / "out", "drift") if d["window_end"] <= shift_window]
    assert len(before) / (shift_window - window_start(spec.start_ms, WINDOW_MS)) * WINDOW_MS <= ALPHA


# The ensemble's run also serves with a lag of one slot: the job's lag rule is checked against library
# mode's without a run of its own.
KIND_OVERRIDES = {"logistic": (), "mlp": (), "ensemble": (f"window.serving_lag_ms={SLOT_MS}",)}


@pytest.fixture(scope="module")
def kind_runs(stationary_run, tmp_path_factory) -> Callable[[str], Path]:
    """The job's outputs on the stationary events for a model kind (logistic: the stationary run)."""
    out, _, _ = stationary_run
    runs = {"logistic": out}

    def run(kind: str) -> Path:
        if kind not in runs:
            tmp = tmp_path_factory.mktemp(kind)
            run_job(out.parent / "events.jsonl", tmp / "out", f"drift.alpha={ALPHA}",
                    "mlflow.register_every_windows=100", f"model.kind={kind}", *KIND_OVERRIDES[kind])
            runs[kind] = tmp / "out"
        return runs[kind]
    return run


@pytest.mark.parametrize("kind", ["logistic", "mlp", "ensemble"])
def test_flink_job_matches_library_mode_exactly(stationary_run, kind_runs, kind):
    """The Flink graph and the plain-Python loop share udfs/: same scores, same versions, for every model kind."""
    out = kind_runs(kind)
    lines = (stationary_run[0].parent / "events.jsonl").read_text().splitlines()
    # Another slice length than the job's (auto): results must not depend on how events were batched.
    library = run_library(load_settings(overrides=[f"drift.alpha={ALPHA}", f"model.kind={kind}",
                                                   "batching.slice_ms=6000", *KIND_OVERRIDES[kind]]), lines)
    committed = outputs(out, "predictions")
    assert {p["event_id"] for p in committed} == {json.loads(p)["event_id"] for p in library.predictions}
    assert not differing_predictions(committed, library.predictions)
    assert_same_model(read_snapshots(out)[-1]["parameters"], library.snapshots[-1]["parameters"], atol=1e-9)


def test_results_do_not_depend_on_when_pyflink_lets_a_watermark_through(tmp_path):
    """Bundles of three records: PyFlink holds a watermark back until the bundle in flight
    finishes, and by then that bundle holds the first batches of the next slice. The trainer
    closed their slots at that held watermark with part of their rows, so it trained on another
    order than library mode (on a busy machine this happened now and then with the default bundles).
    Without a serving lag (the default) the predictor also waits on the trainer's snapshot of the
    slot before: the case where the order of a held watermark and a snapshot matters most.
    Bundles are process mode's (thread mode hands records over one at a time), so this is also
    the suite's check that process mode gives library mode's results."""
    spec = StreamSpec(n_events=10_000, n_users=500, duration_s=3600.0, seed=5)
    write_stream(tmp_path / "events.jsonl", spec)
    run_job(tmp_path / "events.jsonl", tmp_path / "out", "job.python_execution_mode=process",
            "job.python_bundle_size=3", "job.python_bundle_time_ms=60000")
    library = run_library(load_settings(), (tmp_path / "events.jsonl").read_text().splitlines())
    committed = outputs(tmp_path / "out", "predictions")
    assert Counter(p["event_id"] for p in committed) == Counter(json.loads(p)["event_id"] for p in library.predictions)
    differing = differing_predictions(committed, library.predictions)
    assert not differing, f"{len(differing)} of {len(committed)} predictions differ from library mode's"


@pytest.mark.parametrize(("kind", "taskmanager_lost"), [("logistic", False), ("mlp", False), ("logistic", True)],
                         ids=["logistic", "mlp", "logistic-taskmanager-lost"])
def test_failure_mid_stream_recovers_with_exactly_once_output_and_same_model(stationary_run, kind_runs, kind,
                                                                             taskmanager_lost, tmp_path, monkeypatch):
    """An operator throws once after 15,000 records; Flink restores the last checkpoint and replays.

    ``taskmanager_lost``: the predictor's close() fails as well when that failure cancels it, so Flink
    stops the TaskManager (what PyFlink's process-mode operators now and then do on their own): the
    restart must go to the MiniCluster's spare TaskManager."""
    flink_log = tmp_path / "flink-log"
    flink_log.mkdir()
    monkeypatch.setenv("FLINK_LOG_DIR", str(flink_log))
    reference = kind_runs(kind)
    faults = ("--fail", "user-features", "--after", "15000") + (("--fail-close", "predictor") if taskmanager_lost else ())
    proc = run_job(stationary_run[0].parent / "events.jsonl", tmp_path / "out", f"drift.alpha={ALPHA}",
                   "mlflow.register_every_windows=100", "job.checkpoint_interval_ms=2000", f"model.kind={kind}",
                   faults=faults)
    assert (tmp_path / "out" / "checkpoints" / FAILURE_MARKER.format("user-features")).exists(), proc.stdout[-2000:]
    if taskmanager_lost:
        lost = [line for log in flink_log.glob("*.log") for line in log.read_text().splitlines()
                if re.search(r"TaskManager #\d+ failed", line)]
        assert lost, f"the injected cleanup failure did not stop a TaskManager (Flink's log in {flink_log})"

    committed = outputs(tmp_path / "out", "predictions")
    recovered = {p["event_id"]: p for p in committed}
    assert len(recovered) == len(committed), "duplicate predictions after recovery"
    expected = {p["event_id"]: p for p in outputs(reference, "predictions")}
    assert recovered.keys() == expected.keys()
    assert all(recovered[k]["model_version"] == expected[k]["model_version"] for k in expected)

    assert_same_model(read_snapshots(tmp_path / "out")[-1]["parameters"], read_snapshots(reference)[-1]["parameters"],
                      atol=1e-6)

    client = MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("online-learning").experiment_id])[0]
    by_step: dict[int, set[float]] = {}
    for metric in client.get_metric_history(run.info.run_id, "logloss"):
        by_step.setdefault(metric.step, set()).add(round(metric.value, 12))
    assert sorted(by_step) == [window_step(s) for s in read_snapshots(reference) if s["update"] == "window"]
    assert all(len(values) == 1 for values in by_step.values()), "a window was logged twice with different values"


@pytest.mark.parametrize("kind", ["ftrl", "fm"])
def test_ftrl_and_fm_recover_from_a_failure_and_match_library_mode(tmp_path, kind):
    """The newer kinds in one lean run each: an operator fails after 4,000 records and Flink restores
    the pickled learner (FTRL's per-coordinate sums, the FM's factors and AdaGrad sums) from the last
    checkpoint; what the job commits is then exactly library mode's, user and item ids hashed into the
    FM's columns included."""
    spec = StreamSpec(n_events=8_000, n_users=300, duration_s=3600.0, seed=13)
    write_stream(tmp_path / "events.jsonl", spec)
    proc = run_job(tmp_path / "events.jsonl", tmp_path / "out", f"model.kind={kind}", "job.checkpoint_interval_ms=2000",
                   "mlflow.register_every_windows=100", faults=("--fail", "user-features", "--after", "4000"))
    assert (tmp_path / "out" / "checkpoints" / FAILURE_MARKER.format("user-features")).exists(), proc.stdout[-2000:]
    library = run_library(load_settings(overrides=[f"model.kind={kind}"]),
                          (tmp_path / "events.jsonl").read_text().splitlines())
    committed = outputs(tmp_path / "out", "predictions")
    assert Counter(p["event_id"] for p in committed) == Counter(json.loads(p)["event_id"] for p in library.predictions)
    assert not differing_predictions(committed, library.predictions)
    snapshot = read_snapshots(tmp_path / "out")[-1]
    assert snapshot["parameters"]["kind"] == kind
    assert_same_model(snapshot["parameters"], library.snapshots[-1]["parameters"], atol=1e-9)
