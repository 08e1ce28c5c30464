"""The benchmark's stand-in for features, training and scoring: one trivial Python call per batch."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from pyflink.common import Row
from pyflink.datastream.functions import FlatMapFunction, RuntimeContext

from conf.settings import Settings
from operators.user_features import LINE_SEPARATOR
from udfs.events import EventValidator
from udfs.feature_batch import NO_LABEL, FeatureBatch
from udfs.scoring import predictions_json


class ConstantPredictions(FlatMapFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        self.validator = EventValidator.from_settings(self.settings)

    def flat_map(self, batch: Row) -> Iterator[str]:
        events = [self.validator.parse(line) for line in batch.lines.split(LINE_SEPARATOR)]
        rows = FeatureBatch(
            event_ids=[e.event_id for e in events], user_ids=[e.user_id for e in events],
            event_times=np.array([e.event_time for e in events], dtype=np.int64),
            labels=np.array([NO_LABEL if e.label is None else e.label for e in events], dtype=float),
            dense=np.zeros((len(events), 0)), buckets=np.zeros((len(events), 0), dtype=np.int64),
        )
        yield from predictions_json(rows, np.full(len(events), 0.5), 0)
