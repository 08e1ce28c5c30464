"""Kafka tools (kafka-python): create topics, replay events into a topic, read a topic back.

    python scripts/kafka_tools.py create-topics --bootstrap 127.0.0.1:9092 interactions predictions:2
    python scripts/kafka_tools.py replay --bootstrap 127.0.0.1:9092 --topic interactions --file events.jsonl --rate 2000
    python scripts/kafka_tools.py replay --bootstrap 127.0.0.1:9092 --topic interactions --generate --events 50000
    python scripts/kafka_tools.py replay ... --generate --start 2026-01-01T00:00:00Z   # the fixed, reproducible stream
    python scripts/kafka_tools.py tail --bootstrap 127.0.0.1:9092 --topic predictions --from-beginning --max 10

Reads never trust a topic's end offset: the test broker (Tansu) under-reports ListOffsets(LATEST),
so ``consume`` reads from the beginning until the expected count arrived or a deadline passed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from jobs.kafka_client import records
from scripts.broker import PROGRESS_EVERY_S
from udfs.features.events import parse_time
from udfs.sim.stream_generator import StreamSpec, generate_events


def create_topics(bootstrap: str, specs: Iterable[str]) -> None:
    """Each spec is ``name`` or ``name:partitions``; topics that already exist are left as they are."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        for spec in specs:
            name, _, partitions = spec.partition(":")
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, int(partitions or 1), 1)])
    finally:
        admin.close()


def _key(value: bytes, key_field: str) -> bytes | None:
    """The event's ``key_field`` when the value is a JSON object that has one, else None."""
    try:
        key = json.loads(value).get(key_field)
    except (ValueError, AttributeError):  # not JSON, or JSON but not an object
        return None
    return None if key is None else str(key).encode()


def replay_lines(bootstrap: str, topic: str, lines: Iterable[bytes | str], rate: float = 0.0,
                 key_field: str = "user_id", total: int | None = None) -> int:
    """Produces each line as-is (malformed ones too) at ``rate`` lines/s (0: as fast as possible).

    Progress goes to stderr every 10% of ``total`` (default: ``len(lines)`` when it has one) or
    every few seconds. Returns the number produced; raises if the broker rejected any of them.
    """
    if total is None and isinstance(lines, Sized):
        total = len(lines)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    failures: list[BaseException] = []
    started = last_report = time.monotonic()
    next_mark = (total or 0) / 10
    count = 0
    try:
        for count, line in enumerate(lines, 1):
            value = line.encode() if isinstance(line, str) else line
            producer.send(topic, value=value, key=_key(value, key_field)).add_errback(failures.append)
            now = time.monotonic()
            if rate > 0 and count / rate > now - started:
                time.sleep(count / rate - (now - started))
            since_report = now - last_report
            if since_report >= PROGRESS_EVERY_S or (total and count >= next_mark and since_report >= 1):
                of = f"/{total} ({100 * count / total:.0f}%)" if total else ""
                speed = count / max(now - started, 1e-9)
                print(f"  {count}{of} to {topic}, {speed:.0f}/s", file=sys.stderr, flush=True)
                last_report, next_mark = now, count + (total or 0) / 10
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} of {count} records to {topic} failed, first: {failures[0]!r}")
    return count


def _file_lines(path: Path) -> Iterator[bytes]:
    """The file's lines as raw bytes without their line ending; empty lines are skipped."""
    with path.open("rb") as f:
        for line in f:
            if line := line.rstrip(b"\r\n"):
                yield line


def generated_spec(events: int, seed: int, rate: float, start: int | None, now_ms: int) -> StreamSpec:
    """``start`` given: the generator's fixed stream from there (3 h of event time), the same every time.

    Else a live-like stream from ``now_ms``: at a ``rate``, its event times keep pace with the sends
    (``events / rate`` seconds), as a live producer's would, so that the next replay's events are all
    newer than this one's and a job that continues from committed offsets does not find them late.
    """
    if start is not None:
        return StreamSpec(n_events=events, seed=seed, start_ms=start)
    duration_s = events / rate if rate > 0 else StreamSpec.duration_s
    return StreamSpec(n_events=events, seed=seed, start_ms=now_ms, duration_s=duration_s)


def _generated_lines(spec: StreamSpec, live: bool) -> Iterator[str]:
    """``live``: event ids carry the replay's start, so that a second replay's events are new events to a
    job that saw the first (not ``duplicate_event_id``); else the generator's own, reproducible ids."""
    for event in generate_events(spec):
        if live:
            event["event_id"] = f"{event['event_id']}-{spec.start_ms}"
        yield json.dumps(event, separators=(",", ":"))


def start_ms(value: str) -> int:
    """``--start``: epoch milliseconds or an ISO-8601 time (naive means UTC)."""
    return int(value) if value.isdigit() else parse_time(value)


def main(argv: list[str] | None = None) -> int:
    defaults = StreamSpec()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create-topics", help="idempotent")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("topics", nargs="+", metavar="TOPIC[:PARTITIONS]")
    r = sub.add_parser("replay", help="produce JSONL lines as-is (key: the JSON's user_id)")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--topic", required=True)
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="JSONL file")
    source.add_argument("--generate", action="store_true", help="udfs.sim.stream_generator's stream")
    r.add_argument("--events", type=int, default=defaults.n_events, help="with --generate (default: %(default)s)")
    r.add_argument("--seed", type=int, default=defaults.seed, help="with --generate (default: %(default)s)")
    r.add_argument("--start", type=start_ms, metavar="ISO_OR_EPOCH_MS",
                   help="with --generate: the generator's fixed stream from this event time (the same ids and times "
                        "every time), e.g. 2026-01-01T00:00:00Z; default: live-like, from now, at the pace of "
                        "--rate, with ids of this replay's own")
    r.add_argument("--rate", type=float, default=0.0, help="events per second (default 0: as fast as possible)")
    r.add_argument("--key-field", default="user_id", help="JSON field used as the record key (default: %(default)s)")
    t = sub.add_parser("tail", help="print values")
    t.add_argument("--bootstrap", required=True)
    t.add_argument("--topic", required=True)
    t.add_argument("--from-beginning", action="store_true",
                   help="else from the end (which the test broker under-reports: older records may show up)")
    t.add_argument("--max", type=int, help="stop after this many records")
    t.add_argument("--timeout-s", type=float, help="stop after this many seconds (default: never)")
    args = p.parse_args(argv)

    try:
        if args.command == "create-topics":
            create_topics(args.bootstrap, args.topics)
            print(f"topics ready: {' '.join(args.topics)}")
        elif args.command == "replay":
            if args.generate:
                spec = generated_spec(args.events, args.seed, args.rate, args.start, time.time_ns() // 1_000_000)
                lines = _generated_lines(spec, live=args.start is None)
            else:
                lines = _file_lines(args.file)
            count = replay_lines(args.bootstrap, args.topic, lines, args.rate, args.key_field,
                                 total=args.events if args.generate else None)
            print(f"produced {count} records to {args.topic}")
        else:
            for shown, record in enumerate(records(args.bootstrap, args.topic, args.timeout_s, args.from_beginning), 1):
                print(record.value.decode(errors="replace"), flush=True)
                if shown == args.max:
                    break
    except KeyboardInterrupt:  # Ctrl-C: the usual way to end a tail, or a replay early
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
