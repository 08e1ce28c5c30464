"""Submission to a real standalone Flink cluster with the project's scripts, between Kafka
topics of a real broker and with a real MLflow server; cancelled and torn down cleanly."""

from __future__ import annotations

import json
import time
from collections import Counter

from mlflow.tracking import MlflowClient

from scripts.broker import Broker, wait_until
from scripts.flink_cluster import cluster_pids, cancel, job_status, start_cluster, stop_cluster, submit
from scripts.kafka_tools import consume, create_topics, replay_lines
from udfs.events import parse_time
from udfs.stream_generator import StreamSpec, generate_events

N_EVENTS = 5_000
WINDOW_MS = 300_000


def test_submit_run_cancel_and_stop_on_a_standalone_cluster(tmp_path, mlflow_server):
    events = list(generate_events(StreamSpec(n_events=N_EVENTS, n_users=300, duration_s=3600.0, seed=41)))
    last = max(parse_time(e["event_time"]) for e in events)
    # An unbounded stream only scores an event once the watermark passes its window's start:
    # one later event moves it past every real one.
    heartbeat = {"event_id": "heartbeat", "user_id": "hb", "event_time": last + 2 * WINDOW_MS, "features": {}}
    try:
        start_cluster(slots=4)
        with Broker() as broker:
            create_topics(broker.bootstrap, ["interactions", "predictions", "dead-letters", "drift-events"])
            replay_lines(broker.bootstrap, "interactions", [json.dumps(e) for e in events] + [json.dumps(heartbeat)])
            job_id = submit(["--output", str(tmp_path / "out"),
                             "--set", "source.kind=kafka", "--set", "output.kind=kafka",
                             "--set", f"kafka.bootstrap_servers={broker.bootstrap}",
                             "--set", f"mlflow.tracking_uri={mlflow_server}", "--set", "mlflow.experiment=ol-cluster"])
            wait_until(lambda: job_status(job_id) == "RUNNING", 60, f"job {job_id} RUNNING", 0.5)

            predictions = [json.loads(v) for _, v, *_ in consume(broker.bootstrap, "predictions", N_EVENTS, 240)]
            counts = Counter(p["event_id"] for p in predictions)
            assert set(counts) == {e["event_id"] for e in events}
            assert max(counts.values()) == 1
            assert all(isinstance(p["model_version"], int) for p in predictions)

            client = MlflowClient(mlflow_server)
            run = client.search_runs([client.get_experiment_by_name("ol-cluster").experiment_id])[0]
            wait_until(lambda: len(client.get_metric_history(run.info.run_id, "logloss")) >= 10, 120,
                       "per-window metrics in MLflow", 1.0)

            cancel(job_id)
            assert job_status(job_id) == "CANCELED"
    finally:
        stop_cluster()
    time.sleep(1)
    assert cluster_pids() == [], "cluster processes left behind"
