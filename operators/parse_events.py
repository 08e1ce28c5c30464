"""Raw lines -> validated events; everything else goes to the dead-letter side output."""

from __future__ import annotations

from typing import Iterator

from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream.functions import ProcessFunction, RuntimeContext

from conf.settings import Settings
from operators.tags import DEAD_LETTERS
from udfs.events import DeadLetter, Event, EventValidator, LatenessGuard, parse_time


class ParseEvents(ProcessFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        v, f = self.settings.validation, self.settings.features
        self.validator = EventValidator(
            numeric=f.numeric, categorical=f.categorical,
            min_event_time=parse_time(v.min_event_time), max_event_time=parse_time(v.max_event_time),
            max_record_bytes=v.max_record_bytes, max_id_length=v.max_id_length,
        )
        self.lateness = LatenessGuard(self.settings.source.max_out_of_orderness_ms)

    def process_element(self, raw: str, ctx: ProcessFunction.Context) -> Iterator:
        result = self.validator.parse(raw)
        if isinstance(result, DeadLetter):
            yield DEAD_LETTERS, result.to_json()
        elif self.lateness.is_late(result.event_time):
            detail = f"event_time {result.event_time} is older than the newest event minus source.max_out_of_orderness_ms"
            yield DEAD_LETTERS, DeadLetter("late_event", detail, raw).to_json()
        else:
            yield result


class EventTimeAssigner(TimestampAssigner):
    def extract_timestamp(self, value: Event, record_timestamp: int) -> int:
        return value.event_time
