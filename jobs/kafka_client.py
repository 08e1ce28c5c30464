"""The plain Kafka client of the job's client side: records of a topic, and the consumer group's lag.

Flink reads and writes Kafka through its connectors (``jobs/kafka_io.py``); this is what the
client needs around the job: a sample of the input topics before it starts (to infer the
features) and how far the job trails them while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import NamedTuple

from kafka import KafkaAdminClient, KafkaConsumer

from conf.settings import KafkaSettings

KAFKA_TIMEOUT_MS = 3000


class Record(NamedTuple):
    key: bytes | None
    value: bytes
    partition: int
    offset: int
    timestamp: int


def records(bootstrap: str, topic: str, timeout_s: float | None, from_beginning: bool = True) -> Iterator[Record]:
    """Yields the topic's records as they arrive until ``timeout_s`` passed (None: forever).

    No consumer group: every partition is read, nothing is committed.
    """
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest" if from_beginning else "latest")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while deadline is None or time.monotonic() < deadline:
            wait_ms = 500 if deadline is None else max(1, min(500, int((deadline - time.monotonic()) * 1000)))
            for batch in consumer.poll(timeout_ms=wait_ms).values():
                for r in batch:
                    yield Record(r.key, r.value, r.partition, r.offset, r.timestamp)
    finally:
        consumer.close()


def consume(bootstrap: str, topic: str, expected: int | None, timeout_s: float) -> list[Record]:
    """Records from the beginning until ``expected`` arrived or ``timeout_s`` passed (None: read till then)."""
    out: list[Record] = []
    if expected == 0:
        return out
    with contextlib.closing(records(bootstrap, topic, timeout_s)) as stream:  # closes the consumer on break
        for record in stream:
            out.append(record)
            if len(out) == expected:
                break
    return out


def consumer_lag(kafka: KafkaSettings) -> int | None:
    """Records in the input topics past the job's committed offsets (committed on checkpoints);
    None when the broker does not answer or the group has committed nothing yet."""
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
