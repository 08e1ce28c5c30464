"""``source.kind: hybrid``: the history file, then Kafka from the file's last event time, in one job
(Flink's HybridSource), against the Kafka-protocol broker."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from scripts.broker import Broker
from scripts.kafka_tools import create_topics, replay_lines
from tests.integration.conftest import outputs, run_job
from udfs.sim.stream_generator import StreamSpec, generate_events

N_FILE, M_KAFKA = 6_000, 3_000


def test_history_file_then_kafka_gives_one_prediction_per_event_in_one_job(tmp_path: Path) -> None:
    events = list(generate_events(StreamSpec(n_events=N_FILE + M_KAFKA, n_users=300, duration_s=3 * 3600.0, seed=37)))
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events[:N_FILE]))
    live = [json.dumps(e) for e in events[N_FILE:]]
    out = tmp_path / "out"
    with Broker() as broker:
        create_topics(broker.bootstrap, ["interactions"])
        assert replay_lines(broker.bootstrap, "interactions", live) == M_KAFKA
        proc = run_job(tmp_path / "history.jsonl", out, "source.kind=hybrid", "mlflow.enabled=false",
                       f"kafka.bootstrap_servers={broker.bootstrap}",
                       f'kafka.stopping_offsets={{"interactions:0": {M_KAFKA}}}')
    assert "hybrid source    the files, then Kafka interactions from record time" in proc.stdout
    counts = Counter(p["event_id"] for p in outputs(out, "predictions"))
    assert set(counts) == {e["event_id"] for e in events} and max(counts.values()) == 1
    assert sum(counts.values()) == N_FILE + M_KAFKA
    summary = json.loads((out / "summary.json").read_text())
    assert summary["predictions"] == N_FILE + M_KAFKA and summary["dead_letters"] == 0
