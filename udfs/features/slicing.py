"""How long an event-time slice is when ``batching.slice_ms`` is ``auto``.

A batch holds the events of one user shard and one slice, so it holds about
density x slice / shards events, where density is the stream's events per second of *event
time*. A live stream's density is its arrival rate, and a short slice keeps latency low. A
replay of history packs hours of event time into minutes: with one-second slices each batch
would hold a handful of events and the job would pay a Python crossing per event again. So a
replay gets the longest slice whose batches stay near ``target_batch_events``, at most one window. Slices tile windows: a
slice that straddled two windows would deliver rows of a window after it closed.

>>> hours = 3 * 3_600_000
>>> slice_for_density(events=300_000, span_ms=hours, shards=16, window_ms=300_000, target_batch_events=2_000)
300000
>>> slice_for_density(events=3_000_000, span_ms=hours, shards=16, window_ms=300_000, target_batch_events=2_000)
60000
>>> slice_for_density(events=10, span_ms=0, shards=16, window_ms=300_000, target_batch_events=2_000)
300000
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from udfs.features.events import loads, parse_time

if TYPE_CHECKING:
    from conf.settings import Settings

AUTO = "auto"

LIVE_SLICE_MS = 1_000  # Kafka: scored about a second (plus the out-of-orderness) after arrival
SLICE_STEPS_MS = (1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
                  1_800_000, 3_600_000)
SAMPLE_LINES = 2_000


def slice_for_density(events: int, span_ms: int, shards: int, window_ms: int, target_batch_events: int) -> int:
    """The longest round slice that divides the window (one of ``SLICE_STEPS_MS``, or the
    window itself) and whose shard batches hold at most about ``target_batch_events`` events;
    a stream without a time span (one instant, or nothing) gets the longest."""
    fitting = sorted({step for step in SLICE_STEPS_MS if window_ms % step == 0 and step <= window_ms} | {window_ms})
    if events <= 0 or span_ms <= 0:
        return fitting[-1]
    wanted = target_batch_events * shards * span_ms / events
    return max([step for step in fitting if step <= wanted], default=fitting[0])


def batched_by(t: int, slice_ms: int) -> int:
    """The watermark by which every event before ``t`` has been batched: the end of the slice that
    holds ``t - 1``, less one. Flink emits a slice's batches before the watermark that passes the
    slice's end, so an operator downstream has them all once its watermark reaches this.

    >>> batched_by(30_000, slice_ms=300_000), batched_by(300_000, slice_ms=300_000), batched_by(30_000, slice_ms=1_000)
    (299999, 299999, 29999)
    """
    return -(-t // slice_ms) * slice_ms - 1


def with_slice(settings: Settings, events: int, sample: Sequence[str]) -> Settings:
    """``settings`` with a number for ``batching.slice_ms``: the configured one, or the one
    ``auto`` picks for a replay of ``events`` lines of which ``sample`` is spread evenly."""
    b = settings.batching
    if b.slice_ms != AUTO:
        return settings
    return with_slice_ms(settings, slice_for_density(events, event_time_span(sample), b.shards,
                                                     settings.window.size_ms, b.target_batch_events))


def with_slice_ms(settings: Settings, slice_ms: int) -> Settings:
    return settings.model_copy(update={"batching": settings.batching.model_copy(update={"slice_ms": slice_ms})})


def event_time_span(lines: Sequence[str]) -> int:
    """Milliseconds between the earliest and latest ``event_time`` among ``lines`` (lines
    without a usable one are ignored here: the triage dead-letters them)."""
    times = []
    for line in lines:
        try:
            times.append(parse_time(loads(line)["event_time"]))
        except (ValueError, TypeError, KeyError, OverflowError):
            continue
    return max(times) - min(times) if times else 0


def spread_sample(lines: Sequence[str], size: int = SAMPLE_LINES) -> Sequence[str]:
    """About ``size`` lines spread evenly over ``lines`` (the first and the last included)."""
    step = max(len(lines) // size, 1)
    return [*lines[::step], *lines[-1:]]
