"""Scores every event with the newest snapshot whose training ended by the start of the event's slot
(less ``window.serving_lag_ms``), a batch at a time.

Snapshots (one per window, and one per slot in fast mode) arrive as a broadcast stream from the
trainer. The rows of slot ``s`` in a batch wait (in keyed state, with an event-time timer) until
the watermark shows that every slot ending at or before that cutoff has closed; then the
snapshot that serves them is final and the scores are the same on every run, whatever the
relative speed of the two inputs. Each batch is scored in one vectorised pass per slot.
"""

from __future__ import annotations

from typing import Any, Iterator

from pyflink.common import Types
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor

from conf.settings import Settings
from udfs.features.feature_batch import FeatureBatch
from udfs.features.slicing import batched_by
from udfs.learning.scoring import SnapshotIndex, predictions_json, score_batch, serving_cutoff
from udfs.tracking.warm_start import warm_snapshot

SNAPSHOTS = MapStateDescriptor("snapshots", Types.LONG(), Types.PICKLED_BYTE_ARRAY())
MIN_WATERMARK = -(2**63)  # Flink's Long.MIN_VALUE: no watermark yet


class ScoreEvents(KeyedBroadcastProcessFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slot, self.size = settings.window.slot_ms, settings.window.size_ms
        self.slice = settings.batching.slice_ms  # resolved before the graph is built (never "auto" here)
        self.lag = settings.window.serving_lag_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        self.waiting = runtime_context.get_list_state(ListStateDescriptor("waiting", Types.PICKLED_BYTE_ARRAY()))
        self.index: SnapshotIndex | None = None
        # The newest watermark seen on the keyed side, kept for the broadcast side, whose context has
        # none in thread mode (PyFlink 2.3). There it only prunes old snapshots, so starting low (and
        # low again after a restore) is safe; the keyed side refreshes it before each use.
        self.watermark = MIN_WATERMARK

    def process_element(self, keyed: tuple[int, FeatureBatch],
                        ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> Iterator[str]:
        _, batch = keyed
        self.watermark = max(self.watermark, ctx.timer_service().current_watermark())
        for start, part in batch.by_window(self.slot).items():
            if self.watermark >= self._ready_at(start):
                yield from self._score(start, part, ctx)
            else:
                self.waiting.add((start, part))
                ctx.timer_service().register_event_time_timer(self._ready_at(start))

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext) -> Iterator[str]:
        self.watermark = max(self.watermark, timestamp)
        ready, waiting = [], []
        for start, part in self.waiting.get() or ():
            (ready if self._ready_at(start) <= timestamp else waiting).append((start, part))
        self.waiting.update(waiting)
        for start, part in ready:
            yield from self._score(start, part, ctx)

    def _ready_at(self, slot_start: int) -> int:
        """The watermark that proves the snapshot serving ``slot_start`` final.

        The trainer closes the slot ending at the cutoff (the slot's start less the serving lag)
        once all its rows are in: they come in the batches of the slice holding that slot's last
        millisecond (see TrainOnWindows). A slot shorter than a slice is closed only then, so
        waiting for the cutoff alone would score with the snapshot before. With a lag of a slot
        or more, the cutoff has passed by the time a slot's rows arrive, and they are scored at once.
        """
        return batched_by(serving_cutoff(slot_start, self.lag), self.slice)

    def process_broadcast_element(self, snapshot: dict[str, Any], ctx: KeyedBroadcastProcessFunction.Context) -> None:
        state = ctx.get_broadcast_state(SNAPSHOTS)
        state.put(snapshot["window_end"], snapshot)
        index = self._index(state)
        index.add(snapshot)
        # Rows to come start at or after the watermark's window (a window back: subtasks' watermarks
        # differ a little, and a rescaled job may restore another subtask's broadcast state).
        watermark = self.watermark
        for end in index.prune(before=watermark - watermark % self.size - self.size):
            state.remove(end)

    def _score(self, start: int, part: FeatureBatch, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> list[str]:
        index = self._index(ctx.get_broadcast_state(SNAPSHOTS))
        snapshot = index.serving_for(start)
        return predictions_json(part, score_batch(part, index.model(snapshot)), snapshot["version"])

    def _index(self, state: Any) -> SnapshotIndex:
        """The in-memory index mirrors broadcast state; rebuilt from it after a restore."""
        if self.index is None:
            self.index = SnapshotIndex(initial=warm_snapshot(self.settings), lag_ms=self.lag)
            for _, snapshot in state.items():
                self.index.add(snapshot)
        return self.index
