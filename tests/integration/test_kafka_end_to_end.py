"""Kafka in, Kafka out: a real Kafka-protocol broker, kafka-python producer/consumer, the job
on the MiniCluster with Flink's KafkaSource and KafkaSinks."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from jobs.kafka_client import consume
from scripts.broker import Broker
from scripts.kafka_tools import create_topics, replay_lines
from tests.integration.conftest import run_job
from udfs.sim.stream_generator import StreamSpec, generate_events

N_EVENTS = 20_000
MALFORMED = ["{broken json", '{"event_id": "m1", "user_id": "u", "event_time": "soon"}', '{"event_id": "m2"}']


@pytest.fixture(scope="module")
def kafka_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kafka")
    events = list(generate_events(StreamSpec(n_events=N_EVENTS, n_users=600, duration_s=2 * 3600.0, seed=31)))
    lines = [json.dumps(e) for e in events]
    for i, bad in enumerate(MALFORMED):
        lines.insert(1000 + 5000 * i, bad)
    with Broker() as broker:
        create_topics(broker.bootstrap, ["interactions", "predictions", "dead-letters", "drift-events"])
        assert replay_lines(broker.bootstrap, "interactions", lines) == len(lines)
        job = run_job(None, tmp / "out",
                "source.kind=kafka", "output.kind=kafka", "mlflow.enabled=false",
                f"kafka.bootstrap_servers={broker.bootstrap}",
                f'kafka.stopping_offsets={{"interactions:0": {len(lines)}}}')
        predictions = consume(broker.bootstrap, "predictions", N_EVENTS, timeout_s=120)
        dead = consume(broker.bootstrap, "dead-letters", len(MALFORMED), timeout_s=30)
    return events, [json.loads(v) for _, v, *_ in predictions], [json.loads(v) for _, v, *_ in dead], job.stdout


def test_every_event_predicted_exactly_once_through_kafka(kafka_run):
    events, predictions, _, _ = kafka_run
    counts = Counter(p["event_id"] for p in predictions)
    assert set(counts) == {e["event_id"] for e in events}
    assert max(counts.values()) == 1
    assert all(isinstance(p["model_version"], int) for p in predictions)
    assert max(p["model_version"] for p in predictions) >= 20


def test_malformed_messages_reach_the_dead_letter_topic_with_reasons(kafka_run):
    _, _, dead, _ = kafka_run
    assert sorted(d["reason"] for d in dead) == ["bad_event_time", "malformed_json", "missing_field"]


def test_features_are_inferred_from_the_first_records_of_the_topic(kafka_run):
    *_, stdout = kafka_run
    assert "reading up to 2000 records of Kafka interactions to infer the features" in stdout
    assert "features         numeric ['amount', 'dwell_seconds', 'price', 'discount_pct', 'pages_viewed', " \
           "'scroll_depth'], categorical ['device', 'country', 'is_returning'] (numeric and categorical inferred " \
           "from 1999 sampled events)" in stdout
