"""A real standalone Flink cluster from the PyFlink distribution: start, submit throwaway PyFlink jobs
with `flink run`, follow them through REST, survive a killed TaskManager, cancel, and stop with no
process of the cluster left; then the online-learning job itself between Kafka and MLflow."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conf.settings import load_settings
from jobs.kafka_client import consume
from jobs.run_folder import RunRecord
from scripts.broker import Broker, free_port, wait_until
from scripts.flink_cluster import (
    LOG_DIR,
    alive,
    cancel,
    daemon_pids,
    job_failure,
    job_restarts,
    job_status,
    kill_taskmanager,
    list_jobs,
    overview,
    process_tree,
    start_cluster,
    start_taskmanager,
    stop_cluster,
    stop_job,
    stopped_with_savepoint,
    submit,
    tasks_running,
)
from scripts.kafka_tools import create_topics, replay_lines
from tests.integration.conftest import outputs
from udfs.features.events import parse_time
from udfs.offline.library_mode import run_library
from udfs.sim.stream_generator import StreamSpec, generate_events

REPO = Path(__file__).resolve().parents[2]
SLOTS = 3  # parallelism 2 (conf/kafka-cluster.yaml) + the front's slot

# `short` tags 100 numbers and finishes; `long` tags an endless sequence, slowly, until cancelled.
JOB = '''
import sys
import time

from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.number_seq import NumberSequenceSource


def tag(x: int) -> str:
    import tinyhelpers  # not next to this file: only --pyfiles brings it to the Python workers
    return tinyhelpers.tag(x)


def slowly(x: int) -> int:
    time.sleep(0.01)
    return x


conf = Configuration()
conf.set_string("restart-strategy.type", "fixed-delay")  # the long job outlives a killed TaskManager
conf.set_string("restart-strategy.fixed-delay.attempts", "3")
conf.set_string("restart-strategy.fixed-delay.delay", "1 s")
env = StreamExecutionEnvironment.get_execution_environment(conf)
if sys.argv[1] == "short":
    numbers = env.from_collection(list(range(100)), type_info=Types.LONG())
else:
    numbers = env.from_source(NumberSequenceSource(0, 10**12), WatermarkStrategy.no_watermarks(), "numbers") \\
        .map(slowly, output_type=Types.LONG())
numbers.map(tag, output_type=Types.STRING()).print()
env.execute(f"tiny-{sys.argv[1]}")
'''
HELPERS = '''
def tag(x: int) -> str:
    return f"tiny:{2 * x}"
'''


@pytest.fixture
def job_files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "job.py").write_text(JOB)
    package = tmp_path / "lib" / "tinyhelpers"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(HELPERS)
    return tmp_path / "job.py", package


@pytest.fixture
def cluster() -> Iterator[str]:
    """The project's local cluster on a free REST port; stopped even when the test fails."""
    try:
        yield start_cluster(slots=SLOTS, rest_port=free_port())
    finally:
        stop_cluster()
    assert cluster_java_processes() == [], "cluster processes left behind"


def cluster_java_processes() -> list[str]:
    """Straight from ps, not through the module under test: JVMs logging into the cluster's log dir."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [line[:200] for line in ps.splitlines() if "java" in line and str(LOG_DIR) in line]


def taskmanager_output() -> str:
    return "".join(out.read_text(errors="replace") for out in LOG_DIR.glob("*taskexecutor*.out"))


def test_submit_follow_recover_cancel_and_stop(cluster: str, job_files: tuple[Path, Path]) -> None:
    job, helpers = job_files
    info = overview(cluster)
    assert (info["taskmanagers"], info["slots-total"]) == (1, SLOTS)

    short = submit(job, ["short"], cluster, jars=[], pyfiles=[helpers])
    wait_until(lambda: job_status(short, cluster) in ("FINISHED", "FAILED"), 120, f"short job {short} to end", 0.5)
    assert job_status(short, cluster) == "FINISHED", job_failure(short, cluster)
    assert "tiny:198" in taskmanager_output()  # the Python workers ran the shipped helper

    long = submit(job, ["long"], cluster, pyfiles=[helpers])  # default jars: the Kafka connector, bundled
    wait_until(lambda: tasks_running(long, cluster), 120, f"long job {long} RUNNING", 0.5)
    assert job_failure(long, cluster) == ""
    assert {(j["jid"], j["state"]) for j in list_jobs(cluster)} == {(short, "FINISHED"), (long, "RUNNING")}
    cli = subprocess.run([sys.executable, "scripts/flink_cluster.py", "jobs", "--rest-address", cluster],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert f"{long} RUNNING tiny-long" in cli.stdout, cli.stdout + cli.stderr

    killed = kill_taskmanager()
    assert not any(map(alive, killed))
    start_taskmanager()
    assert daemon_pids("taskmanager") and set(daemon_pids("taskmanager")).isdisjoint(killed)
    wait_until(lambda: job_restarts(long, cluster) >= 1 and tasks_running(long, cluster), 180,
               f"long job {long} restarted on the new TaskManager", 0.5)

    cancel(long, cluster)
    assert job_status(long, cluster) == "CANCELED"

    processes = process_tree(daemon_pids())
    assert processes, "no cluster process found before stopping"
    stop_cluster()
    assert not [pid for pid in processes if alive(pid)], "cluster processes left behind"
    assert cluster_java_processes() == []


WINDOW_MS = 300_000


def closing(heartbeat: dict) -> dict:
    """An event a slice and the out-of-orderness after ``heartbeat``: it closes the heartbeat's slice."""
    settings = load_settings(REPO / "conf" / "kafka-cluster.yaml")
    later = settings.batching.slice_ms + settings.source.max_out_of_orderness_ms + 1
    return {**heartbeat, "event_id": "closing", "event_time": heartbeat["event_time"] + later}


def test_the_online_learning_job_on_the_cluster_between_kafka_and_mlflow(cluster: str, tmp_path: Path,
                                                                        mlflow_server: str) -> None:
    """The real job, submitted with the project's script and profile: Kafka in and out, MLflow server."""
    events = list(generate_events(StreamSpec(n_events=5_000, n_users=300, duration_s=3600.0, seed=41)))
    last = max(parse_time(e["event_time"]) for e in events)
    # An unbounded stream scores an event once the watermark passes the end of its slice and its window's
    # start: one later event, a minute into its window, moves the watermark past every real one; a last
    # one moves it past the heartbeat's own slice (and is itself never scored: nothing follows it).
    heartbeat_time = last - last % WINDOW_MS + 2 * WINDOW_MS + 60_000
    heartbeat = {"event_id": "heartbeat", "user_id": "hb", "event_time": heartbeat_time, "features": {}}
    with Broker() as broker:
        create_topics(broker.bootstrap, ["interactions", "predictions", "dead-letters", "drift-events"])
        replay_lines(broker.bootstrap, "interactions",
                     [json.dumps(e) for e in events] + [json.dumps(heartbeat), json.dumps(closing(heartbeat))])
        args = ["--config", str(REPO / "conf" / "kafka-cluster.yaml"), "--output", str(tmp_path / "out"),
                "--set", f"kafka.bootstrap_servers={broker.bootstrap}", "--set", "kafka.starting_offsets=committed",
                "--set", f"mlflow.tracking_uri={mlflow_server}", "--set", "mlflow.experiment=ol-cluster",
                "--set", "job.checkpoint_interval_ms=2000"]
        job_id = submit(job_args=args, rest=cluster)
        wait_until(lambda: job_status(job_id, cluster) == "RUNNING", 60, f"job {job_id} RUNNING", 0.5)

        predictions = [json.loads(r[1]) for r in consume(broker.bootstrap, "predictions", len(events) + 1, 240)]
        counts = Counter(p["event_id"] for p in predictions)
        assert set(counts) == {e["event_id"] for e in events} | {"heartbeat"}
        assert max(counts.values()) == 1
        assert all(isinstance(p["model_version"], int) for p in predictions)

        client = MlflowClient(mlflow_server)
        run = client.search_runs([client.get_experiment_by_name("ol-cluster").experiment_id])[0]
        wait_until(lambda: len(client.get_metric_history(run.info.run_id, "logloss")) >= 10, 120,
                   "per-window metrics in MLflow", 1.0)

        assert client.get_run(run.info.run_id).data.tags["flink_job_id"] == job_id
        assert client.get_run(run.info.run_id).info.status == "RUNNING"

        # The README's upgrade path, then more jobs, on the same TaskManager (thread mode: pemja's native
        # library once per JVM): stop with a savepoint, resume it, cancel, submit a fresh job.
        savepoint = stop_job(job_id, tmp_path / "savepoints", cluster)
        assert client.get_run(run.info.run_id).info.status == "KILLED"
        stopped = RunRecord.load(tmp_path / "out")
        assert (stopped.state, stopped.newest) == ("stopped", savepoint), "the run record continues from the savepoint"
        assert stopped_with_savepoint(job_id, cluster) == savepoint, "how `jobs` tells a stop from a finished input"
        resumed = submit(job_args=[*args, "--resume", savepoint], rest=cluster)
        wait_for_a_checkpoint(resumed, cluster)
        assert client.get_run(run.info.run_id).info.status == "RUNNING", "a resumed job logs into its run"
        assert client.get_run(run.info.run_id).data.tags["flink_job_id"] == resumed

        cancel(resumed, cluster)
        assert job_status(resumed, cluster) == "CANCELED"
        ended = client.get_run(run.info.run_id)
        assert ended.info.status == "KILLED", "a cancelled job's MLflow run must not stay RUNNING"
        assert ended.data.tags["end_reason"] == "job cancelled in Flink"
        assert RunRecord.load(tmp_path / "out").state == "cancelled", "a cancelled job's record must not stay running"

        # A second job on the cancelled run's folder is refused by its client: that one line, as the local job says it.
        refused = subprocess.run([sys.executable, "scripts/flink_cluster.py", "submit", "--rest-address", cluster,
                                  "--", *args], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.startswith(f"error: --output {tmp_path / 'out'}: holds the results of the cancelled run")
        assert len(refused.stderr.splitlines()) == 1, refused.stderr

        fresh = submit(job_args=[*args[:2], "--output", str(tmp_path / "out-fresh"), *args[4:]], rest=cluster)
        wait_for_a_checkpoint(fresh, cluster)
        cancel(fresh, cluster)
    states = [job["state"] for job in list_jobs(cluster)]
    assert len(states) == 3 and "FAILED" not in states, states


def wait_for_a_checkpoint(job_id: str, rest: str) -> None:
    """Until the job completed a checkpoint, which it takes only with every operator open: a job whose
    Python operators fail to start restarts and fails instead (and then fails this wait at once)."""
    def completed() -> int:
        with urllib.request.urlopen(f"http://{rest}/jobs/{job_id}/checkpoints", timeout=10) as response:
            counts = json.loads(response.read())["counts"]
        assert job_restarts(job_id, rest) == 0 and job_status(job_id, rest) == "RUNNING", job_failure(job_id, rest)
        return counts["completed"]

    wait_until(lambda: completed() >= 1, 180, f"job {job_id}'s first checkpoint", 0.5)


def test_the_job_on_the_cluster_recovers_from_a_killed_taskmanager_exactly_once(cluster: str, tmp_path: Path) -> None:
    """Kafka in, file sinks out (they commit with checkpoints); the TaskManager is SIGKILLed mid-stream and
    a new one started: every event's prediction is committed once, with the same score as a clean run."""
    events = list(generate_events(StreamSpec(n_events=10_000, n_users=500, duration_s=3600.0, seed=43)))
    last = max(parse_time(e["event_time"]) for e in events)
    heartbeat = {"event_id": "heartbeat", "user_id": "hb", "event_time": last - last % WINDOW_MS + 2 * WINDOW_MS + 60_000,
                 "features": {}}
    lines = [json.dumps(e) for e in events] + [json.dumps(heartbeat)]
    out = tmp_path / "out"
    with Broker() as broker:
        # One partition: the job reads its source in one sequence, and lateness is judged over what it reads,
        # so partitions replayed at different paces after the restart would make each other's events late.
        create_topics(broker.bootstrap, ["interactions"])
        # Produced at a steady rate while the job runs, so that the kill lands mid-stream.
        producer = threading.Thread(target=replay_lines,
                                    args=(broker.bootstrap, "interactions", lines + [json.dumps(closing(heartbeat))], 250.0))
        producer.start()
        job_id = submit(job_args=["--config", str(REPO / "conf" / "kafka-cluster.yaml"), "--output", str(out),
                                  "--set", f"kafka.bootstrap_servers={broker.bootstrap}",
                                  "--set", "kafka.starting_offsets=earliest", "--set", "output.kind=files",
                                  "--set", "job.checkpoint_interval_ms=2000", "--set", "mlflow.enabled=false"],
                        rest=cluster)
        wait_until(lambda: len(outputs(out, "predictions")) >= 1_000, 300, "1,000 committed predictions", 0.5)
        assert len(outputs(out, "predictions")) < len(events), "the kill should land mid-stream"
        killed = kill_taskmanager()
        start_taskmanager()
        wait_until(lambda: job_restarts(job_id, cluster) >= 1 and tasks_running(job_id, cluster), 180,
                   f"job {job_id} restarted on the new TaskManager", 0.5)
        producer.join()
        wait_until(lambda: len(outputs(out, "predictions")) >= len(lines), 300, "every prediction committed", 1.0)
        assert not any(map(alive, killed))
        cancel(job_id, cluster)

    committed = outputs(out, "predictions")
    counts = Counter(p["event_id"] for p in committed)
    assert set(counts) == {e["event_id"] for e in events} | {"heartbeat"}
    assert max(counts.values()) == 1, "a prediction was committed twice after the recovery"
    reference = {p["event_id"]: p for p in map(json.loads, run_library(
        load_settings(REPO / "conf" / "kafka-cluster.yaml", ["job.parallelism=1"]), lines).predictions)}
    versions_match = sum(p["model_version"] == reference[p["event_id"]]["model_version"] for p in committed)
    assert versions_match == len(committed), f"{len(committed) - versions_match} predictions served by another model"
