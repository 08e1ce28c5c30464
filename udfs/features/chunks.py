"""Input files read in chunks by parallel readers, each file a source *split* with its own lateness.

The client plans the chunks before the job starts (byte ranges of ``source.chunk_lines`` lines,
cut after a newline); a Flink source hands out their numbers and the reader that owns a file
reads, validates and triages each of its chunks in one Python call: no Java code touches a
line, and a line crosses into Python once, with thousands of others. Chunks are handed out in
rounds (the first chunk of every file, then the second, ...), so every file is under way from
the start and a reader's watermark, the minimum over its files, moves on.

File ``s`` belongs to reader ``s % readers``; each reader is one key of a keyed operator, and its
key is picked so that Flink places reader ``r`` on subtask ``r`` (:func:`reader_keys`): one
subtask's watermark is then the minimum over the files of exactly one reader.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> (folder / "a.jsonl").write_text("1\\n2\\n3\\n4\\n5")
9
>>> (folder / "b.jsonl").write_text("x\\r\\ny\\n")
5
>>> chunks = plan_chunks([str(folder / "a.jsonl"), str(folder / "b.jsonl")], lines_per_chunk=2)
>>> [(c.split, c.index, c.last) for c in chunks]
[(0, 0, False), (1, 0, True), (0, 1, False), (0, 2, True)]
>>> [read_lines(c) for c in chunks]
[['1', '2'], ['x', 'y'], ['3', '4'], ['5']]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Sequence

from udfs.features.events import DeadLetter, Event, LatenessGuard, LineTriage

MAX_PARALLELISM = 128  # the readers' max parallelism, fixed so that their key placement is known
ROW_KEY_HASH = 62  # PyFlink keys by a one-field Row: Flink's Row.of(k).hashCode() is 62 + k for an int k
READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class Chunk:
    split: int   # the file's number in the plan
    index: int   # the chunk's number within its file
    path: str
    start: int   # byte range [start, end)
    end: int
    last: bool   # the file's last chunk


def plan_chunks(paths: Sequence[str], lines_per_chunk: int) -> list[Chunk]:
    """The chunks of ``paths`` (file ``i`` is split ``i``), in rounds across the files."""
    per_file = [_file_chunks(split, path, lines_per_chunk) for split, path in enumerate(paths)]
    return [chunk for round_ in zip_longest(*per_file) for chunk in round_ if chunk is not None]


def _file_chunks(split: int, path: str, lines_per_chunk: int) -> list[Chunk]:
    cuts, lines, offset = [0], 0, 0
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            start = 0
            while (newline := block.find(b"\n", start)) >= 0:
                lines += 1
                start = newline + 1
                if lines % lines_per_chunk == 0:
                    cuts.append(offset + start)
            offset += len(block)
    if cuts[-1] < offset:
        cuts.append(offset)
    return [Chunk(split, i, path, a, b, last=i == len(cuts) - 2) for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]


def read_lines(chunk: Chunk) -> list[str]:
    """The chunk's lines, split and decoded as Flink's text line format does (``\\n``, ``\\r\\n`` or
    ``\\r`` end a line; bytes that are not UTF-8 become U+FFFD)."""
    with open(chunk.path, "rb") as f:
        f.seek(chunk.start)
        data = f.read(chunk.end - chunk.start)
    return data.decode("utf-8", "replace").splitlines()


def split_lines(lines: Sequence[str], lines_per_chunk: int) -> list[list[str]]:
    """In-memory lines cut as :func:`plan_chunks` cuts a file (library mode)."""
    return [list(lines[i:i + lines_per_chunk]) for i in range(0, len(lines), lines_per_chunk)]


def in_rounds(chunk_counts: Sequence[int]) -> list[tuple[int, int]]:
    """(split, chunk) in the order :func:`plan_chunks` hands chunks out.

    >>> in_rounds([3, 1])
    [(0, 0), (1, 0), (0, 1), (0, 2)]
    """
    return [(split, index) for index in range(max(chunk_counts, default=0))
            for split, count in enumerate(chunk_counts) if index < count]


def reader_keys(readers: int, max_parallelism: int = MAX_PARALLELISM) -> list[int]:
    """For each reader ``r``, the smallest integer key that Flink's key groups place on subtask ``r``
    (``KeyGroupRangeAssignment``: the key's hash code, murmur-mixed, picks a key group; PyFlink's
    ``key_by`` keys by a one-field Row of the key).

    >>> reader_keys(1), reader_keys(2), reader_keys(4)
    ([0], [0, 2], [4, 0, 8, 2])
    """
    keys: dict[int, int] = {}
    key = 0
    while len(keys) < readers:
        subtask = _murmur_hash(ROW_KEY_HASH + key) % max_parallelism * readers // max_parallelism
        keys.setdefault(subtask, key)
        key += 1
    return [keys[r] for r in range(readers)]


def _murmur_hash(code: int) -> int:
    """Flink's ``MathUtils.murmurHash`` of a 32-bit int."""
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    code = rotl((code & mask) * 0xCC9E2D51 & mask, 15)
    code = rotl(code * 0x1B873593 & mask, 13)
    code = ((code * 5 + 0xE6546B64) & mask) ^ 4
    code ^= code >> 16
    code = code * 0x85EBCA6B & mask
    code ^= code >> 13
    code = code * 0xC2B2AE35 & mask
    code ^= code >> 16
    signed = code - (1 << 32) if code >= 1 << 31 else code
    return abs(signed) if signed != -(1 << 31) else 0


@dataclass
class SplitProgress:
    """How far each split of one reader (or, in library mode, of the whole input) has been read:
    the lateness guard's newest event times, and the splits read to their end. Flink state."""

    lateness: LatenessGuard
    finished: set[int] = field(default_factory=set)

    def watermark(self, splits: Sequence[int]) -> int | None:
        """The watermark these splits allow (None: none yet; every split must have started);
        a split read to its end no longer holds it back."""
        open_splits = [s for s in splits if s not in self.finished]
        progress = [self.lateness.progress(s) for s in open_splits]
        if any(p is None for p in progress):
            return None
        return min(progress, default=2**63 - 1)


def triage_chunk(triage: LineTriage, lines: Sequence[str], split: int) -> tuple[list[Event], list[DeadLetter]]:
    """The chunk's timely valid events, in order, and its dead letters."""
    events, dead_letters = [], []
    for line in lines:
        result = triage.check(line, split)
        (dead_letters if isinstance(result, DeadLetter) else events).append(result)
    return events, dead_letters
