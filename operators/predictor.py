"""Scores every event with the newest snapshot trained only on earlier windows.

Snapshots arrive as a broadcast stream from the trainer. An event of window ``w`` waits (in
keyed state, with an event-time timer) until the watermark shows that every window ending at
or before ``w``'s start has closed; then the snapshot that serves it is final and the score
is the same on every run, whatever the relative speed of the two inputs.
"""

from __future__ import annotations

from typing import Any, Iterator

from pyflink.common import Types
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor

from conf.settings import Settings
from operators.fault_injection import FailOnce
from udfs.events import window_start
from udfs.scoring import SnapshotIndex, prediction_json, score
from udfs.user_features import FeatureRow
from udfs.warm_start import warm_snapshot

SNAPSHOTS = MapStateDescriptor("snapshots", Types.LONG(), Types.PICKLED_BYTE_ARRAY())
KEEP_SNAPSHOTS = 64


class ScoreEvents(KeyedBroadcastProcessFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.size = settings.window.size_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        self.waiting = runtime_context.get_list_state(ListStateDescriptor("waiting", Types.PICKLED_BYTE_ARRAY()))
        self.index: SnapshotIndex | None = None
        self.fault = FailOnce(self.settings, "predictor")

    def process_element(self, row: FeatureRow, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> Iterator[str]:
        self.fault.tick()
        start = window_start(row.event_time, self.size)
        if ctx.timer_service().current_watermark() >= start - 1:
            yield self._score(row, ctx)
        else:
            self.waiting.add(row)
            ctx.timer_service().register_event_time_timer(start - 1)

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext) -> Iterator[str]:
        ready, waiting = [], []
        for row in self.waiting.get() or ():
            (ready if window_start(row.event_time, self.size) - 1 <= timestamp else waiting).append(row)
        self.waiting.update(waiting)
        for row in ready:
            yield self._score(row, ctx)

    def process_broadcast_element(self, snapshot: dict[str, Any], ctx: KeyedBroadcastProcessFunction.Context) -> None:
        state = ctx.get_broadcast_state(SNAPSHOTS)
        state.put(snapshot["window_end"], snapshot)
        index = self._index(state)
        index.add(snapshot)
        for end in index.prune(KEEP_SNAPSHOTS):
            state.remove(end)

    def _score(self, row: FeatureRow, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> str:
        index = self._index(ctx.get_broadcast_state(SNAPSHOTS))
        snapshot = index.serving_for(window_start(row.event_time, self.size))
        return prediction_json(row, score(row, snapshot, index.model(snapshot)), snapshot["version"])

    def _index(self, state: Any) -> SnapshotIndex:
        """The in-memory index mirrors broadcast state; rebuilt from it after a restore."""
        if self.index is None:
            self.index = SnapshotIndex(initial=warm_snapshot(self.settings))
            for _, snapshot in state.items():
                self.index.add(snapshot)
        return self.index
