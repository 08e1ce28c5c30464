"""Prequential scoring: which snapshot may score an event, and the prediction record.

An event of slot ``s`` is scored by the newest snapshot whose training ended at or before ``s``
started, less the serving lag (``window.serving_lag_ms``): a window's, or a fast-mode slot
update's. Snapshots are indexed by their end for that lookup.

>>> idx = SnapshotIndex()
>>> idx.add({"version": 1, "window_end": 600, "parameters": None})
>>> idx.add({"version": 2, "window_end": 900, "parameters": None})
>>> idx.serving_for(slot_start=600)["version"], idx.serving_for(slot_start=300)["version"]
(1, 0)

With a lag of 300, the rows of slot 900 are served by the snapshot that ended at 600:

>>> lagged = SnapshotIndex(lag_ms=300)
>>> for snapshot in idx.snapshots.values():
...     lagged.add(snapshot)
>>> lagged.cutoff(slot_start=900), lagged.serving_for(slot_start=900)["version"]
(600, 1)
"""

from __future__ import annotations

import bisect
import json
from typing import Any

import numpy as np

from udfs.features.feature_batch import NO_LABEL, FeatureBatch
from udfs.learning.model import Model

_INITIAL = {"version": 0, "window_end": None, "parameters": None}


def serving_cutoff(slot_start: int, lag_ms: int) -> int:
    """The latest end of a snapshot that may score the rows of the slot starting at ``slot_start``:
    the slot's start less the serving lag (``window.serving_lag_ms``).

    >>> serving_cutoff(90_000, lag_ms=0), serving_cutoff(90_000, lag_ms=30_000)
    (90000, 60000)
    """
    return slot_start - lag_ms


class SnapshotIndex:
    """Snapshots by the end of their window or slot, plus their decoded models (decoded once, used per event)."""

    def __init__(self, initial: dict[str, Any] | None = None, lag_ms: int = 0) -> None:
        self.initial = initial or _INITIAL
        self.lag_ms = lag_ms
        self.ends: list[int] = []
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.models: dict[int, Model] = {}

    def add(self, snapshot: dict[str, Any]) -> None:
        end = snapshot["window_end"]
        if end not in self.snapshots:
            bisect.insort(self.ends, end)
        self.snapshots[end] = snapshot
        self.models.pop(snapshot["version"], None)

    def cutoff(self, slot_start: int) -> int:
        return serving_cutoff(slot_start, self.lag_ms)

    def serving_for(self, slot_start: int) -> dict[str, Any]:
        i = bisect.bisect_right(self.ends, self.cutoff(slot_start))
        return self.snapshots[self.ends[i - 1]] if i else self.initial

    def model(self, snapshot: dict[str, Any]) -> Model | None:
        if snapshot["parameters"] is None:
            return None
        version = snapshot["version"]
        if version not in self.models:
            self.models[version] = Model.from_parameters(snapshot["parameters"])
        return self.models[version]

    def prune(self, before: int) -> list[int]:
        """Drop the snapshots no row can need any more; returns their ends.

        Rows still to be scored start at or after ``before``, and each is served by the newest
        snapshot ending at or before its start: all older ones can go. (A count limit cannot be
        right: a predictor that waits on a slow trainer receives many snapshots before it may
        score the rows they serve.)

        >>> idx = SnapshotIndex()
        >>> for version, end in enumerate((300, 600, 900), start=1):
        ...     idx.add({"version": version, "window_end": end, "parameters": None})
        >>> idx.prune(before=700), idx.serving_for(slot_start=700)["version"]
        ([300], 2)
        """
        newest_usable = bisect.bisect_right(self.ends, self.cutoff(before)) - 1
        if newest_usable <= 0:
            return []
        dropped, self.ends = self.ends[:newest_usable], self.ends[newest_usable:]
        for end in dropped:
            self.models.pop(self.snapshots.pop(end)["version"], None)
        return dropped


def score_batch(batch: FeatureBatch, model: Model | None) -> np.ndarray:
    """Probability of a positive label for every row in one vectorised pass; the untrained model says 0.5."""
    if model is None:
        return np.full(len(batch), 0.5)
    return model.predict_proba(batch.dense, batch.buckets)


def predictions_json(batch: FeatureBatch, probabilities: np.ndarray, model_version: int) -> list[str]:
    """One prediction record per row, tagged with the version of the model that scored it."""
    return [
        json.dumps({
            "event_id": event_id,
            "user_id": user_id,
            "event_time": int(event_time),
            "score": float(p),
            "prediction": int(p >= 0.5),
            "model_version": model_version,
            "label": None if label == NO_LABEL else int(label),
        })
        for event_id, user_id, event_time, p, label in zip(batch.event_ids, batch.user_ids, batch.event_times,
                                                           probabilities, batch.labels)
    ]
