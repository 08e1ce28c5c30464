"""Per-user features from keyed state: one state read and one write per event."""

from __future__ import annotations

from typing import Iterator

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from conf.settings import Settings
from operators.fault_injection import FailOnce
from udfs.events import Event
from udfs.user_features import FeatureRow, UserFeatureExtractor, UserState


class UserFeatures(KeyedProcessFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        self.extractor = UserFeatureExtractor.from_settings(self.settings)
        self.user = runtime_context.get_state(ValueStateDescriptor("user", Types.PICKLED_BYTE_ARRAY()))
        self.fault = FailOnce(self.settings, "user-features")

    def process_element(self, event: Event, ctx: KeyedProcessFunction.Context) -> Iterator[FeatureRow]:
        self.fault.tick()
        state = self.user.value() or UserState.new(len(self.settings.features.numeric))
        row = self.extractor.featurize(state, event)
        self.user.update(state)
        yield row
