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

from pyflink.common import Row
from pyflink.datastream.functions import KeyedProcessFunction

from operators.tags import DEAD_LETTERS
from operators.triage_operator import TriageOperator
from udfs.features.events import DeadLetter, LatenessGuard, window_start
from udfs.features.slice_batches import encode_part, user_shard

STREAM_SPLIT = 0


@dataclass
class StreamProgress:
    """Flink state: the lateness guard's newest event time and the lines read so far."""

    lateness: LatenessGuard
    lines: int = 0


class TriageStream(TriageOperator):
    STATE = "stream"

    def process_element(self, line: str, ctx: KeyedProcessFunction.Context) -> Iterator:
        progress = self.restored(lambda: StreamProgress(self.triage.lateness))
        result = self.triage.check(line, STREAM_SPLIT)
        progress.lines += 1
        self.progress.update(progress)
        if isinstance(result, DeadLetter):
            yield DEAD_LETTERS, self.dead_letters.count(result)
            return
        # The part's own event is never behind its stamp: timely means no older than the newest less the bound.
        stamp = self.stamps.of(progress.lateness.progress(STREAM_SPLIT))
        yield Row(user_shard(result.user_id, self.shards), window_start(result.event_time, self.slice),
                  encode_part(STREAM_SPLIT, progress.lines, [result.to_compact()]), stamp)
