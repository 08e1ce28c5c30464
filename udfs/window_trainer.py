"""What happens when an event-time window closes: evaluate, check drift, adapt, train, gate, snapshot.

The Flink operator only buffers rows and fires timers; this module holds the logic so that
the same code runs in library mode (a plain Python loop) and in tests without Flink.

Two models live in the state: the *learner*, trained on every window, and the *serving*
model, the one predictions use. Order within a window, and why:
1. prequential metrics of the serving model (it never saw these events; it is what users got);
2. drift checks: KS on raw features and on the serving model's per-example losses, and a
   test of its error rate, corrected as one family (udfs/drift.py);
3. rollback, if a recent served snapshot beats the serving one on this window (udfs/adaptation.py);
4. adaptation on concept drift (loss or error-rate detection): the configured policies;
   feature drift re-fits the scaler from this window;
5. mini-batch training of the learner on the window's labeled rows minus a held-out slice;
6. the gate: the learner becomes the serving model only if it is not worse on the held-out slice
   (after a rollback the restored snapshot serves the next window whatever the learner does);
7. a snapshot of the serving model from this window's end on. Its ``version`` is the serving
   model's; ``trained_version`` numbers the window's candidate and increases by one per window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conf.settings import Settings
from udfs.adaptation import gate_decision, held_out, rollback_target
from udfs.drift import ErrorRateCheck, KSDriftDetector
from udfs.learner import TrainParams
from udfs.metrics import accuracy, log_loss, per_example_log_loss, roc_auc
from udfs.feature_batch import FeatureBatch
from udfs.model import Model, ModelSpec
from udfs.warm_start import warm_snapshot

LOSS_CHECK = "prequential_loss"
ERROR_RATE_CHECK = "error_rate"
CONCEPT_CHECKS = {LOSS_CHECK: "loss", ERROR_RATE_CHECK: "error_rate"}


@dataclass
class TrainerState:
    """Everything the trainer learns; one pickled Flink ValueState."""

    model: Model  # the learner
    detector: KSDriftDetector
    error_rate: ErrorRateCheck
    serving: Model | None = None  # None: the untrained version 0
    serving_version: int = 0
    recent: list[tuple[int, Model]] = field(default_factory=list)  # recent served snapshots
    version: int = 0  # candidates trained so far (= windows closed)
    labeled_seen: int = 0
    positives_seen: int = 0
    boost_windows_left: int = 0


@dataclass(frozen=True)
class WindowResult:
    snapshot: dict[str, Any]
    drift_events: list[dict[str, Any]]


class WindowTrainer:
    """Turns one closed window of feature rows into a snapshot and drift events."""

    def __init__(self, settings: Settings, dense_names: list[str]) -> None:
        self.settings = settings
        self.adaptation = settings.adaptation
        self.dense_names = dense_names
        self.drift_columns = {name: dense_names.index(name) for name in settings.drift_features}
        self.spec = ModelSpec.from_settings(settings.model)

    def initial_state(self) -> TrainerState:
        d = self.settings.drift
        detector = KSDriftDetector(
            alpha=d.alpha, correction=d.correction, reference_windows=d.reference_windows,
            reference_size=d.reference_size, min_samples=d.min_samples, min_statistic=d.min_statistic,
            seed=d.seed, alternatives={LOSS_CHECK: "greater"},
        )
        error_rate = ErrorRateCheck(reference_windows=d.reference_windows, min_samples=d.min_samples,
                                    min_increase=d.min_error_rate_increase)
        warm = warm_snapshot(self.settings)
        if warm is None:
            model = Model.initial(self.spec, len(self.dense_names), self.settings.features.hash_buckets)
            return TrainerState(model=model, detector=detector, error_rate=error_rate)
        state = TrainerState(model=Model.from_parameters(warm["parameters"], self.spec.device), detector=detector,
                             error_rate=error_rate, version=int(warm.get("trained_version", warm["version"])))
        self._serve(state, Model.from_parameters(warm["parameters"]), int(warm["version"]))
        return state

    def close_window(self, state: TrainerState, window_start: int, window_end: int,
                     rows: FeatureBatch) -> WindowResult:
        started = time.perf_counter()
        rows = rows.canonical()  # the training order must not depend on how batches arrived
        dense, buckets, labels = rows.dense, rows.buckets, rows.labels
        labeled = labels >= 0
        y = labels[labeled]
        metrics: dict[str, float] = {"events": float(len(rows)), "examples": float(labeled.sum())}
        decisions: list[dict[str, Any]] = []
        serving = self._serving(state)
        probs = serving.predict_proba(dense[labeled], buckets[labeled]) if labeled.any() else np.empty(0)
        if labeled.any():
            metrics.update(self._quality(state, y, probs))
        detections = self._check_drift(state, dense, y, probs)
        if labeled.any() and self.adaptation.rollback:
            self._maybe_roll_back(state, dense[labeled], buckets[labeled], y, metrics.get("logloss"), decisions)
        concept = any(d.name in CONCEPT_CHECKS for d in detections)
        if concept:
            decisions += self._adapt(state)
        feature_drift = any(d.name not in CONCEPT_CHECKS for d in detections)
        learner = state.model
        learner.update_scaler(dense, decay=self.settings.model.scaler_decay, reset=feature_drift)
        holdout = self._holdout(rows, labeled)
        train = labeled & ~holdout
        params = self._train_params(state, retrain=concept)
        if train.any():
            learner.fit(dense[train], buckets[train], labels[train], params)
            state.labeled_seen += int(labeled.sum())
            state.positives_seen += int(y.sum())
        state.version += 1
        if state.version == self.adaptation.corrupt_candidate_at_window:
            learner.learner.corrupt()
            decisions.append({"kind": "corrupted_for_test", "reason": "adaptation.corrupt_candidate_at_window"})
        rolled_back = any(d["kind"] == "rollback" for d in decisions)
        if rolled_back:  # the restored snapshot serves the next window; the learner competes again after it
            decisions.append({"kind": "candidate_held", "reason": "rolled back in this window"})
        else:
            decisions.append(self._gate(state, dense[holdout], buckets[holdout], labels[holdout]))
        if decisions[-1]["kind"] not in ("gate_blocked", "candidate_held"):
            self._serve(state, Model.from_parameters(learner.parameters()), state.version)
        state.boost_windows_left = max(state.boost_windows_left - 1, 0)
        metrics.update(learner.learner.window_metrics())
        metrics.update(learning_rate=params.step_size, drift_detections=float(len(detections)),
                       update_seconds=time.perf_counter() - started)
        drift_events = [
            {"window_start": window_start, "window_end": window_end,
             "kind": CONCEPT_CHECKS.get(d.name, "feature"), "name": d.name,
             "statistic": d.statistic, "p_value": d.p_value, "model_version": state.serving_version}
            for d in detections
        ]
        snapshot = self._snapshot(state, window_start, window_end, metrics)
        snapshot["drift"] = drift_events
        snapshot["decisions"] = decisions
        return WindowResult(snapshot, drift_events)

    def _serving(self, state: TrainerState) -> Model:
        if state.serving is None:  # zero logistic weights: 0.5 for every row, as the predictor scores version 0
            return Model.initial(ModelSpec(), len(self.dense_names), self.settings.features.hash_buckets)
        return state.serving

    def _check_drift(self, state: TrainerState, dense: np.ndarray, y: np.ndarray, probs: np.ndarray) -> list:
        samples = {name: dense[:, col] for name, col in self.drift_columns.items()}
        other_tests = {}
        concept_checks = state.version > 0 and len(y) > 0
        if concept_checks and self.settings.drift.check_losses:
            samples[LOSS_CHECK] = per_example_log_loss(y, probs)
        wrong = ((probs >= 0.5) != (y == 1)).astype(float)
        if concept_checks and self.settings.drift.check_error_rate:
            tested = state.error_rate.test(wrong)
            if tested is not None:
                other_tests[ERROR_RATE_CHECK] = tested
        detections = state.detector.check(samples, other_tests)
        if any(d.name == ERROR_RATE_CHECK for d in detections):
            state.error_rate.restart(wrong)
        return detections

    def _maybe_roll_back(self, state: TrainerState, dense: np.ndarray, buckets: np.ndarray, y: np.ndarray,
                         serving_logloss: float | None, decisions: list[dict[str, Any]]) -> None:
        recent = {version: model for version, model in state.recent if version != state.serving_version}
        if serving_logloss is None or not recent:
            return
        scores = {v: log_loss(y, model.predict_proba(dense, buckets)) for v, model in recent.items()}
        target = rollback_target(serving_logloss, scores, self.adaptation.rollback_tolerance)
        if target is None:
            return
        version, decision = target
        decisions.append(decision)
        restored = recent[version]
        state.serving, state.serving_version = restored, version
        state.model = Model.from_parameters(restored.parameters(), self.spec.device)  # train on from the good one

    def _adapt(self, state: TrainerState) -> list[dict[str, Any]]:
        a = self.adaptation
        decisions = []
        for policy in a.policies:
            if policy == "lr_boost":
                state.model.learner.reset_optimizer()
                state.boost_windows_left = a.boost_windows
                decisions.append({"kind": "lr_boost", "reason": "concept drift",
                                  "factor": a.learning_rate_boost, "windows": a.boost_windows})
            elif policy == "reset_weights":
                scaler = state.model.scaler
                state.model = Model(scaler, self.spec.new_learner(scaler.n_inputs, seed=self.spec.seed + state.version))
                decisions.append({"kind": "reset_weights", "reason": "concept drift"})
            elif policy == "retrain_window":
                decisions.append({"kind": "retrain_window", "reason": "concept drift", "epochs": a.retrain_epochs})
        return decisions

    def _holdout(self, rows: FeatureBatch, labeled: np.ndarray) -> np.ndarray:
        if not self.adaptation.gate:
            return np.zeros(len(rows), dtype=bool)
        fraction = self.adaptation.holdout_fraction
        return labeled & np.array([held_out(event_id, fraction) for event_id in rows.event_ids], dtype=bool)

    def _gate(self, state: TrainerState, dense: np.ndarray, buckets: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        a = self.adaptation
        if not a.gate or len(y) < a.gate_min_rows:
            return {"kind": "gate_skipped", "reason": f"gate off or fewer than {a.gate_min_rows} held-out rows"}
        return gate_decision(state.model.predict_proba(dense, buckets),
                             self._serving(state).predict_proba(dense, buckets), y, a.gate_tolerance)

    def _serve(self, state: TrainerState, model: Model, version: int) -> None:
        state.serving, state.serving_version = model, version
        state.recent = (state.recent + [(version, model)])[-self.adaptation.recent_snapshots:]

    def _quality(self, state: TrainerState, y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
        prior = self.settings.features.positive_rate_prior
        base_rate = (state.positives_seen + prior) / (state.labeled_seen + 1)
        metrics = {
            "logloss": log_loss(y, probs),
            "baseline_logloss": log_loss(y, np.full(len(y), base_rate)),
            "accuracy": accuracy(y, probs),
            "positive_rate": float(y.mean()),
        }
        auc = roc_auc(y, probs)
        if auc is not None:
            metrics["auc"] = auc
        return metrics

    def _train_params(self, state: TrainerState, retrain: bool) -> TrainParams:
        m, a = self.settings.model, self.adaptation
        boost = a.learning_rate_boost if state.boost_windows_left > 0 else 1.0
        epochs = a.retrain_epochs if retrain and "retrain_window" in a.policies else m.epochs
        return TrainParams(optimizer=m.optimizer, learning_rate=m.learning_rate, learning_rate_boost=boost,
                           epochs=epochs, batch_size=m.batch_size, l2=m.l2, seed=m.seed + state.version)

    def _snapshot(self, state: TrainerState, window_start: int, window_end: int,
                  metrics: dict[str, float]) -> dict[str, Any]:
        return {
            "version": state.serving_version,
            "trained_version": state.version,
            "window_start": window_start,
            "window_end": window_end,
            "dense_names": self.dense_names,
            "parameters": self._serving(state).parameters(),
            "metrics": metrics,
            "drift": [],
            "decisions": [],
        }
