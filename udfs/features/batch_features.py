"""Duplicate checks and per-user features for a batch of events of many users.

Within a batch, each user's events are taken in event-time order (ties in arrival order).
Batches hold one event-time slice, and slices arrive in time order, so every user's history is
built in event-time order whatever the batch boundaries: the job and library mode agree.

>>> from conf.settings import load_settings
>>> from udfs.features.events import Event
>>> featurizer = BatchFeaturizer.from_settings(load_settings())
>>> e = Event("e1", "u1", None, 2_000, {"amount": 5.0}, {}, 1)
>>> out = featurizer.featurize([e._replace(event_time=3_000), e, e._replace(event_id="e2", user_id="u2")], {})
>>> out.batch.event_ids, [d.reason for d in out.dead_letters]
(['e1', 'e2'], ['duplicate_event_id'])
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from udfs.features.dedup import DuplicateGuard
from udfs.features.events import DeadLetter, Event, duplicate_event
from udfs.features.feature_batch import FeatureBatch
from udfs.features.user_features import UserFeatureExtractor, UserState, UserStateFile

if TYPE_CHECKING:
    from conf.settings import Settings


@dataclass(frozen=True)
class FeaturizedBatch:
    batch: FeatureBatch
    dead_letters: list[DeadLetter]


class BatchFeaturizer:
    def __init__(self, extractor: UserFeatureExtractor, duplicates: DuplicateGuard,
                 initial: dict[str, UserState] | None = None) -> None:
        self.extractor = extractor
        self.duplicates = duplicates
        self.initial = initial or {}  # where a user not seen yet starts (features.initial_user_state)

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchFeaturizer:
        extractor = UserFeatureExtractor.from_settings(settings)
        path = settings.features.initial_user_state
        initial = UserStateFile.load(path, extractor.numeric, extractor.categorical).users if path else None
        return cls(extractor, DuplicateGuard.from_settings(settings), initial)

    @property
    def n_dense(self) -> int:
        return len(self.extractor.dense_names)

    def featurize(self, events: list[Event], states: dict[str, UserState]) -> FeaturizedBatch:
        """Features of ``events``; ``states`` holds the users' states and is updated (new users added)."""
        kept, dead_letters = [], []
        n_numeric = len(self.extractor.numeric)
        for event in sorted(events, key=lambda e: e.event_time):
            state = states.get(event.user_id)
            if state is None:
                known = self.initial.get(event.user_id)
                state = UserState.new(n_numeric) if known is None else copy.deepcopy(known)
                states[event.user_id] = state
            if self.duplicates.is_duplicate(state.recent_ids, event.event_id, event.event_time):
                dead_letters.append(duplicate_event(event))
            else:
                kept.append(event)
        dense, buckets = self.extractor.featurize_batch(kept, states)
        return FeaturizedBatch(FeatureBatch.from_events(kept, dense, buckets), dead_letters)
