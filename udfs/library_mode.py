"""The job's learning loop without Flink: same validation, features, windows, drift and scoring.

It replays the job's event-time semantics in one process (watermark = newest event time minus
the allowed out-of-orderness), so with parallelism 1 it produces the same predictions and
snapshots as the Flink job. Used as the "why pay for Flink?" baseline and as a cross-check.

>>> from conf.settings import load_settings
>>> from udfs.stream_generator import StreamSpec, generate_events
>>> import json
>>> lines = [json.dumps(e) for e in generate_events(StreamSpec(n_events=3000, n_users=100, duration_s=1800))]
>>> result = run_library(load_settings(), lines)
>>> len(result.predictions), len(result.snapshots)
(3000, 6)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from conf.settings import Settings
from udfs.dedup import DuplicateGuard
from udfs.events import DeadLetter, EventValidator, LatenessGuard, duplicate_event, late_event, window_start
from udfs.scoring import SnapshotIndex, prediction_json, score
from udfs.user_features import FeatureRow, UserFeatureExtractor, UserState
from udfs.warm_start import warm_snapshot
from udfs.window_trainer import WindowTrainer


@dataclass
class LibraryResult:
    predictions: list[str] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)


def run_library(settings: Settings, lines: Iterable[str]) -> LibraryResult:
    validator = EventValidator.from_settings(settings)
    lateness = LatenessGuard(settings.source.max_out_of_orderness_ms)
    extractor = UserFeatureExtractor.from_settings(settings)
    duplicates = DuplicateGuard.from_settings(settings)
    trainer = WindowTrainer(settings, extractor.dense_names)
    trainer_state = trainer.initial_state()
    size = settings.window.size_ms
    users: dict[str, UserState] = {}
    open_windows: dict[int, list[FeatureRow]] = defaultdict(list)
    waiting: dict[int, list[FeatureRow]] = defaultdict(list)
    index = SnapshotIndex(initial=warm_snapshot(settings))
    result = LibraryResult()

    def advance(watermark: int) -> None:
        """What the job's timers do when the watermark moves: close windows, release waiting rows."""
        due = sorted(set(open_windows) | set(waiting))
        for start in due:
            if start in waiting and start - 1 <= watermark:
                for row in waiting.pop(start):
                    snapshot = index.serving_for(start)
                    result.predictions.append(prediction_json(row, score(row, snapshot, index.model(snapshot)),
                                                              snapshot["version"]))
            if start in open_windows and start + size - 1 <= watermark:
                closed = trainer.close_window(trainer_state, start, start + size, open_windows.pop(start))
                index.add(closed.snapshot)
                result.snapshots.append(closed.snapshot)
                result.drift_events.extend(closed.drift_events)

    watermark = -(2**63)
    for raw in lines:
        event = validator.parse(raw)
        if isinstance(event, DeadLetter):
            result.dead_letters.append(event.to_json())
            continue
        if lateness.is_late(event.event_time):
            result.dead_letters.append(late_event(raw, event, lateness.bound).to_json())
            continue
        state = users.setdefault(event.user_id, UserState.new(len(settings.features.numeric)))
        if duplicates.is_duplicate(state.recent_ids, event.event_id, event.event_time):
            result.dead_letters.append(duplicate_event(event).to_json())
            continue
        row = extractor.featurize(state, event)
        start = window_start(row.event_time, size)
        open_windows[start].append(row)
        waiting[start].append(row)
        new_watermark = lateness.max_seen - settings.source.max_out_of_orderness_ms - 1
        if new_watermark > watermark:
            watermark = new_watermark
            advance(watermark)
    advance(2**63 - 1)
    return result

