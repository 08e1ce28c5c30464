"""What happens when an event-time window closes: evaluate, check drift, adapt, train, snapshot.

The Flink operator only buffers rows and fires timers; this module holds the logic so that
the same code runs in library mode (a plain Python loop) and in tests without Flink.

Order within a window, and why:
1. prequential metrics with the model *before* the update (it never saw these events);
2. KS drift checks of raw features and of per-example losses against their references;
3. adaptation: feature drift re-fits the scaler from this window, loss drift resets the
   optimizer and boosts the learning rate for a few windows;
4. scaler update and mini-batch training on the labeled rows;
5. a new snapshot (version + 1) that scores the following windows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from conf.settings import Settings
from udfs.drift import KSDriftDetector
from udfs.logistic import LogisticModel, TrainParams
from udfs.metrics import accuracy, log_loss, per_example_log_loss, roc_auc
from udfs.user_features import FeatureRow

LOSS_CHECK = "prequential_loss"


@dataclass
class TrainerState:
    """Everything the trainer learns; one pickled Flink ValueState."""

    model: LogisticModel
    detector: KSDriftDetector
    version: int = 0
    labeled_seen: int = 0
    positives_seen: int = 0
    boost_windows_left: int = 0


@dataclass(frozen=True)
class WindowResult:
    snapshot: dict[str, Any]
    drift_events: list[dict[str, Any]]


def rows_to_arrays(rows: list[FeatureRow], n_dense: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense matrix (NaN = missing) and a bucket-index matrix padded with -1."""
    dense = np.array([r.dense for r in rows], dtype=float).reshape(len(rows), n_dense)
    width = max((len(r.buckets) for r in rows), default=0)
    buckets = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        buckets[i, :len(r.buckets)] = r.buckets
    return dense, buckets


class WindowTrainer:
    """Turns one closed window of feature rows into a snapshot and drift events."""

    def __init__(self, settings: Settings, dense_names: list[str]) -> None:
        self.settings = settings
        self.dense_names = dense_names
        self.drift_columns = {name: dense_names.index(name) for name in settings.drift_features}

    def initial_state(self) -> TrainerState:
        d = self.settings.drift
        detector = KSDriftDetector(
            alpha=d.alpha, correction=d.correction, reference_windows=d.reference_windows,
            reference_size=d.reference_size, min_samples=d.min_samples, min_statistic=d.min_statistic,
            seed=d.seed, alternatives={LOSS_CHECK: "greater"},
        )
        model = LogisticModel.initial(len(self.dense_names), self.settings.features.hash_buckets)
        return TrainerState(model=model, detector=detector)

    def initial_snapshot(self) -> dict[str, Any]:
        """Version 0: the untrained model that scores until the first window closes."""
        return self._snapshot(self.initial_state(), window_start=None, window_end=None, metrics={})

    def close_window(self, state: TrainerState, window_start: int, window_end: int,
                     rows: list[FeatureRow]) -> WindowResult:
        started = time.perf_counter()
        dense, buckets = rows_to_arrays(rows, len(self.dense_names))
        labels = np.array([r.label if r.label is not None else -1 for r in rows], dtype=float)
        labeled = labels >= 0
        y = labels[labeled]
        model = state.model
        metrics: dict[str, float] = {"events": float(len(rows)), "examples": float(labeled.sum())}
        samples = {name: dense[:, col] for name, col in self.drift_columns.items()}
        if labeled.any():
            probs = model.predict_proba(dense[labeled], buckets[labeled])
            metrics.update(self._quality(state, y, probs))
            if self.settings.drift.check_losses and state.version > 0:
                samples[LOSS_CHECK] = per_example_log_loss(y, probs)
        detections = state.detector.check(samples)
        feature_drift = any(d.name != LOSS_CHECK for d in detections)
        if any(d.name == LOSS_CHECK for d in detections):
            model.reset_optimizer()
            state.boost_windows_left = self.settings.drift.adapt_windows
        model.update_scaler(dense, decay=self.settings.model.scaler_decay, reset=feature_drift)
        params = self._train_params(state)
        if labeled.any():
            model.fit(dense[labeled], buckets[labeled], y, params)
            state.labeled_seen += int(labeled.sum())
            state.positives_seen += int(y.sum())
        state.boost_windows_left = max(state.boost_windows_left - 1, 0)
        state.version += 1
        metrics.update(learning_rate=params.learning_rate, drift_detections=float(len(detections)),
                       update_seconds=time.perf_counter() - started)
        drift_events = [
            {"window_start": window_start, "window_end": window_end,
             "kind": "loss" if d.name == LOSS_CHECK else "feature", "name": d.name,
             "statistic": d.statistic, "p_value": d.p_value, "model_version": state.version}
            for d in detections
        ]
        snapshot = self._snapshot(state, window_start, window_end, metrics)
        snapshot["drift"] = drift_events
        return WindowResult(snapshot, drift_events)

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

    def _train_params(self, state: TrainerState) -> TrainParams:
        m = self.settings.model
        boost = self.settings.drift.adapt_learning_rate_boost if state.boost_windows_left > 0 else 1.0
        return TrainParams(optimizer=m.optimizer, learning_rate=m.learning_rate * boost, epochs=m.epochs,
                           batch_size=m.batch_size, l2=m.l2, seed=m.seed + state.version)

    def _snapshot(self, state: TrainerState, window_start: int | None, window_end: int | None,
                  metrics: dict[str, float]) -> dict[str, Any]:
        return {
            "version": state.version,
            "window_start": window_start,
            "window_end": window_end,
            "dense_names": self.dense_names,
            "parameters": state.model.parameters(),
            "metrics": metrics,
            "drift": [],
        }
