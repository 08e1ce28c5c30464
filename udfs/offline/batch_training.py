"""A model trained on a history before the job goes online (scripts/train_batch.py), without Flink.

The history is replayed in event-time order through the job's own triage checks, duplicate
guard and per-user feature extraction (udfs/features/batch_features.py), so the model sees exactly the
features the job will compute, and the users' states at the end are what the job's users would
hold after the same events. The configured ``model.kind`` then trains on every labeled event,
``epochs`` shuffled passes, and becomes a snapshot of the job's format: the job warm-starts from
it (``model.warm_start``) and its users from the states (``features.initial_user_state``).

>>> from conf.settings import load_settings
>>> from udfs.sim.stream_generator import StreamSpec, generate_events
>>> import json
>>> lines = [json.dumps(e) for e in generate_events(StreamSpec(n_events=2000, n_users=50, duration_s=1800))]
>>> history = replay_history(load_settings(), lines)
>>> len(history.rows), len(history.users), history.dead_letters
(2000, 50, {})
>>> snapshot = train_on_history(load_settings(), history, epochs=2)
>>> snapshot["version"], snapshot["metrics"]["logloss"] < snapshot["metrics"]["baseline_logloss"]
(1, True)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from conf.settings import Settings, SettingsError
from udfs.features.batch_features import BatchFeaturizer
from udfs.features.events import DeadLetter, Event, EventValidator
from udfs.features.feature_batch import FeatureBatch
from udfs.features.user_features import UserState
from udfs.learning.learner import TrainParams
from udfs.learning.metrics import log_loss
from udfs.learning.model import Model, ModelSpec

REPLAY_BATCH_EVENTS = 5_000


@dataclass(frozen=True)
class HistoryReplay:
    rows: FeatureBatch               # every valid event's features, in event-time order
    users: dict[str, UserState]      # each user's state after the history
    dense_names: list[str]
    dead_letters: dict[str, int]     # reason -> count


def replay_history(settings: Settings, lines: Sequence[str],
                   progress: Callable[[int, int], None] = lambda done, total: None) -> HistoryReplay:
    """Features of every valid event of ``lines``, each user's events in event-time order (ties in the
    order of the lines), as the job computes them; ``progress(done, total)`` after each batch."""
    validator = EventValidator.from_settings(settings)
    featurizer = BatchFeaturizer.from_settings(settings)
    events: list[Event] = []
    dead: Counter[str] = Counter()
    for line in lines:
        parsed = validator.parse(line)
        if isinstance(parsed, DeadLetter):
            dead[parsed.reason] += 1
        else:
            events.append(parsed)
    events.sort(key=lambda e: e.event_time)  # stable: ties keep the lines' order, as in the job
    users: dict[str, UserState] = {}
    batches = []
    for start in range(0, len(events), REPLAY_BATCH_EVENTS):
        featurized = featurizer.featurize(events[start:start + REPLAY_BATCH_EVENTS], users)
        dead.update(letter.reason for letter in featurized.dead_letters)
        batches.append(featurized.batch)
        progress(min(start + REPLAY_BATCH_EVENTS, len(events)), len(events))
    return HistoryReplay(FeatureBatch.concat(batches, featurizer.n_dense), users,
                         featurizer.extractor.dense_names, dict(dead))


def train_on_history(settings: Settings, history: HistoryReplay, epochs: int,
                     progress: Callable[[int, float], None] = lambda epoch, logloss: None) -> dict[str, Any]:
    """The configured model kind trained on all labeled rows, ``epochs`` passes (``progress(epoch,
    training logloss)`` after each), as a snapshot the job can warm-start from (version 1)."""
    rows, m = history.rows, settings.model
    model = Model.initial(ModelSpec.from_settings(m), len(history.dense_names), settings.features.hash_buckets)
    model.update_scaler(rows.dense, decay=m.scaler_decay, reset=True)  # the whole history's mean and variance
    labeled = rows.labels >= 0
    dense, buckets, y = rows.dense[labeled], rows.buckets[labeled], rows.labels[labeled]
    if not len(y):
        raise SettingsError("the history has no labeled event to train on (label 0 or 1)")
    loss = float("nan")
    for epoch in range(1, epochs + 1):
        model.fit(dense, buckets, y, TrainParams(optimizer=m.optimizer, learning_rate=m.learning_rate, epochs=1,
                                                 batch_size=m.batch_size, l2=m.l2, seed=m.seed + epoch))
        loss = log_loss(y, model.predict_proba(dense, buckets))
        progress(epoch, loss)
    base_rate = float(y.mean())
    return {
        "version": 1,
        "trained_version": 1,
        "window_start": int(rows.event_times.min()),
        "window_end": int(rows.event_times.max()) + 1,
        "dense_names": history.dense_names,
        "parameters": model.parameters(),
        "metrics": {"events": float(len(rows)), "examples": float(len(y)), "epochs": float(epochs),
                    "logloss": loss, "baseline_logloss": log_loss(y, np.full(len(y), base_rate)),
                    "positive_rate": base_rate},
        "drift": [],
        "decisions": [{"kind": "batch_trained", "reason": f"{epochs} epochs over the history"}],
    }
