"""Raw lines -> validated events; everything else goes to the dead-letter side output."""

from __future__ import annotations

from typing import Iterator

from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream.functions import ProcessFunction, RuntimeContext

from conf.settings import Settings
from operators.dead_letters import DeadLetterCounters
from operators.fault_injection import FailOnce
from operators.tags import DEAD_LETTERS
from udfs.events import DeadLetter, Event, EventValidator, LatenessGuard, late_event


class ParseEvents(ProcessFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        self.validator = EventValidator.from_settings(self.settings)
        self.lateness = LatenessGuard(self.settings.source.max_out_of_orderness_ms)
        self.fault = FailOnce(self.settings, "parse")
        self.dead_letters = DeadLetterCounters(runtime_context)

    def process_element(self, raw: str, ctx: ProcessFunction.Context) -> Iterator:
        self.fault.tick()
        result = self.validator.parse(raw)
        if isinstance(result, DeadLetter):
            yield DEAD_LETTERS, self.dead_letters.count(result)
        elif self.lateness.is_late(result.event_time):
            yield DEAD_LETTERS, self.dead_letters.count(late_event(raw, result, self.lateness.bound))
        else:
            yield result


class EventTimeAssigner(TimestampAssigner):
    def extract_timestamp(self, value: Event, record_timestamp: int) -> int:
        return value.event_time
