"""A batch of feature rows as arrays: what crosses between the Python operators, one record per batch.

Events reach Python in batches (one per user shard and event-time slice), so features, scoring
and the trainer's input are array operations over a batch, not Python calls per event.

>>> from udfs.features.user_features import FeatureRow
>>> rows = [FeatureRow("e2", "u1", 20, 1, (0.5, 1.0), (3,)), FeatureRow("e1", "u2", 10, None, (0.1, 2.0), ())]
>>> batch = FeatureBatch.from_rows(rows, n_dense=2)
>>> batch.buckets.tolist(), batch.labels.tolist()
([[3], [-1]], [1.0, -1.0])
>>> batch.canonical().event_ids
['e1', 'e2']
>>> len(FeatureBatch.concat([batch, batch], n_dense=2))
4
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from udfs.features.events import Event
from udfs.features.user_features import FeatureRow

NO_LABEL = -1.0


@dataclass(frozen=True)
class FeatureBatch:
    """Feature rows as arrays; ``labels`` hold -1 where unlabeled, ``buckets`` are padded with -1."""

    event_ids: list[str]
    user_ids: list[str]
    event_times: np.ndarray  # int64 epoch ms
    labels: np.ndarray       # float: 0, 1 or NO_LABEL
    dense: np.ndarray        # (n, n_dense) float, NaN = missing
    buckets: np.ndarray      # (n, width) int64, -1 = none

    def __len__(self) -> int:
        return len(self.event_ids)

    @classmethod
    def from_rows(cls, rows: list[FeatureRow], n_dense: int) -> FeatureBatch:
        dense = np.array([r.dense for r in rows], dtype=float).reshape(len(rows), n_dense)
        width = max((len(r.buckets) for r in rows), default=0)
        buckets = np.full((len(rows), width), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            buckets[i, :len(r.buckets)] = r.buckets
        return cls.from_events(rows, dense, buckets)

    @classmethod
    def from_events(cls, events: list[Event] | list[FeatureRow], dense: np.ndarray, buckets: np.ndarray) -> FeatureBatch:
        """The batch of ``events`` (or rows: their ids, times and labels) with their feature
        arrays, one row per event in the same order."""
        return cls(
            event_ids=[e.event_id for e in events],
            user_ids=[e.user_id for e in events],
            event_times=np.array([e.event_time for e in events], dtype=np.int64),
            labels=np.array([NO_LABEL if e.label is None else e.label for e in events], dtype=float),
            dense=dense,
            buckets=buckets,
        )

    @classmethod
    def concat(cls, batches: Iterable[FeatureBatch], n_dense: int) -> FeatureBatch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.from_rows([], n_dense)
        width = max(b.buckets.shape[1] for b in batches)
        buckets = [np.pad(b.buckets, ((0, 0), (0, width - b.buckets.shape[1])), constant_values=-1) for b in batches]
        return cls(
            event_ids=[i for b in batches for i in b.event_ids],
            user_ids=[u for b in batches for u in b.user_ids],
            event_times=np.concatenate([b.event_times for b in batches]),
            labels=np.concatenate([b.labels for b in batches]),
            dense=np.vstack([b.dense for b in batches]),
            buckets=np.vstack(buckets),
        )

    def take(self, index: np.ndarray) -> FeatureBatch:
        """The rows at ``index`` (integer positions or a boolean mask), in that order."""
        positions = np.arange(len(self))[index]
        return FeatureBatch(
            event_ids=[self.event_ids[i] for i in positions],
            user_ids=[self.user_ids[i] for i in positions],
            event_times=self.event_times[positions],
            labels=self.labels[positions],
            dense=self.dense[positions],
            buckets=self.buckets[positions],
        )

    def canonical(self) -> FeatureBatch:
        """Rows sorted by (event time, user, event id): an order that does not depend on how the
        stream was split into batches or on which subtask delivered them first."""
        order = sorted(range(len(self)), key=lambda i: (self.event_times[i], self.user_ids[i], self.event_ids[i]))
        return self.take(np.array(order, dtype=np.int64))

    def by_window(self, size_ms: int) -> dict[int, FeatureBatch]:
        """The rows of each tumbling event-time window (keyed by window start) in this batch."""
        starts = self.event_times - self.event_times % size_ms
        return {int(start): self.take(starts == start) for start in np.unique(starts)}


def rows_to_arrays(rows: list[FeatureRow], n_dense: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense matrix (NaN = missing) and bucket-index matrix (padded with -1) of ``rows``."""
    batch = FeatureBatch.from_rows(rows, n_dense)
    return batch.dense, batch.buckets
