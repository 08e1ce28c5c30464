"""What both fronts' triage operators hold: the line triage, its dead-letter counters, the lateness
progress in Flink state (so that a restore judges lateness exactly as before the failure), and the
stamps and batching keys of the parts they emit."""

from __future__ import annotations

from typing import Any, Callable

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from conf.settings import Settings
from operators.dead_letters import DeadLetterCounters
from udfs.features.events import EventValidator, LineTriage
from udfs.features.stamps import Stamps


class TriageOperator(KeyedProcessFunction):
    """Base of ReadChunks (files) and TriageStream (Kafka); ``STATE`` names the progress state."""

    STATE = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        self.triage = LineTriage.from_settings(self.settings)
        self.dead_letters = DeadLetterCounters(runtime_context.get_metrics_group())
        self.progress = runtime_context.get_state(ValueStateDescriptor(self.STATE, Types.PICKLED_BYTE_ARRAY()))
        self.stamps = Stamps.from_validator(EventValidator.from_settings(self.settings))
        self.shards, self.slice = self.settings.batching.shards, self.settings.batching.slice_ms

    def restored(self, fresh: Callable[[], Any]) -> Any:
        """The stored progress (else a ``fresh()`` one), its lateness guard now the triage's."""
        progress = self.progress.value() or fresh()
        self.triage.lateness = progress.lateness
        return progress
