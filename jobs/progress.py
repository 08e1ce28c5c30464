"""The job's progress line: records done of the input's total, the rate, the time left, the Kafka lag.

A bounded input (files, the generator) has a known line count, so the line shows percent and an
ETA; a Kafka stream has no end, so it shows how far the job's consumer group trails the topics.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from conf.settings import KafkaSettings

KAFKA_TIMEOUT_MS = 3000


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


def lines_written(folder: Path) -> int:
    """Lines in committed and in-progress part files: for progress only, not for results."""
    if not folder.is_dir():
        return 0
    return sum(part.read_bytes().count(b"\n") for part in folder.rglob("*") if part.is_file())


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


def consumer_lag(kafka: KafkaSettings) -> int | None:
    """Records in the input topics past the job's committed offsets (committed on checkpoints);
    None when the broker does not answer or the group has committed nothing yet."""
    from kafka import KafkaAdminClient, KafkaConsumer  # only Kafka runs pay for the client

    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # an unreachable broker is a None here, not a log storm
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=KAFKA_TIMEOUT_MS)
        consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=KAFKA_TIMEOUT_MS)
        try:
            committed = {tp: meta.offset for tp, meta in admin.list_consumer_group_offsets(kafka.group_id).items()
                         if tp.topic in kafka.topics}
            if not committed:
                return None
            ends = consumer.end_offsets(list(committed))
            return sum(max(ends[tp] - offset, 0) for tp, offset in committed.items())
        finally:
            consumer.close()
            admin.close()
    return None
