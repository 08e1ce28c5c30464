"""Event-time slots and windows of feature batches -> checks per slot, one model update per window
(per slot in fast mode) and a snapshot per update.

A KeyedProcessFunction with event-time timers instead of PyFlink's Python window operator,
which costs several times more per record. All batches share one key, so one trainer holds the
model; its state (model, optimizer, drift references, version) is Flink state. Batches are
buffered whole (one state append per batch and slot, not per row) until their slot closes; a
closed slot's scored rows wait in state for the close of their window.

A slot closes when the batches of the slice holding its last millisecond are all in, not at the
slot's own end: a batch comes after watermarks past the slots it holds, and a timer registered
behind the watermark fires at the next watermark PyFlink lets through. PyFlink holds a watermark
back until the bundle in flight finishes, and that bundle may already hold the first of the
slice's batches; the slot then closed with part of its rows, and training depended on timing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Iterator

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from conf.settings import Settings
from operators.tags import DRIFT_EVENTS
from udfs.features.feature_batch import FeatureBatch
from udfs.features.slicing import batched_by
from udfs.learning.row_sample import slot_rows
from udfs.learning.window_trainer import WindowTrainer


class TrainOnWindows(KeyedProcessFunction):
    def __init__(self, settings: Settings, dense_names: list[str]) -> None:
        self.settings = settings
        self.dense_names = dense_names

    def open(self, runtime_context: RuntimeContext) -> None:
        self.trainer = WindowTrainer(self.settings, self.dense_names)
        self.size, self.slot = self.settings.window.size_ms, self.settings.window.slot_ms
        self.slice = self.settings.batching.slice_ms  # resolved before the graph is built (never "auto" here)
        self.per_slot = self.settings.window.training_rows_per_slot
        self.buffer = runtime_context.get_list_state(ListStateDescriptor("batches", Types.PICKLED_BYTE_ARRAY()))
        self.closed_slots = runtime_context.get_list_state(
            ListStateDescriptor("closed-slots", Types.PICKLED_BYTE_ARRAY()))
        self.state = runtime_context.get_state(ValueStateDescriptor("trainer", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, keyed: tuple[int, FeatureBatch], ctx: KeyedProcessFunction.Context) -> Iterator:
        _, batch = keyed
        for start, part in batch.by_window(self.slot).items():
            self.buffer.add((start, part))
            # Slices tile windows: the window's end is a slice's end, so its close comes after its
            # last slot's, in the same timer (one timer per timestamp: no double fire).
            ctx.timer_service().register_event_time_timer(batched_by(start + self.slot, self.slice))
            ctx.timer_service().register_event_time_timer(start - start % self.size + self.size - 1)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator:
        ready, later = defaultdict(list), []
        for start, part in self.buffer.get() or ():
            if batched_by(start + self.slot, self.slice) <= timestamp:
                ready[start].append(part)
            else:
                later.append((start, part))
        state = self.state.value() or self.trainer.initial_state()
        if ready:
            self.buffer.update(later)
        for start in sorted(ready):  # the slots of one slice, in order
            rows = slot_rows(ready[start], len(self.dense_names), self.per_slot)
            closed = self.trainer.close_slot(state, start, rows)
            self.closed_slots.add(closed.scored)
            yield from self._emit(closed.drift_events, closed.snapshot)
        end = timestamp + 1
        if self.trainer.ends_window(end):  # even when its last slot is empty
            slots = list(self.closed_slots.get() or ())
            self.closed_slots.clear()
            result = self.trainer.close_window(state, end - self.size, end, slots)
            yield from self._emit(result.drift_events, result.snapshot)
        self.state.update(state)

    def _emit(self, drift_events: list[dict], snapshot: dict | None) -> Iterator:
        for event in drift_events:
            yield DRIFT_EVENTS, json.dumps(event)
        if snapshot is not None:
            yield snapshot
