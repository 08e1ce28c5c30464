"""Per-user features from keyed state: one state read and one write per event.

A duplicate event id (per user, see udfs.dedup) goes to the dead letters instead.
"""

from __future__ import annotations

from typing import Iterator

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from conf.settings import Settings
from operators.dead_letters import DeadLetterCounters
from operators.fault_injection import FailOnce
from operators.tags import DEAD_LETTERS
from udfs.dedup import DuplicateGuard
from udfs.events import Event, duplicate_event
from udfs.user_features import FeatureRow, UserFeatureExtractor, UserState


class UserFeatures(KeyedProcessFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        self.extractor = UserFeatureExtractor.from_settings(self.settings)
        self.duplicates = DuplicateGuard.from_settings(self.settings)
        self.dead_letters = DeadLetterCounters(runtime_context)
        self.user = runtime_context.get_state(ValueStateDescriptor("user", Types.PICKLED_BYTE_ARRAY()))
        self.fault = FailOnce(self.settings, "user-features")

    def process_element(self, event: Event, ctx: KeyedProcessFunction.Context) -> Iterator[FeatureRow]:
        self.fault.tick()
        state = self.user.value() or UserState.new(len(self.settings.features.numeric))
        if self.duplicates.is_duplicate(state.recent_ids, event.event_id, event.event_time):
            yield DEAD_LETTERS, self.dead_letters.count(duplicate_event(event))
            return
        row = self.extractor.featurize(state, event)
        self.user.update(state)
        yield row
