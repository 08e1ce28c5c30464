"""The benchmark's stand-in for features, training and scoring: one trivial Python call per batch."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from pyflink.common import Row
from pyflink.datastream.functions import FlatMapFunction

from udfs.features.feature_batch import FeatureBatch
from udfs.features.slice_batches import batch_events
from udfs.features.user_features import FeatureRow
from udfs.learning.scoring import predictions_json


class ConstantPredictions(FlatMapFunction):
    def flat_map(self, batch: Row) -> Iterator[str]:
        rows = [FeatureRow(e.event_id, e.user_id, e.event_time, e.label, (), ())
                for e in batch_events(batch.events)]
        yield from predictions_json(FeatureBatch.from_rows(rows, n_dense=0), np.full(len(rows), 0.5), 0)
