"""Reads, validates and triages the chunks of input files: the file front, at ``job.parallelism``.

Keyed by reader (udfs/features/chunks.py): each reader owns the files ``s`` with ``s % readers ==
reader``, judges each file's lateness against that file's own newest event (Flink state, so a
restore judges on exactly), and hands on its timely events grouped by (user shard, slice), one
record per group and chunk, for Flink SQL to batch. After each chunk it emits a marker whose
``stamp`` is its watermark: the minimum over its files of their newest event less the
out-of-orderness bound. Flink SQL makes the watermark from the stamps, one reader per subtask,
so no timely event is ever behind it, whatever the parallelism.
"""

from __future__ import annotations

from typing import Iterator

from pyflink.common import Row, Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext

from conf.settings import Settings
from operators.tags import DEAD_LETTERS
from operators.triage_operator import TriageOperator
from udfs.features.chunks import Chunk, SplitProgress, read_lines, triage_chunk
from udfs.features.slice_batches import by_shard_and_slice, encode_part

PART_TYPE = Types.ROW_NAMED(["shard", "slice_start", "events", "stamp"],
                            [Types.INT(), Types.LONG(), Types.STRING(), Types.LONG()])
MARKER_SHARD = -1  # a record that only carries a reader's watermark
PADDED_CHUNK = Types.ROW([Types.LONG(), Types.STRING()])  # (chunk number, CHUNK_PADDING)
CHUNK_PADDING = " " * 40_000  # more than a network buffer (32 KB): jobs/pipeline.py says why


class ReadChunks(TriageOperator):
    STATE = "splits"

    def __init__(self, settings: Settings, chunks: list[Chunk], keys: list[int], finished: set[int]) -> None:
        super().__init__(settings)
        self.chunks = chunks
        self.readers = {key: reader for reader, key in enumerate(keys)}
        self.finished = finished  # empty files: read to their end before the first chunk

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.reader: int | None = None  # the one reader this subtask runs (the readers' keys place one per subtask)
        self.splits: list[int] = []

    def process_element(self, padded: Row, ctx: KeyedProcessFunction.Context) -> Iterator:
        """``padded``: (chunk number, padding)."""
        chunk = self.chunks[padded[0]]
        self._check_reader(self.readers[ctx.get_current_key()])
        progress = self.restored(lambda: SplitProgress(self.triage.lateness, set(self.finished)))
        before = self._stamp(progress)
        events, dead_letters = triage_chunk(self.triage, read_lines(chunk), chunk.split)
        if chunk.last:
            progress.finished.add(chunk.split)
        self.progress.update(progress)
        for letter in dead_letters:
            yield DEAD_LETTERS, self.dead_letters.count(letter)
        for (shard, start), group in by_shard_and_slice(events, self.shards, self.slice).items():
            yield Row(shard, start, encode_part(chunk.split, chunk.index, [e.to_compact() for e in group]), before)
        after = self._stamp(progress)
        yield Row(MARKER_SHARD, after, "", after)

    def _check_reader(self, reader: int) -> None:
        """A subtask must run one reader: its watermark is the minimum over that reader's files only."""
        if self.reader is None:
            self.reader = reader
            splits = {c.split for c in self.chunks} | self.finished
            self.splits = sorted(s for s in splits if s % len(self.readers) == reader)
        elif reader != self.reader:
            raise RuntimeError(f"readers {self.reader} and {reader} share a subtask: their keys do not match "
                               "Flink's key groups (udfs/features/chunks.py reader_keys)")

    def _stamp(self, progress: SplitProgress) -> int:
        return self.stamps.of(progress.watermark(self.splits))
