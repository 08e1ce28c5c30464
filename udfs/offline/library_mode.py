"""The job's learning loop without Flink: same triage, batches, features, windows, drift and scoring.

It replays the job's event-time semantics in one process (watermark = newest timely event time
minus the allowed out-of-orderness): events are triaged in arrival order, batched per
event-time slice once the watermark passes it, featurised per user in event-time order, and
slots and windows close and rows are scored as the watermark moves. So it produces the same predictions
and snapshots as the Flink job. Used as the "why pay for Flink?" baseline and as a cross-check.

>>> from conf.settings import load_settings
>>> from udfs.sim.stream_generator import StreamSpec, generate_events
>>> import json
>>> lines = [json.dumps(e) for e in generate_events(StreamSpec(n_events=3000, n_users=100, duration_s=1800))]
>>> result = run_library(load_settings(), lines)
>>> len(result.predictions), len(result.snapshots)
(3000, 6)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from conf.settings import Settings
from udfs.features.batch_features import BatchFeaturizer
from udfs.features.events import DeadLetter, Event, LineTriage, window_start
from udfs.features.feature_batch import FeatureBatch
from udfs.features.schema import AUTO, infer_schema
from udfs.features.slicing import spread_sample, with_slice
from udfs.features.user_features import UserState
from udfs.learning.scoring import SnapshotIndex, predictions_json, score_batch
from udfs.learning.window_trainer import ScoredSlot, SlotCost, WindowTrainer
from udfs.tracking.warm_start import warm_snapshot


@dataclass
class LibraryResult:
    predictions: list[str] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    slot_costs: list[SlotCost] = field(default_factory=list)  # one per closed slot

    @property
    def window_snapshots(self) -> list[dict[str, Any]]:
        """One per window, without the fast-mode slot updates between them."""
        return [s for s in self.snapshots if s["update"] == "window"]


def run_library(settings: Settings, lines: Sequence[str]) -> LibraryResult:
    f = settings.features
    if AUTO in (f.numeric, f.categorical):  # as the job's client does, from a sample of the input
        settings = infer_schema(spread_sample(lines, f.infer_sample), f.numeric, f.categorical,
                                settings.validation.max_record_bytes).apply(settings)
    settings = with_slice(settings, len(lines), spread_sample(lines))
    triage = LineTriage.from_settings(settings)
    featurizer = BatchFeaturizer.from_settings(settings)
    trainer = WindowTrainer(settings, featurizer.extractor.dense_names)
    trainer_state = trainer.initial_state()
    size, slot, slice_ms = settings.window.size_ms, settings.window.slot_ms, settings.batching.slice_ms
    users: dict[str, UserState] = {}
    slices: dict[int, list[Event]] = defaultdict(list)  # timely events not yet batched, by slice start
    open_slots: dict[int, list[FeatureBatch]] = defaultdict(list)
    window_slots: dict[int, list[ScoredSlot]] = defaultdict(list)  # closed slots of open windows
    waiting: dict[int, list[FeatureBatch]] = defaultdict(list)
    index = SnapshotIndex(initial=warm_snapshot(settings), lag_ms=settings.window.serving_lag_ms)
    result = LibraryResult()

    def emit(snapshot: dict[str, Any], drift_events: list[dict[str, Any]]) -> None:
        index.add(snapshot)
        result.snapshots.append(snapshot)
        result.drift_events.extend(drift_events)

    def advance(watermark: int) -> None:
        """What the job does when the watermark moves: batch closed slices, close slots and windows, score rows."""
        for start in sorted(s for s in slices if s + slice_ms - 1 <= watermark):
            featurized = featurizer.featurize(slices.pop(start), users)
            result.dead_letters.extend(letter.to_json() for letter in featurized.dead_letters)
            for slot_start, part in featurized.batch.by_window(slot).items():
                open_slots[slot_start].append(part)
                waiting[slot_start].append(part)
        # A window closes after its last slot, even an empty one: the job's trainer has a timer there.
        last_slots = {start - start % size + size - slot for start in [*window_slots, *open_slots]}
        for start in sorted(set(open_slots) | set(waiting) | last_slots):
            if start in waiting and index.cutoff(start) - 1 <= watermark:
                snapshot = index.serving_for(start)
                model = index.model(snapshot)
                for part in waiting.pop(start):
                    result.predictions.extend(predictions_json(part, score_batch(part, model), snapshot["version"]))
            if start + slot - 1 > watermark:
                continue
            window = start - start % size
            if start in open_slots:
                rows = FeatureBatch.concat(open_slots.pop(start), featurizer.n_dense)
                closed = trainer.close_slot(trainer_state, start, rows)
                window_slots[window].append(closed.scored)
                result.slot_costs.append(closed.cost)
                result.drift_events.extend(closed.drift_events)
                if closed.snapshot is not None:
                    emit(closed.snapshot, [])
            if trainer.ends_window(start + slot) and window in window_slots:
                closed_window = trainer.close_window(trainer_state, window, window + size, window_slots.pop(window))
                emit(closed_window.snapshot, closed_window.drift_events)

    watermark = -(2**63)
    for raw in lines:
        event = triage.check(raw)
        if isinstance(event, DeadLetter):
            result.dead_letters.append(event.to_json())
            continue
        slices[window_start(event.event_time, slice_ms)].append(event)
        new_watermark = triage.lateness.max_seen - settings.source.max_out_of_orderness_ms - 1
        if new_watermark > watermark:
            watermark = new_watermark
            advance(watermark)
    advance(2**63 - 1)
    return result
