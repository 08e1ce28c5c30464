"""The replay's generated stream: live-like by default (a second replay's events are new and newer), the
generator's fixed stream with ``--start``."""

from __future__ import annotations

import json

from scripts.kafka_tools import _generated_lines, generated_spec, start_ms
from udfs.features.events import parse_time
from udfs.sim.stream_generator import StreamSpec, generate_events

EVENTS, RATE = 2_000, 500.0


def replayed(now_ms: int) -> list[dict]:
    """What `replay --generate --events 2000 --rate 500` sends when started at ``now_ms``."""
    return [json.loads(line) for line in _generated_lines(generated_spec(EVENTS, 7, RATE, None, now_ms), live=True)]


def test_a_second_live_replay_sends_new_events_newer_than_the_first_ones() -> None:
    now = 1_800_000_000_000
    first = replayed(now)
    second = replayed(now + int(1000 * EVENTS / RATE))  # started as the first one's sends end
    first_times = [parse_time(e["event_time"]) for e in first]
    second_times = [parse_time(e["event_time"]) for e in second]
    assert min(first_times) >= now and max(first_times) <= now + 1000 * EVENTS / RATE, "event times keep pace"
    assert min(second_times) >= max(first_times), "a job that saw the first replay would find the second late"
    ids = [e["event_id"] for e in first + second]
    assert len(set(ids)) == 2 * EVENTS, "a job that saw the first replay would drop the second as duplicates"


def test_start_gives_the_generators_fixed_stream() -> None:
    fixed = generated_spec(300, 3, RATE, start_ms("2026-01-01T00:00:00Z"), now_ms=1_800_000_000_000)
    assert fixed == StreamSpec(n_events=300, seed=3)
    expected = [json.dumps(e, separators=(",", ":")) for e in generate_events(StreamSpec(n_events=300, seed=3))]
    assert list(_generated_lines(fixed, live=False)) == expected
    assert start_ms("1767225600000") == StreamSpec.start_ms
