"""Kafka tools with kafka-python: create topics, replay events into a topic, tail a topic.

    python scripts/kafka_tools.py create-topics --bootstrap 127.0.0.1:9092 interactions predictions:2
    python scripts/kafka_tools.py replay --bootstrap 127.0.0.1:9092 --topic interactions --file events.jsonl --rate 2000
    python scripts/kafka_tools.py replay --bootstrap 127.0.0.1:9092 --topic interactions --generate --events 50000
    python scripts/kafka_tools.py tail --bootstrap 127.0.0.1:9092 --topic predictions --max 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

# Run as a plain script from anywhere: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka.errors import TopicAlreadyExistsError  # noqa: E402

from udfs.stream_generator import StreamSpec, generate_events  # noqa: E402


def create_topics(bootstrap: str, specs: Iterable[str]) -> None:
    """``name`` or ``name:partitions``; topics that already exist are left as they are."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        for spec in specs:
            name, _, partitions = spec.partition(":")
            try:
                admin.create_topics([NewTopic(name, int(partitions or 1), 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def _key(line: bytes) -> bytes | None:
    try:
        user = json.loads(line).get("user_id")
    except (ValueError, AttributeError):
        return None
    return str(user).encode() if user is not None else None


def replay_lines(bootstrap: str, topic: str, lines: Iterable[bytes | str], rate: float = 0.0,
                 total: int | None = None) -> int:
    """Produce each line as-is (malformed ones too), keyed by user_id when parseable, at ``rate``/s."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    started = last_report = time.monotonic()
    count = 0
    for count, line in enumerate(lines, 1):
        value = line.encode() if isinstance(line, str) else line
        producer.send(topic, value=value, key=_key(value))
        if rate > 0:
            ahead = count / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if time.monotonic() - last_report > 5:
            last_report = time.monotonic()
            of = f"/{total}" if total else ""
            print(f"  produced {count}{of} to {topic} ({count / (last_report - started):.0f}/s)", file=sys.stderr)
    producer.flush()
    producer.close()
    return count


def consume(bootstrap: str, topic: str, expected: int | None, timeout_s: float) -> list[tuple]:
    """(key, value, partition, offset, timestamp) from the beginning, until ``expected`` or the deadline.

    Reads by count, not by end offsets: the test broker under-reports its latest offsets.
    """
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    records: list[tuple] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and (expected is None or len(records) < expected):
            for r in consumer:
                records.append((r.key, r.value, r.partition, r.offset, r.timestamp))
                if expected is not None and len(records) >= expected:
                    break
    finally:
        consumer.close()
    return records


def _lines(args: argparse.Namespace) -> Iterator[str]:
    if args.generate:
        for event in generate_events(StreamSpec(n_events=args.events, seed=args.seed)):
            yield json.dumps(event)
    else:
        with open(args.file) as f:
            yield from (line.rstrip("\n") for line in f if line.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create-topics")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("topics", nargs="+", metavar="TOPIC[:PARTITIONS]")
    r = sub.add_parser("replay")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--topic", required=True)
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--file")
    source.add_argument("--generate", action="store_true")
    r.add_argument("--events", type=int, default=100_000)
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    t = sub.add_parser("tail")
    t.add_argument("--bootstrap", required=True)
    t.add_argument("--topic", required=True)
    t.add_argument("--max", type=int)
    t.add_argument("--timeout-s", type=float, default=10.0)
    args = p.parse_args(argv)
    if args.command == "create-topics":
        create_topics(args.bootstrap, args.topics)
        print(f"topics ready: {', '.join(args.topics)}")
    elif args.command == "replay":
        count = replay_lines(args.bootstrap, args.topic, _lines(args), args.rate,
                             args.events if args.generate else None)
        print(f"produced {count} records to {args.topic}")
    else:
        for _, value, *_ in consume(args.bootstrap, args.topic, args.max, args.timeout_s):
            print(value.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
