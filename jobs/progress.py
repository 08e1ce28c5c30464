"""The job's progress line: records done of the input's total, the rate, the time left, the Kafka lag.

A bounded input (files, the generator) has a known line count, so the line shows percent and an
ETA; a Kafka stream has no end, so it shows how far the job's consumer group trails the topics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def format_duration(seconds: float) -> str:
    """Short human durations for an ETA.

    >>> [format_duration(s) for s in (9.4, 110, 3725)]
    ['9s', '1m50s', '1h02m']
    """
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# How a window's snapshot line says what it is (json.dumps); a fast-mode slot update says "slot".
WINDOW_SNAPSHOT = b'"update": "window"'


def lines_written(folder: Path, containing: bytes | None = None) -> int:
    """Lines in committed and in-progress part files (only those ``containing`` a marker, one per line, if
    given: ``WINDOW_SNAPSHOT`` counts closed windows among the snapshots): for progress only, not for results."""
    if not folder.is_dir():
        return 0
    return sum(part.read_bytes().count(containing or b"\n") for part in folder.rglob("*") if part.is_file())


@dataclass
class ProgressLine:
    """Turns successive counts of records done into lines like
    ``48,454 / 120,000 events (40%), 650 events/s, ETA 1m50s``.

    The rate is the one since the previous line: a job's speed after start-up is what predicts the rest.

    >>> p = ProgressLine(total=120_000, started=0.0)
    >>> p.line(0, now=10.0)
    '0 / 120,000 events (0%), starting'
    >>> p.line(48_454, now=84.5)
    '48,454 / 120,000 events (40%), 650 events/s, ETA 1m50s'
    >>> ProgressLine(total=None, started=0.0).line(5_000, now=10.0, lag=1_200)
    '5,000 events, 500 events/s, consumer lag 1,200 records'
    """

    total: int | None
    started: float
    _last: tuple[float, int] = field(init=False)

    def __post_init__(self) -> None:
        self._last = (self.started, 0)

    def line(self, done: int, now: float, lag: int | None = None) -> str:
        last_time, last_done = self._last
        rate = (done - last_done) / max(now - last_time, 1e-9)
        self._last = (now, done)
        text = f"{done:,} / {self.total:,} events ({100 * done // max(self.total, 1)}%)" if self.total \
            else f"{done:,} events"
        if done == 0:
            return f"{text}, starting"
        text += f", {rate:,.0f} events/s"
        if self.total and rate > 0:
            text += f", ETA {format_duration(max(self.total - done, 0) / rate)}"
        if lag is not None:
            text += f", consumer lag {lag:,} records"
        return text
