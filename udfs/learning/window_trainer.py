"""What happens when an event-time slot or window closes: evaluate, check drift, adapt, train, gate, snapshot.

The Flink operator only buffers rows and fires timers; this module holds the logic so that
the same code runs in library mode (a plain Python loop) and in tests without Flink.

Two models live in the state: the *learner*, trained on every window, and the *serving*
model, the one predictions use. Each window is cut into slots (``window.slot_ms``).

At every slot close (:meth:`WindowTrainer.close_slot`):
1. the serving model scores the slot's labeled rows (prequential: it never saw them);
2. the concept checks (a KS test of those per-example losses and a test of the error rate,
   one corrected family at ``drift.alpha`` / slots per window, so that a stationary window
   still raises a false alarm with probability at most ``alpha``) run on the slot's rows, pooled
   with the following slots' until there are ``drift.min_samples``;
3. when one fires, the decision table of udfs/drift/adaptation.py says why: a recent snapshot
   that beats the serving model on the slot's rows means a bad update (rollback); otherwise it is
   concept drift, and *fast mode* starts (``adaptation.fast_mode``): the configured policies act,
   the learner trains on this slot and serves from the next slot on (a slot snapshot), and so
   on every slot until ``adaptation.calm_slots`` slots in a row have a loss within the calm band
   (udfs/drift/detectors.py ``LossBand``). Slots need no training otherwise, so they cost little.

At every window close (:meth:`WindowTrainer.close_window`, after its last slot):
1. prequential metrics of what was served on the window's rows;
2. KS checks of the raw features (corrected as one family at ``drift.alpha``);
3. rollback, if a recent served snapshot beats the serving one on the window's held-out rows (from
   the slot that found a concept drift on, if one did), unless the decision table vetoes it
   (udfs/drift/adaptation.py);
4. feature drift re-fits the scaler from this window; with fast mode off, concept drift found in
   one of the window's slots applies the policies here;
5. mini-batch training of the learner on the window's labeled rows that no slot trained on,
   minus a held-out slice (after a concept drift, only the rows from the slot that found it on);
6. the gate: the learner becomes the serving model only if it is not worse on the same held-out
   rows as the rollback compared (after a rollback the restored snapshot serves the next window
   whatever the learner does);
7. a snapshot of the serving model from this window's end on. Its ``version`` is the serving
   model's; ``trained_version`` numbers candidates (one per window and one per fast-mode slot)
   and ``step`` numbers windows (``update: window``) or slot updates (``update: slot``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from conf.settings import Settings
from udfs.drift.adaptation import gate_decision, held_out, rollback_decision
from udfs.drift.detectors import Detection, ErrorRateCheck, KSDriftDetector, LossBand
from udfs.features.feature_batch import FeatureBatch
from udfs.learning.learner import TrainParams
from udfs.learning.metrics import accuracy, log_loss, per_example_log_loss, roc_auc
from udfs.learning.model import Model, ModelSpec
from udfs.tracking.warm_start import warm_snapshot

LOSS_CHECK = "prequential_loss"
ERROR_RATE_CHECK = "error_rate"
CONCEPT_CHECKS = {LOSS_CHECK: "loss", ERROR_RATE_CHECK: "error_rate"}


@dataclass
class TrainerState:
    """Everything the trainer learns; one pickled Flink ValueState."""

    model: Model  # the learner
    detector: KSDriftDetector  # raw features, per window
    concept: KSDriftDetector  # the serving model's losses, per slot
    error_rate: ErrorRateCheck  # its error rate, per slot
    band: LossBand = field(default_factory=LossBand)
    serving: Model | None = None  # None: the untrained version 0
    serving_version: int = 0
    recent: list[tuple[int, Model]] = field(default_factory=list)  # recent served snapshots
    version: int = 0  # candidates trained so far (windows and fast-mode slots)
    windows: int = 0  # windows closed
    slot_updates: int = 0  # fast-mode slot updates so far
    labeled_seen: int = 0
    positives_seen: int = 0
    boost_windows_left: int = 0
    pooled_losses: np.ndarray = field(default_factory=lambda: np.empty(0))  # slots not yet tested
    pooled_wrong: np.ndarray = field(default_factory=lambda: np.empty(0))
    fast: bool = False
    calm_streak: int = 0
    concept_pending: dict[str, Any] = field(default_factory=dict)  # fast mode off: what a slot's checks found;
    # the window close adapts
    drift_floor: int = 0  # the last candidate before an unrecovered concept drift: none up to it serves again
    recovered_from: int = 0  # the floor of a drift that recovered in this window: that snapshot may serve again
    carried_decisions: list[dict[str, Any]] = field(default_factory=list)  # slot decisions without a slot snapshot


@dataclass(frozen=True)
class ScoredSlot:
    """A closed slot's rows (in canonical order), the serving model's scores of its labeled rows,
    its held-out rows (found once, at the slot's close, so the window's close has less to do),
    and whether a fast-mode update already trained on them."""

    rows: FeatureBatch
    probs: np.ndarray
    holdout: np.ndarray
    trained: bool
    drifted: bool = False  # its concept checks found concept drift: the rows before it are of the old concept


@dataclass(frozen=True)
class SlotCost:
    """What a slot close cost: scoring and concept checks, and the fast-mode update (None without one)."""

    check_seconds: float
    train_seconds: float | None


@dataclass(frozen=True)
class SlotResult:
    scored: ScoredSlot
    snapshot: dict[str, Any] | None  # a fast-mode update that serves from the next slot on
    drift_events: list[dict[str, Any]]
    cost: SlotCost


@dataclass(frozen=True)
class WindowResult:
    snapshot: dict[str, Any]
    drift_events: list[dict[str, Any]]


class WindowTrainer:
    """Turns closed slots and windows of feature rows into snapshots and drift events."""

    def __init__(self, settings: Settings, dense_names: list[str]) -> None:
        self.settings = settings
        self.adaptation = settings.adaptation
        self.dense_names = dense_names
        self.drift_columns = {name: dense_names.index(name) for name in settings.drift_features}
        self.spec = ModelSpec.from_settings(settings.model)
        self.size, self.slot = settings.window.size_ms, settings.window.slot_ms
        slots = settings.window.slots_per_window
        # A slot's check is one of up to `slots` per window: alpha / slots keeps a window's false-alarm
        # chance at alpha; the calm band is the one-sided limit at that level.
        self.slot_alpha = settings.drift.alpha / slots
        self.calm_z = NormalDist().inv_cdf(1 - self.slot_alpha)

    def initial_state(self) -> TrainerState:
        d = self.settings.drift
        slots = self.settings.window.slots_per_window
        detector = KSDriftDetector(
            alpha=d.alpha, correction=d.correction, reference_windows=d.reference_windows,
            reference_size=d.reference_size, min_samples=d.min_samples, min_statistic=d.min_statistic, seed=d.seed,
        )
        concept = KSDriftDetector(
            alpha=self.slot_alpha, correction=d.correction, reference_windows=d.reference_windows * slots,
            reference_size=d.reference_size, min_samples=d.min_samples, min_statistic=d.min_statistic,
            seed=d.seed, alternatives={LOSS_CHECK: "greater"},
        )
        error_rate = ErrorRateCheck(reference_windows=d.reference_windows * slots, min_samples=d.min_samples,
                                    min_increase=d.min_error_rate_increase)
        warm = warm_snapshot(self.settings)
        if warm is None:
            model = Model.initial(self.spec, len(self.dense_names), self.settings.features.hash_buckets)
            return TrainerState(model=model, detector=detector, concept=concept, error_rate=error_rate)
        state = TrainerState(model=Model.from_parameters(warm["parameters"], self.spec.device), detector=detector,
                             concept=concept, error_rate=error_rate,
                             version=int(warm.get("trained_version", warm["version"])))
        self._serve(state, Model.from_parameters(warm["parameters"]), int(warm["version"]))
        return state

    def ends_window(self, slot_end: int) -> bool:
        return slot_end % self.size == 0

    def close_slot(self, state: TrainerState, slot_start: int, rows: FeatureBatch) -> SlotResult:
        """Score the slot, run the concept checks, and update per slot while in fast mode.

        The slot that ends a window emits no snapshot of its own: :meth:`close_window` follows it.
        """
        started = time.perf_counter()
        rows = rows.canonical()  # the training order must not depend on how batches arrived
        labeled = rows.labels >= 0
        holdout = self._holdout(rows, labeled)
        y = rows.labels[labeled]
        probs = self._serving(state).predict_proba(rows.dense[labeled], rows.buckets[labeled]) \
            if labeled.any() else np.empty(0)
        losses = per_example_log_loss(y, probs)
        decisions: list[dict[str, Any]] = []
        detections: list[Detection] = []
        drifted = False
        if state.fast:
            self._follow_recovery(state, losses, decisions)
        else:
            if state.drift_floor:  # fast mode off: the drift recovers as it would end fast mode
                self._follow_recovery(state, losses, decisions)
            detections = self._check_concept(state, y, probs, losses)
        if detections and not self._roll_back(state, rows.dense[labeled], rows.buckets[labeled], y, decisions,
                                              calm_only=True):
            drifted, state.drift_floor = True, state.version  # concept drift, not a bad update
            checks = {d.name: {"statistic": d.statistic, "p_value": d.p_value} for d in detections}
            if self.adaptation.fast_mode:
                state.fast, state.calm_streak = True, 0
                decisions.append({"kind": "fast_mode_on", "reason": "concept drift in slot", "checks": checks})
                decisions += self._adapt(state, checks)
            else:
                state.concept_pending = checks
        checked = time.perf_counter()
        slot_end = slot_start + self.slot
        drift_events = self._drift_events(state, detections, slot_start, slot_end)
        trained = state.fast and bool(labeled.any())
        snapshot = None
        if trained:
            self._train_slot(state, rows, labeled & ~holdout, holdout,
                             retrain=any(d["kind"] == "fast_mode_on" for d in decisions))
        if trained and not self.ends_window(slot_end):
            state.slot_updates += 1
            metrics = self._quality(state, y, probs)  # trained: the slot has labeled rows
            metrics.update(events=float(len(rows)), examples=float(len(y)))
            snapshot = self._snapshot(state, slot_start, slot_end, metrics, "slot", state.slot_updates)
            snapshot["window"] = state.windows + 1  # the number of the window it lies in
            snapshot["drift"], snapshot["decisions"] = drift_events, decisions
        else:
            state.carried_decisions += decisions
        cost = SlotCost(checked - started, time.perf_counter() - checked if trained else None)
        return SlotResult(ScoredSlot(rows, probs, holdout, trained, drifted), snapshot, drift_events, cost)

    def close_window(self, state: TrainerState, window_start: int, window_end: int,
                     slots: list[ScoredSlot]) -> WindowResult:
        started = time.perf_counter()
        rows = FeatureBatch.concat((s.rows for s in slots), len(self.dense_names))  # slots in order: canonical
        probs = np.concatenate([s.probs for s in slots]) if slots else np.empty(0)
        untrained = np.concatenate([np.full(len(s.rows), not s.trained) for s in slots]) if slots \
            else np.zeros(0, dtype=bool)
        holdout = np.concatenate([s.holdout for s in slots]) if slots else np.zeros(0, dtype=bool)
        # The rows of the current concept: from the last slot that found concept drift on.
        since = max((i for i, s in enumerate(slots) if s.drifted), default=0)
        current = np.concatenate([np.full(len(s.rows), i >= since) for i, s in enumerate(slots)]) if slots \
            else np.zeros(0, dtype=bool)
        dense, buckets, labels = rows.dense, rows.buckets, rows.labels
        labeled = labels >= 0
        y = labels[labeled]
        compared = holdout & current  # the rows the rollback and the gate compare models on
        metrics: dict[str, float] = {"events": float(len(rows)), "examples": float(labeled.sum())}
        decisions, state.carried_decisions = state.carried_decisions, []
        if labeled.any():
            metrics.update(self._quality(state, y, probs))
        detections = state.detector.check({name: dense[:, col] for name, col in self.drift_columns.items()})
        if not self._restore_after_recovery(state, dense[compared], buckets[compared], labels[compared], decisions):
            self._roll_back(state, dense[compared], buckets[compared], labels[compared], decisions)
        concept, state.concept_pending = state.concept_pending, {}
        if concept:
            decisions += self._adapt(state, concept)
        learner = state.model
        learner.update_scaler(dense, decay=self.settings.model.scaler_decay, reset=bool(detections))
        # After a drift reaction the old concept's rows would undo it: only the rows from the drift's slot on.
        train = labeled & ~holdout & untrained & (current if self.adaptation.policies else True)
        # A window with concept drift, found by its slots, trains its rows as a drifted window.
        params = self._train_params(state, retrain=bool(concept) or any(s.trained for s in slots))
        decisions += self.train_candidate(state, rows, train, params)
        state.labeled_seen += int(labeled.sum())
        state.positives_seen += int(y.sum())
        rolled_back = [d for d in decisions if d["kind"] == "rollback"]
        if rolled_back:  # the restored snapshot serves the next window; the learner competes again after it
            decisions.append({"kind": "candidate_held", "reason": f"rolled back to version "
                              f"{rolled_back[-1]['to_version']} in this window: it serves the next window",
                              "serving_version": state.serving_version, "candidate_version": state.version})
        else:
            decisions.append(self._gate(state, dense[compared], buckets[compared], labels[compared]))
        if decisions[-1]["kind"] not in ("gate_blocked", "candidate_held"):
            self._serve(state, Model.from_parameters(learner.parameters()), state.version)
        state.boost_windows_left = max(state.boost_windows_left - 1, 0)
        metrics.update(learner.learner.window_metrics())
        metrics.update(learning_rate=params.step_size, drift_detections=float(len(detections)),
                       update_seconds=time.perf_counter() - started)
        drift_events = self._drift_events(state, detections, window_start, window_end)
        snapshot = self._snapshot(state, window_start, window_end, metrics, "window", state.windows)
        snapshot["drift"] = drift_events
        snapshot["decisions"] = decisions
        return WindowResult(snapshot, drift_events)

    def train_candidate(self, state: TrainerState, rows: FeatureBatch, train: np.ndarray,
                        params: TrainParams) -> list[dict[str, Any]]:
        """Trains the learner on the window's ``train`` rows: it becomes the window's candidate
        (``state.windows`` numbers it). Returns the decisions taken on the way: none here, since
        training decides nothing; a subclass that alters the candidate records what it did."""
        if train.any():
            state.model.fit(rows.dense[train], rows.buckets[train], rows.labels[train], params)
        state.version += 1
        state.windows += 1
        return []

    def _check_concept(self, state: TrainerState, y: np.ndarray, probs: np.ndarray,
                       losses: np.ndarray) -> list[Detection]:
        """The slot's concept checks, on its rows pooled with earlier untested slots' up to ``min_samples``."""
        d = self.settings.drift
        if state.version == 0 or not len(y) or not (d.check_losses or d.check_error_rate):
            return []
        wrong = ((probs >= 0.5) != (y == 1)).astype(float)
        state.pooled_losses = np.concatenate([state.pooled_losses, losses])
        state.pooled_wrong = np.concatenate([state.pooled_wrong, wrong])
        if len(state.pooled_losses) < d.min_samples:
            return []
        losses, wrong = state.pooled_losses, state.pooled_wrong
        state.pooled_losses, state.pooled_wrong = np.empty(0), np.empty(0)
        samples = {LOSS_CHECK: losses} if d.check_losses else {}
        other_tests = {}
        if d.check_error_rate:
            tested = state.error_rate.test(wrong)
            if tested is not None:
                other_tests[ERROR_RATE_CHECK] = tested
        detections = state.concept.check(samples, other_tests)
        if any(det.name == ERROR_RATE_CHECK for det in detections):
            state.error_rate.restart(wrong)
        if not detections:
            state.band.update(losses)
        return detections

    def _follow_recovery(self, state: TrainerState, losses: np.ndarray, decisions: list[dict[str, Any]]) -> None:
        """Counts calm slots after a concept drift; after ``calm_slots`` of them in a row the drift has
        recovered: fast mode ends, and the snapshots from before it may serve again."""
        if not len(losses):
            return
        state.calm_streak = state.calm_streak + 1 if state.band.within(losses, self.calm_z) else 0
        if state.calm_streak >= self.adaptation.calm_slots:
            decisions.append({"kind": "fast_mode_off" if state.fast else "drift_recovered",
                              "reason": f"{self.adaptation.calm_slots} calm slots in a row",
                              "slot_logloss": float(losses.mean()), "band_mean": state.band.mean,
                              "drift_floor": state.drift_floor})
            state.fast, state.calm_streak = False, 0
            state.recovered_from, state.drift_floor = state.drift_floor, 0

    def _train_slot(self, state: TrainerState, rows: FeatureBatch, train: np.ndarray, holdout: np.ndarray,
                    retrain: bool) -> None:
        """One fast-mode update: the learner trains on the slot and serves from the next slot on; the
        slot that found the drift trains as a drifted window (``retrain_epochs`` with that policy)."""
        if train.any():
            state.model.fit(rows.dense[train], rows.buckets[train], rows.labels[train],
                            self._train_params(state, retrain=retrain))
        state.version += 1
        decision = self._gate(state, rows.dense[holdout], rows.buckets[holdout], rows.labels[holdout])
        if decision["kind"] != "gate_blocked":
            self._serve(state, Model.from_parameters(state.model.parameters()), state.version)

    def _drift_events(self, state: TrainerState, detections: list[Detection], start: int,
                      end: int) -> list[dict[str, Any]]:
        """Drift records of the window that holds ``start``; ``detected_at`` is the event time of the slot
        or window end (``end``) that found them."""
        window = start - start % self.size
        return [{"window_start": window, "window_end": window + self.size, "detected_at": end,
                 "kind": CONCEPT_CHECKS.get(d.name, "feature"), "name": d.name,
                 "statistic": d.statistic, "p_value": d.p_value, "model_version": state.serving_version}
                for d in detections]

    def _serving(self, state: TrainerState) -> Model:
        if state.serving is None:  # zero logistic weights: 0.5 for every row, as the predictor scores version 0
            return Model.initial(ModelSpec(id_buckets=self.spec.id_buckets), len(self.dense_names),
                                 self.settings.features.hash_buckets)
        return state.serving

    def _roll_back(self, state: TrainerState, dense: np.ndarray, buckets: np.ndarray, y: np.ndarray,
                   decisions: list[dict[str, Any]], calm_only: bool = False) -> bool:
        """The rollback rows of the decision table (udfs/drift/adaptation.py) on rows no model trained on;
        True if a recent snapshot serves again. ``calm_only``: only snapshots whose loss on these rows is
        within the calm band compete, so that a concept alarm counts as a bad update only if the world did
        not change for the older models (after a drift a less confident old model can have the lower loss,
        yet be as wrong)."""
        a = self.adaptation
        recent = {version: model for version, model in state.recent if version != state.serving_version}
        if not a.rollback or not recent or len(y) < a.gate_min_rows:
            return False
        # The model serving now, which after fast-mode slots is not the one that scored the whole window.
        serving = per_example_log_loss(y, self._serving(state).predict_proba(dense, buckets))
        losses = {v: per_example_log_loss(y, model.predict_proba(dense, buckets)) for v, model in recent.items()}
        if calm_only:
            losses = {v: loss for v, loss in losses.items() if state.band.within(loss, self.calm_z)}
        decision = rollback_decision(serving, losses, a.rollback_tolerance, state.drift_floor, state.fast)
        if decision is None:
            return False
        decisions.append(decision)
        if decision["kind"] != "rollback":
            return False
        self._restore(state, decision["to_version"], recent[decision["to_version"]])
        return True

    def _restore(self, state: TrainerState, version: int, model: Model) -> None:
        """A recent snapshot serves again, and the learner trains on from it."""
        state.serving, state.serving_version = model, version
        state.model = Model.from_parameters(model.parameters(), self.spec.device)

    def _restore_after_recovery(self, state: TrainerState, dense: np.ndarray, buckets: np.ndarray, y: np.ndarray,
                                decisions: list[dict[str, Any]]) -> bool:
        """A drift that recovered within minutes may have been a false alarm: the snapshot from before it,
        trained on far more rows, serves again unless the gate finds it worse on the same rows."""
        a = self.adaptation
        before, state.recovered_from = state.recovered_from, 0
        recent = dict(state.recent)
        if not a.rollback or before not in recent or before == state.serving_version or len(y) < a.gate_min_rows:
            return False
        gate = gate_decision(recent[before].predict_proba(dense, buckets),
                             self._serving(state).predict_proba(dense, buckets), y, a.gate_tolerance)
        if gate["kind"] == "gate_blocked":
            return False
        decisions.append({**gate, "kind": "rollback", "rule": "recovered", "to_version": before,
                          "reason": f"the concept drift after version {before} recovered; {gate['reason']}"})
        self._restore(state, before, recent[before])
        return True

    def _adapt(self, state: TrainerState, checks: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
        """The configured policies, each decision with the checks (statistic, p-value) that called for it."""
        a = self.adaptation
        found = ", ".join(f"{name} p={check['p_value']:.2g}" for name, check in checks.items())
        reason = f"concept drift ({found}): no recent snapshot still within the calm band does better; " \
                 f"none up to version {state.drift_floor} serves again until it recovers"
        decisions = []
        for policy in a.policies:
            if policy == "lr_boost":
                state.model.learner.reset_optimizer()
                state.boost_windows_left = a.boost_windows
                decisions.append({"kind": "lr_boost", "reason": reason, "checks": checks,
                                  "factor": a.learning_rate_boost, "windows": a.boost_windows})
            elif policy == "reset_weights":
                scaler = state.model.scaler
                state.model = Model(scaler, self.spec.new_learner(scaler.n_inputs, seed=self.spec.seed + state.version))
                decisions.append({"kind": "reset_weights", "reason": reason, "checks": checks})
            elif policy == "retrain_window":
                decisions.append({"kind": "retrain_window", "reason": reason, "checks": checks,
                                  "epochs": a.retrain_epochs})
        return decisions

    def _holdout(self, rows: FeatureBatch, labeled: np.ndarray) -> np.ndarray:
        if not (self.adaptation.gate or self.adaptation.rollback):
            return np.zeros(len(rows), dtype=bool)
        fraction = self.adaptation.holdout_fraction
        return labeled & np.array([held_out(event_id, fraction) for event_id in rows.event_ids], dtype=bool)

    def _gate(self, state: TrainerState, dense: np.ndarray, buckets: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        a = self.adaptation
        if not a.gate or len(y) < a.gate_min_rows:
            return {"kind": "gate_skipped", "reason": f"gate off or fewer than {a.gate_min_rows} held-out rows",
                    "holdout_rows": int(len(y))}
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

    def _snapshot(self, state: TrainerState, start: int, end: int, metrics: dict[str, float],
                  update: str, step: int) -> dict[str, Any]:
        """Serves from ``end`` on; ``window_start``/``window_end`` are the bounds of the window or slot."""
        return {
            "version": state.serving_version,
            "trained_version": state.version,
            "update": update,
            "step": step,
            "window_start": start,
            "window_end": end,
            "dense_names": self.dense_names,
            "parameters": self._serving(state).parameters(),
            "metrics": metrics,
            "drift": [],
            "decisions": [],
        }
