"""The record that carries a user shard's events of one event-time slice into the per-user stage.

Flink SQL groups the timely events of each (user shard, slice) into one record, so Python is
called once per batch. The events come as *parts*: one per file chunk (the chunk readers, see
udfs/features/chunks.py) or one per event (the stream front, numbered in arrival order). A part
starts with the chunk it came from, so that the per-user stage can put the parts in a fixed order
(split, then chunk) whatever order the front's records reached SQL in; within a part, events keep
their split's order. Control characters separate parts and events: JSON escapes them inside a string.

>>> from udfs.features.events import Event
>>> e1 = Event("e1", "u1", None, 1_000, {}, {}, None)
>>> e2 = e1._replace(event_id="e2")
>>> text = BLOB_SEPARATOR.join([encode_part(1, 0, [e2.to_compact()]), encode_part(0, 3, [e1.to_compact()])])
>>> [e.event_id for e in batch_events(text)]
['e1', 'e2']
"""

from __future__ import annotations

import zlib

from udfs.features.events import Event, window_start

EVENT_SEPARATOR = "\x1e"  # ASCII record separator: between the compact events of a part
BLOB_SEPARATOR = "\x1d"   # ASCII group separator: between the parts of a batch
HEADER_END = "\x1f"       # ASCII unit separator: ends a part's "split:chunk" header


def user_shard(user_id: str, shards: int) -> int:
    """The same shard in every process (Python's ``hash`` is salted per interpreter)."""
    return zlib.crc32(user_id.encode()) % shards


def encode_part(split: int, chunk: int, compact_events: list[str]) -> str:
    """The events one chunk of ``split`` holds for one (shard, slice), in the split's order."""
    return f"{split}:{chunk}{HEADER_END}" + EVENT_SEPARATOR.join(compact_events)


def batch_events(text: str) -> list[Event]:
    """The events of one batch record, parts ordered by (split, chunk)."""
    parts = []
    for part in text.split(BLOB_SEPARATOR):
        header, _, events = part.partition(HEADER_END)
        split, _, chunk = header.partition(":")
        parts.append(((int(split), int(chunk)), events))
    parts.sort(key=lambda p: p[0])
    return [Event.from_compact(event) for _, events in parts if events for event in events.split(EVENT_SEPARATOR)]


def by_shard_and_slice(events: list[Event], shards: int, slice_ms: int) -> dict[tuple[int, int], list[Event]]:
    """Events grouped by (user shard, slice start), each group in the given order."""
    groups: dict[tuple[int, int], list[Event]] = {}
    for event in events:
        key = (user_shard(event.user_id, shards), window_start(event.event_time, slice_ms))
        groups.setdefault(key, []).append(event)
    return groups
