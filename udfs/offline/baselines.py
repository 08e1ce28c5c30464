"""Honest baselines for the job's learning quality, on the same events and the same features.

- :class:`StaticBaseline`: trained once on the first windows, then frozen: what a nightly batch
  model that missed the drift would do.
- :class:`OnlineSGD`: one logistic SGD step per labeled event, predicting before learning (River
  style ``predict_one`` / ``learn_one``), with a running standardisation: the per-event
  learner that needs no windows and no Flink.

Both score every labeled event prequentially; :func:`per_window` turns the scores into the same
per-window logloss/accuracy the job reports.

>>> import numpy as np
>>> sgd = OnlineSGD(n_dense=1, hash_buckets=2, learning_rate=0.5)
>>> for _ in range(200):
...     for x, y in ((-1.0, 0), (1.0, 1)):
...         _ = sgd.learn_one(np.array([x]), np.array([0]), y)
>>> sgd.predict_one(np.array([2.0]), np.array([0])) > 0.9
True
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from conf.settings import Settings
from udfs.features.events import DeadLetter, EventValidator, window_start
from udfs.features.feature_batch import rows_to_arrays
from udfs.features.user_features import FeatureRow, UserFeatureExtractor, UserState
from udfs.learning.learner import TrainParams
from udfs.learning.metrics import accuracy, log_loss
from udfs.learning.model import Model, ModelSpec


def feature_rows(settings: Settings, lines: Iterable[str]) -> list[FeatureRow]:
    """The job's features of every valid event, in stream order."""
    validator = EventValidator.from_settings(settings)
    extractor = UserFeatureExtractor.from_settings(settings)
    users: dict[str, UserState] = {}
    rows = []
    for line in lines:
        event = validator.parse(line)
        if isinstance(event, DeadLetter):
            continue
        state = users.setdefault(event.user_id, UserState.new(len(settings.features.numeric)))
        rows.append(extractor.featurize(state, event))
    return rows


def per_window(rows: list[FeatureRow], probs: dict[str, float], size_ms: int) -> dict[int, dict[str, float]]:
    """Window start -> logloss, accuracy and examples of the labeled rows scored in ``probs``."""
    grouped: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        if row.event_id in probs:
            grouped[window_start(row.event_time, size_ms)].append((row.label, probs[row.event_id]))
    out = {}
    for start, pairs in sorted(grouped.items()):
        y = np.array([label for label, _ in pairs], dtype=float)
        p = np.array([prob for _, prob in pairs])
        out[start] = {"logloss": log_loss(y, p), "accuracy": accuracy(y, p), "examples": float(len(y))}
    return out


class StaticBaseline:
    """Fit on the labeled rows of the first ``train_windows`` windows, then never again."""

    def __init__(self, settings: Settings, n_dense: int, train_windows: int) -> None:
        self.settings = settings
        self.n_dense = n_dense
        self.train_windows = train_windows

    def score(self, rows: list[FeatureRow]) -> dict[str, float]:
        size = self.settings.window.size_ms
        cutoff = window_start(rows[0].event_time, size) + self.train_windows * size
        train = [r for r in rows if r.event_time < cutoff and r.label is not None]
        model = Model.initial(ModelSpec(), self.n_dense, self.settings.features.hash_buckets)
        dense, buckets = rows_to_arrays(train, self.n_dense)
        model.update_scaler(dense, decay=0.0, reset=True)
        m = self.settings.model
        model.fit(dense, buckets, np.array([r.label for r in train], dtype=float),
                  TrainParams(optimizer=m.optimizer, learning_rate=m.learning_rate, epochs=m.epochs * self.train_windows,
                              batch_size=m.batch_size, l2=m.l2, seed=m.seed))
        scored = [r for r in rows if r.event_time >= cutoff and r.label is not None]
        dense, buckets = rows_to_arrays(scored, self.n_dense)
        return dict(zip((r.event_id for r in scored), model.predict_proba(dense, buckets).tolist()))


class OnlineSGD:
    """Logistic regression learned one event at a time, standardising with running moments."""

    def __init__(self, n_dense: int, hash_buckets: int, learning_rate: float = 0.05, l2: float = 1e-4) -> None:
        self.model = Model.initial(ModelSpec(), n_dense, hash_buckets)
        self.linear, self.scaler = self.model.learner, self.model.scaler
        self.learning_rate = learning_rate
        self.l2 = l2
        self.n = np.zeros(n_dense)
        self.m2 = np.zeros(n_dense)

    def predict_one(self, dense: np.ndarray, buckets: np.ndarray) -> float:
        return float(self.model.predict_proba(dense[None, :], buckets[None, :])[0])

    def learn_one(self, dense: np.ndarray, buckets: np.ndarray, label: int) -> float:
        """Predicts, then learns from the label; returns the prediction (prequential)."""
        self._absorb(dense)
        x = self.scaler.design(dense[None, :], buckets[None, :])[0]
        p = float(self.linear.predict_design(x[None, :])[0])
        self.linear.weights -= self.learning_rate * ((p - label) * x + self.l2 * self.linear.weights)
        self.linear.bias -= self.learning_rate * (p - label)
        return p

    def _absorb(self, dense: np.ndarray) -> None:
        """Welford's running mean/variance per column, before scoring (features, not labels)."""
        seen = np.isfinite(dense)
        self.n += seen
        delta = np.where(seen, dense - self.scaler.mean, 0.0)
        self.scaler.mean = self.scaler.mean + np.where(self.n > 0, delta / np.maximum(self.n, 1), 0.0)
        self.m2 += np.where(seen, delta * (np.where(seen, dense, 0.0) - self.scaler.mean), 0.0)
        self.scaler.var = np.where(self.n > 1, self.m2 / np.maximum(self.n - 1, 1), 1.0)

    def score(self, rows: list[FeatureRow]) -> dict[str, float]:
        probs = {}
        for row in rows:
            if row.label is not None:
                dense, buckets = rows_to_arrays([row], self.scaler.n_dense)
                probs[row.event_id] = self.learn_one(dense[0], buckets[0], row.label)
        return probs
