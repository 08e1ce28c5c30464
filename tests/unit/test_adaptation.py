"""Concept drift, adaptation, gate and rollback on fixed-seed streams, through library mode
(the same udfs/ as the Flink job; tests/integration shows the two give identical outputs)."""

from __future__ import annotations

import json

import pytest

from conf.settings import SettingsError, load_settings
from jobs.preparation import resolve_warm_start
from tests.faulty_job import corrupting_trainer
from udfs.offline.library_mode import LibraryResult, run_library
from udfs.sim.reference_streams import REFERENCE_STREAMS, generate, job_overrides
from udfs.sim.stream_generator import StreamSpec, generate_events

WINDOW_MS = 300_000
DRIFT_AT_S = 7200.0
CONCEPT = StreamSpec(n_events=40_000, n_users=800, duration_s=4 * 3600.0, seed=11, concept_drift_at_s=DRIFT_AT_S)
STATIONARY = StreamSpec(n_events=24_000, n_users=600, duration_s=2 * 3600.0, seed=3)


@pytest.fixture(scope="module")
def concept_lines() -> list[str]:
    return [json.dumps(e) for e in generate_events(CONCEPT)]


def drift_window_start() -> int:
    at = CONCEPT.start_ms + int(DRIFT_AT_S * 1000)
    return at - at % WINDOW_MS


def windows_after_drift(event_window_start: int) -> int:
    return (event_window_start - drift_window_start()) // WINDOW_MS


def test_concept_check_finds_abrupt_concept_drift_within_two_windows_and_feature_checks_do_not(concept_lines):
    result = run_library(load_settings(), concept_lines)
    concept = [d for d in result.drift_events if d["kind"] in ("loss", "error_rate")]
    assert concept, "no concept-drift detection"
    first = min(windows_after_drift(d["window_start"]) for d in concept if d["window_start"] >= drift_window_start())
    assert first <= 2
    assert {d["kind"] for d in result.drift_events} <= {"loss", "error_rate"}, "a feature check fired"
    assert {"loss", "error_rate"} <= {d["kind"] for d in concept}, "each concept check is its own drift kind"

    features_only = run_library(load_settings(overrides=["drift.check_losses=false", "drift.check_error_rate=false"]),
                                concept_lines)
    assert not [d for d in features_only.drift_events if 0 <= windows_after_drift(d["window_start"]) <= 2]


def recovery_windows(result: LibraryResult) -> int:
    """Windows after the drift window until prequential logloss is within 10% of the pre-drift level."""
    before = [s["metrics"]["logloss"] for s in result.window_snapshots if s["window_end"] <= drift_window_start()][-6:]
    level = sum(before) / len(before)
    after = [s["metrics"]["logloss"] for s in result.window_snapshots if s["window_start"] > drift_window_start()]
    return next(i + 1 for i, loss in enumerate(after) if loss <= 1.1 * level)


def drift_and_after(result: LibraryResult, windows: int = 3) -> float:
    """Mean prequential logloss of the drift window and the windows after it."""
    losses = [s["metrics"]["logloss"] for s in result.window_snapshots if s["window_start"] >= drift_window_start()]
    return sum(losses[:windows]) / windows


def test_adaptation_recovers_from_abrupt_drift_sooner(concept_lines):
    on = run_library(load_settings(), concept_lines)
    off = run_library(load_settings(overrides=["adaptation.policies=[]", "adaptation.fast_mode=false"]), concept_lines)
    assert recovery_windows(on) <= recovery_windows(off), (recovery_windows(on), recovery_windows(off))
    # Fast mode adapts inside the drift window itself: from it to 2 windows later the loss is far lower.
    assert drift_and_after(on) < 0.75 * drift_and_after(off), (drift_and_after(on), drift_and_after(off))
    acted = [d["kind"] for s in on.snapshots for d in s["decisions"]]
    assert {"lr_boost", "reset_weights", "retrain_window"} <= set(acted)
    assert not {"lr_boost", "reset_weights", "retrain_window"} & {d["kind"] for s in off.snapshots for d in s["decisions"]}


@pytest.fixture(scope="module")
def stationary_lines() -> list[str]:
    return [json.dumps(e) for e in generate_events(STATIONARY)]


def served_versions(result: LibraryResult) -> dict[str, int]:
    return {p["event_id"]: p["model_version"] for p in map(json.loads, result.predictions)}


@pytest.fixture
def corrupt_tenth_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Library mode trains with a trainer that makes window 10's candidate confidently wrong."""
    monkeypatch.setattr("udfs.offline.library_mode.WindowTrainer", corrupting_trainer(10))


@pytest.mark.parametrize("fast_mode", ["true", "false"])
def test_gate_blocks_a_corrupted_candidate(stationary_lines, corrupt_tenth_candidate, fast_mode):
    result = run_library(load_settings(overrides=[f"adaptation.fast_mode={fast_mode}"]), stationary_lines)
    tenth = result.snapshots[9]
    kinds = [d["kind"] for d in tenth["decisions"]]
    assert "corrupted_for_test" in kinds and "gate_blocked" in kinds
    assert tenth["trained_version"] == 10 and tenth["version"] == 9
    assert 10 not in set(served_versions(result).values())
    assert all(d["kind"] != "gate_blocked" for s in result.snapshots[:9] for d in s["decisions"])


@pytest.mark.parametrize("fast_mode", ["true", "false"])
def test_rollback_restores_the_previous_snapshot_when_a_bad_one_got_through(stationary_lines, corrupt_tenth_candidate,
                                                                            fast_mode):
    # The slots scored by the bad model raise a concept alarm; the decision table finds the snapshot before
    # it still calm on the same rows: a bad update, rolled back, not concept drift (no fast mode, no reset).
    settings = load_settings(overrides=["adaptation.gate=false", f"adaptation.fast_mode={fast_mode}"])
    result = run_library(settings, stationary_lines)
    assert result.snapshots[9]["version"] == 10  # no gate: the corrupted candidate serves one window
    kinds = [d["kind"] for d in result.snapshots[10]["decisions"]]
    assert "reset_weights" not in kinds and "fast_mode_on" not in kinds, kinds
    rollback = [d for d in result.snapshots[10]["decisions"] if d["kind"] == "rollback"]
    assert rollback and rollback[0]["to_version"] < 10, result.snapshots[10]["decisions"]
    assert rollback[0]["serving_logloss"] > 1.25 * rollback[0]["restored_logloss"], rollback[0]
    assert result.snapshots[10]["version"] == rollback[0]["to_version"]
    restored_window = result.snapshots[10]["window_end"]
    scored_after = {p["model_version"] for p in map(json.loads, result.predictions)
                    if restored_window <= p["event_time"] < restored_window + WINDOW_MS}
    assert scored_after == {rollback[0]["to_version"]}, "predictions after the rollback use the restored version"


def test_no_gate_blocks_and_no_rollbacks_on_a_healthy_stationary_stream(stationary_lines):
    result = run_library(load_settings(), stationary_lines)
    kinds = [d["kind"] for s in result.snapshots for d in s["decisions"]]
    assert "rollback" not in kinds and kinds.count("gate_blocked") <= 1, kinds


def test_warm_start_errors_name_the_setting(tmp_path, stationary_lines):
    with pytest.raises(SettingsError, match="model.warm_start=.*no such snapshot file"):
        resolve_warm_start(load_settings(overrides=[f"model.warm_start={tmp_path / 'missing.json'}"]))
    snapshot = run_library(load_settings(), stationary_lines[:3000]).snapshots[-1]
    (tmp_path / "snapshot.json").write_text(json.dumps(snapshot))
    with pytest.raises(SettingsError, match="trained on other features"):
        resolve_warm_start(load_settings(overrides=[f"model.warm_start={tmp_path / 'snapshot.json'}",
                                                    "features.hash_buckets=8"]))
    warm = resolve_warm_start(load_settings(overrides=[f"model.warm_start={tmp_path / 'snapshot.json'}"]))
    restarted = run_library(warm, stationary_lines[3000:6000])
    assert restarted.snapshots[0]["trained_version"] == snapshot["trained_version"] + 1


@pytest.mark.parametrize("fast_mode,rule", [("false", "concept_drift"), ("true", "fast_mode")])
def test_no_rollback_to_a_model_from_before_an_unrecovered_concept_drift(fast_mode, rule):
    """SINE flips with 4-minute transitions, the first starting 30 s before a window ends: the drift is found
    and the learner reset. Before it recovers, a recent snapshot has a lower loss than the young serving model
    on the same held-out rows (an older, less confident one, of the old concept or trained on the first slots
    of the new one): the rollback rule alone would restore it. The decision table vetoes it, and the snapshot
    says which rule won and what was compared."""
    stream = REFERENCE_STREAMS["sine_flips_slow"]
    lines = [json.dumps(e) for e in generate(stream, n_events=30_000, seed=1)]
    result = run_library(load_settings(overrides=job_overrides(stream) + [f"adaptation.fast_mode={fast_mode}"]), lines)
    decisions = [(s, d) for s in result.snapshots for d in s["decisions"]]
    vetoed = [(s, d) for s, d in decisions if d["kind"] == "rollback_vetoed"]
    assert vetoed and {d["rule"] for _, d in vetoed} == {rule}, [(d["kind"], d.get("rule")) for _, d in decisions]
    snapshot, veto = vetoed[0]
    assert veto["serving_logloss"] > 1.25 * veto["restored_logloss"] and veto["rows"] >= 30, veto
    if rule == "concept_drift":
        assert veto["would_restore"] <= veto["drift_floor"] and "predates the concept drift" in veto["reason"]
        assert snapshot["version"] > veto["drift_floor"], "a model of the new concept serves on"
    else:
        assert "fast mode is on" in veto["reason"] and snapshot["version"] != veto["would_restore"]
    assert all(d.get("reason") for _, d in decisions), [d for _, d in decisions if not d.get("reason")]
