"""The rows the trainer learns from: a uniform sample of each slot that every part of the slot agrees on.

The single trainer must not see every event: its work would grow with the stream while everything
else grows with the cluster. Each slot's sample is the rows whose event ids hash lowest (a
bottom-k sample). The per-user subtasks keep the lowest ``k`` of their own rows of a slot, and the
trainer keeps the lowest ``k`` of what they send: the lowest ``k`` of the whole slot, exactly, at
any parallelism and shard count, and uniform over rows (the hash does not depend on the features or
the label). Where a slot has ``k`` rows or fewer, the sample is all of them.

>>> from udfs.features.user_features import FeatureRow
>>> from udfs.features.feature_batch import FeatureBatch
>>> rows = FeatureBatch.from_rows([FeatureRow(f"e{i}", "u", i, 1, (float(i),), ()) for i in range(10)], n_dense=1)
>>> sample = bottom_k(rows, 4)
>>> len(sample), sample.event_ids == bottom_k(FeatureBatch.concat([bottom_k(rows.take(slice(0, 5)), 4),
...                                                               bottom_k(rows.take(slice(5, 10)), 4)], 1), 4).event_ids
(4, True)
>>> bottom_k(rows, None) is rows, bottom_k(rows, 10) is rows
(True, True)
"""

from __future__ import annotations

import hashlib

import numpy as np

from udfs.features.feature_batch import FeatureBatch


def sample_keys(event_ids: list[str]) -> np.ndarray:
    """A 64-bit hash of each event id, the same in every process."""
    return np.array([int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in event_ids],
                    dtype=np.uint64)


def bottom_k(rows: FeatureBatch, k: int | None) -> FeatureBatch:
    """The ``k`` rows of ``rows`` with the lowest keys (ties by event id), in their order; all of
    them when there are no more than ``k`` (``None``: no limit)."""
    if k is None or len(rows) <= k:
        return rows
    keys = sample_keys(rows.event_ids)
    order = sorted(range(len(rows)), key=lambda i: (keys[i], rows.event_ids[i]))[:k]
    return rows.take(np.sort(np.array(order, dtype=np.int64)))


def training_sample(batch: FeatureBatch, slot_ms: int, per_slot: int | None) -> FeatureBatch:
    """The rows of ``batch`` that may be in their slot's sample: the lowest ``per_slot`` of each slot."""
    if per_slot is None:
        return batch
    parts = [bottom_k(part, per_slot) for part in batch.by_window(slot_ms).values()]
    return FeatureBatch.concat(parts, batch.dense.shape[1]) if parts else batch


def slot_rows(parts: list[FeatureBatch], n_dense: int, per_slot: int | None) -> FeatureBatch:
    """A closed slot's sample, from the parts the per-user subtasks sent (each already cut to its
    lowest ``per_slot``): the lowest ``per_slot`` of them all."""
    return bottom_k(FeatureBatch.concat(parts, n_dense), per_slot)
