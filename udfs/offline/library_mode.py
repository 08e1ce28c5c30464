"""The job's learning loop without Flink: same triage, batches, features, windows, drift and scoring.

It replays the job's event-time semantics in one process: each input (a file's lines) is a
source split, read in chunks in the job's order (udfs/features/chunks.py) and triaged in its own
order; the watermark is the minimum over the splits of their newest timely event time less the
allowed out-of-orderness. Events are batched per event-time slice once the watermark passes it,
featurised per user in event-time order (ties in split, then line order), and slots and windows
close and rows are scored as the watermark moves. So it produces the same predictions and
snapshots as the Flink job. Used as the "why pay for Flink?" baseline and as a cross-check.

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
from udfs.features.chunks import SplitProgress, in_rounds, split_lines, triage_chunk
from udfs.features.events import Event, LineTriage, window_start
from udfs.features.feature_batch import FeatureBatch
from udfs.features.schema import AUTO, infer_schema
from udfs.features.slicing import spread_sample, with_slice
from udfs.features.user_features import UserState
from udfs.learning.row_sample import slot_rows
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


def run_library(settings: Settings, *splits: Sequence[str]) -> LibraryResult:
    """The job over ``splits``, each the lines of one input file, in order."""
    lines = [line for split in splits for line in split]
    f = settings.features
    if AUTO in (f.numeric, f.categorical):  # as the job's client does, from a sample of the input
        settings = infer_schema(spread_sample(lines, f.infer_sample), f.numeric, f.categorical,
                                settings.validation.max_record_bytes).apply(settings)
    settings = with_slice(settings, len(lines), spread_sample(lines))
    triage = LineTriage.from_settings(settings)
    progress = SplitProgress(triage.lateness)
    featurizer = BatchFeaturizer.from_settings(settings)
    trainer = WindowTrainer(settings, featurizer.extractor.dense_names)
    trainer_state = trainer.initial_state()
    size, slot, slice_ms = settings.window.size_ms, settings.window.slot_ms, settings.batching.slice_ms
    users: dict[str, UserState] = {}
    slices: dict[int, list[tuple[int, int, Event]]] = defaultdict(list)  # (split, chunk, event) by slice start
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
            parts = sorted(slices.pop(start), key=lambda part: part[:2])  # the job's order of parts
            featurized = featurizer.featurize([event for _, _, event in parts], users)
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
                rows = slot_rows(open_slots.pop(start), featurizer.n_dense, settings.window.training_rows_per_slot)
                closed = trainer.close_slot(trainer_state, start, rows)
                window_slots[window].append(closed.scored)
                result.slot_costs.append(closed.cost)
                result.drift_events.extend(closed.drift_events)
                if closed.snapshot is not None:
                    emit(closed.snapshot, [])
            if trainer.ends_window(start + slot) and window in window_slots:
                closed_window = trainer.close_window(trainer_state, window, window + size, window_slots.pop(window))
                emit(closed_window.snapshot, closed_window.drift_events)

    chunks = [split_lines(split, settings.source.chunk_lines) for split in splits]
    progress.finished.update(s for s, split in enumerate(chunks) if not split)
    watermark = -(2**63)
    for split, number in in_rounds([len(c) for c in chunks]):
        events, dead_letters = triage_chunk(triage, chunks[split][number], split)
        result.dead_letters.extend(letter.to_json() for letter in dead_letters)
        for event in events:
            slices[window_start(event.event_time, slice_ms)].append((split, number, event))
        if number == len(chunks[split]) - 1:
            progress.finished.add(split)
        new_watermark = progress.watermark(range(len(splits)))
        if new_watermark is not None and new_watermark > watermark:
            watermark = new_watermark
            advance(watermark)
    advance(2**63 - 1)
    return result
