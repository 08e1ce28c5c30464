"""Validates and triages a source read in one sequence (Kafka, files then Kafka): the stream front.

The whole stream is one split: keyed by one constant key, the operator judges each line's
lateness against the newest event so far, which is Flink state, so a restore judges on exactly
as if nothing happened (a guard held in memory forgot it, and a restore then let through lines
whose slices had closed). Each timely event leaves as a part of its (user shard, slice) stamped
with the watermark the stream allows after it, numbered in arrival order so that the per-user
stage keeps that order (udfs/features/slice_batches.py); Flink SQL batches the parts as it does
the file readers' (jobs/pipeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from pyflink.common import Row, Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from conf.settings import Settings
from operators.dead_letters import DeadLetterCounters
from operators.tags import DEAD_LETTERS
from udfs.features.events import DeadLetter, EventValidator, LatenessGuard, LineTriage
from udfs.features.slice_batches import encode_part, user_shard
from udfs.features.stamps import Stamps

STREAM_SPLIT = 0


@dataclass
class StreamProgress:
    """Flink state: the lateness guard's newest event time and the lines read so far."""

    lateness: LatenessGuard
    lines: int = 0


class TriageStream(KeyedProcessFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        self.triage = LineTriage.from_settings(self.settings)
        self.dead_letters = DeadLetterCounters(runtime_context.get_metrics_group())
        self.progress = runtime_context.get_state(ValueStateDescriptor("stream", Types.PICKLED_BYTE_ARRAY()))
        self.stamps = Stamps.from_validator(EventValidator.from_settings(self.settings))
        self.shards, self.slice = self.settings.batching.shards, self.settings.batching.slice_ms

    def process_element(self, line: str, ctx: KeyedProcessFunction.Context) -> Iterator:
        progress = self.progress.value() or StreamProgress(self.triage.lateness)
        self.triage.lateness = progress.lateness
        result = self.triage.check(line, STREAM_SPLIT)
        progress.lines += 1
        self.progress.update(progress)
        if isinstance(result, DeadLetter):
            yield DEAD_LETTERS, self.dead_letters.count(result)
            return
        # The part's own event is never behind its stamp: timely means no older than the newest less the bound.
        stamp = self.stamps.of(progress.lateness.progress(STREAM_SPLIT))
        yield Row(user_shard(result.user_id, self.shards), result.event_time - result.event_time % self.slice,
                  encode_part(STREAM_SPLIT, progress.lines, [result.to_compact()]), stamp)
