"""The Kafka tools against a real Kafka-protocol broker (Tansu): topics, a replay of generated events
with malformed lines among them, an exact read-back, the CLI as users run it, and a broker that
leaves no process and no open port behind."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from jobs.kafka_client import consume
from scripts.broker import Broker, port_open
from scripts.kafka_tools import create_topics, replay_lines
from udfs.sim.stream_generator import StreamSpec, generate_events

REPO = Path(__file__).resolve().parents[2]
N_EVENTS = 20_000
MALFORMED = [b"not json at all", b'{"user_id": "u000001", "truncated": ', b"[1, 2, 3]", b'"just a string"',
             b"\xff\xfe not even utf-8", '{"user_id": "ü", "ok": false'.encode()]


def generated_lines(n_events: int, seed: int) -> list[bytes]:
    events = generate_events(StreamSpec(n_events=n_events, seed=seed))
    return [json.dumps(e, separators=(",", ":")).encode() for e in events]


def expected_key(line: bytes) -> bytes | None:
    try:
        return json.loads(line)["user_id"].encode()
    except (ValueError, KeyError, TypeError):
        return None


def test_replay_then_consume_returns_every_line_exactly_once_and_in_order() -> None:
    lines = generated_lines(N_EVENTS, seed=11)
    for i, bad in enumerate(MALFORMED):  # scattered through the stream
        lines.insert((i + 1) * len(lines) // (len(MALFORMED) + 1), bad)

    with Broker() as broker:
        create_topics(broker.bootstrap, ["events:3", "other"])
        create_topics(broker.bootstrap, ["events:3"])  # existing topics are fine
        assert replay_lines(broker.bootstrap, "events", lines) == len(lines)
        records = consume(broker.bootstrap, "events", len(lines), timeout_s=60)
        nothing_more = consume(broker.bootstrap, "events", len(lines) + 1, timeout_s=5)
        process = broker.process

    assert len(records) == len(lines), f"read back {len(records)} of {len(lines)} records"
    assert Counter(r.value for r in records) == Counter(lines)  # as-is, no duplicates, nothing lost
    assert len(nothing_more) == len(lines)
    assert all(r.key == expected_key(r.value) for r in records)
    assert {r.partition for r in records} == {0, 1, 2}
    sent_at = {line: i for i, line in enumerate(lines)}
    for partition in range(3):  # a partition keeps the producer's order
        order = [sent_at[r.value] for r in sorted(records, key=lambda r: r.offset) if r.partition == partition]
        assert order == sorted(order), f"partition {partition} out of order"

    assert process.poll() is not None, "broker process still running"
    assert not port_open(broker.port), f"port {broker.port} still open"


def run_cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "scripts/kafka_tools.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"kafka_tools {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_cli_replays_a_file_and_the_generator_and_tails_them(tmp_path: Path) -> None:
    file_lines = [*generated_lines(1_000, seed=5), b"not json"]
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(file_lines) + b"\n")

    with Broker() as broker:
        bootstrap = ["--bootstrap", broker.bootstrap]
        run_cli("create-topics", *bootstrap, "from-file:2", "generated")
        assert run_cli("replay", *bootstrap, "--topic", "from-file", "--file", str(events_file), "--rate", "5000") \
            .strip() == f"produced {len(file_lines)} records to from-file"
        assert run_cli("replay", *bootstrap, "--topic", "generated", "--generate", "--events", "300", "--seed", "3",
                       "--start", "2026-01-01T00:00:00Z") \
            .strip() == "produced 300 records to generated"
        tailed = run_cli("tail", *bootstrap, "--topic", "from-file", "--from-beginning", "--max", str(len(file_lines)),
                         "--timeout-s", "60").splitlines()
        generated = consume(broker.bootstrap, "generated", 300, timeout_s=60)

    assert sorted(tailed) == sorted(line.decode() for line in file_lines)
    assert [r.value for r in generated] == generated_lines(300, seed=3)
