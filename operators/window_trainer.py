"""Event-time tumbling windows of feature rows -> one model update and snapshot per window.

A KeyedProcessFunction with event-time timers instead of PyFlink's Python window operator,
which costs several times more per record. All rows share one key, so one trainer holds the
model; its state (model, optimizer, drift references, version) is Flink state.
"""

from __future__ import annotations

import json
from typing import Iterator

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from conf.settings import Settings
from operators.fault_injection import FailOnce
from operators.tags import DRIFT_EVENTS
from udfs.events import window_start
from udfs.user_features import FeatureRow
from udfs.window_trainer import WindowTrainer


class TrainOnWindows(KeyedProcessFunction):
    def __init__(self, settings: Settings, dense_names: list[str]) -> None:
        self.settings = settings
        self.dense_names = dense_names

    def open(self, runtime_context: RuntimeContext) -> None:
        self.trainer = WindowTrainer(self.settings, self.dense_names)
        self.size = self.settings.window.size_ms
        self.buffer = runtime_context.get_list_state(ListStateDescriptor("rows", Types.PICKLED_BYTE_ARRAY()))
        self.state = runtime_context.get_state(ValueStateDescriptor("trainer", Types.PICKLED_BYTE_ARRAY()))
        self.fault = FailOnce(self.settings, "trainer")

    def process_element(self, row: FeatureRow, ctx: KeyedProcessFunction.Context) -> Iterator:
        self.fault.tick()
        self.buffer.add(row)
        ctx.timer_service().register_event_time_timer(window_start(row.event_time, self.size) + self.size - 1)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        end = timestamp + 1
        rows, later = [], []
        for row in self.buffer.get() or ():
            (rows if row.event_time < end else later).append(row)
        self.buffer.update(later)
        state = self.state.value() or self.trainer.initial_state()
        result = self.trainer.close_window(state, end - self.size, end, rows)
        self.state.update(state)
        for event in result.drift_events:
            yield DRIFT_EVENTS, json.dumps(event)
        yield result.snapshot
