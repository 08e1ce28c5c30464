"""Event-time tumbling windows of feature batches -> one model update and snapshot per window.

A KeyedProcessFunction with event-time timers instead of PyFlink's Python window operator,
which costs several times more per record. All batches share one key, so one trainer holds the
model; its state (model, optimizer, drift references, version) is Flink state. Batches are
buffered whole (one state append per batch, not per row) until their window closes.
"""

from __future__ import annotations

import json
from typing import Iterator

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from conf.settings import Settings
from operators.tags import DRIFT_EVENTS
from udfs.feature_batch import FeatureBatch
from udfs.window_trainer import WindowTrainer


class TrainOnWindows(KeyedProcessFunction):
    def __init__(self, settings: Settings, dense_names: list[str]) -> None:
        self.settings = settings
        self.dense_names = dense_names

    def open(self, runtime_context: RuntimeContext) -> None:
        self.trainer = WindowTrainer(self.settings, self.dense_names)
        self.size = self.settings.window.size_ms
        self.buffer = runtime_context.get_list_state(ListStateDescriptor("batches", Types.PICKLED_BYTE_ARRAY()))
        self.state = runtime_context.get_state(ValueStateDescriptor("trainer", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, keyed: tuple[int, FeatureBatch], ctx: KeyedProcessFunction.Context) -> Iterator:
        _, batch = keyed
        for start, part in batch.by_window(self.size).items():
            self.buffer.add((start, part))
            ctx.timer_service().register_event_time_timer(start + self.size - 1)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        start = timestamp + 1 - self.size
        parts, later = [], []
        for window, part in self.buffer.get() or ():
            (parts if window == start else later).append((window, part))
        self.buffer.update(later)
        rows = FeatureBatch.concat((part for _, part in parts), len(self.dense_names))
        state = self.state.value() or self.trainer.initial_state()
        result = self.trainer.close_window(state, start, start + self.size, rows)
        self.state.update(state)
        for event in result.drift_events:
            yield DRIFT_EVENTS, json.dumps(event)
        yield result.snapshot
