"""Produce-to-prediction latency of the full job between Kafka topics, at a fixed offered rate.

Used by ``scripts/bench.py --kafka-rate``. Events are stamped with the wall clock as their event
time when produced, so the job's watermarks and windows advance in real time as in production.
A consumer on the predictions topic records when each event's prediction arrives; latency is
arrival minus produce time, over the events produced from shortly after the job's first
prediction on: its start-up, and the backlog that builds up meanwhile, are not measured.

These settings bound the latency by design, and are set here as a latency-minded deployment would:
``source.max_out_of_orderness_ms`` (an event waits until the watermark passes the end of its slice,
``batching.slice_ms``; the producer here sends in time order, so a small bound suffices; short
slices also make small batches, so there are fewer user shards, ``batching.shards``) and
``job.python_bundle_time_ms`` (how long a Python operator may buffer records), ``job.trainer_slot``
(a trainer with a worker of its own never holds up scoring while it trains);
``job.watermark_interval_ms`` (how often the watermark moves) and the Kafka clients'
``fetch.max.wait.ms`` and ``linger.ms`` trade batching for latency as well.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
from kafka import KafkaConsumer

from scripts.broker import Broker, wait_until
from scripts.kafka_tools import create_topics, replay_lines
from udfs.sim.stream_generator import StreamSpec, generate_events

REPO = Path(__file__).resolve().parent.parent
LATENCY_SETTINGS = ("source.max_out_of_orderness_ms=200", "job.python_bundle_time_ms=50", "batching.slice_ms=200",
                    "batching.shards=4", "job.watermark_interval_ms=50", "job.trainer_slot=own",
                    'kafka.consumer_properties={"fetch.max.wait.ms": "20"}',
                    'kafka.producer_properties={"linger.ms": "0"}')


class _Arrivals(threading.Thread):
    """Wall-clock arrival time of each prediction, by event id."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer("predictions", bootstrap_servers=bootstrap, group_id=None,
                                      auto_offset_reset="earliest", enable_auto_commit=False,
                                      fetch_max_wait_ms=10)  # the measuring end must not add latency
        self.seen: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for batch in self.consumer.poll(timeout_ms=100).values():
                now = time.time()
                for record in batch:
                    self.seen.setdefault(json.loads(record.value)["event_id"], now)
        self.consumer.close()


def _endless(spec: StreamSpec) -> Iterator[dict]:
    """Generated events, cycle after cycle of ``spec`` (a new seed each), with unique ids."""
    for cycle in itertools.count():
        for event in generate_events(replace(spec, seed=spec.seed + cycle)):
            yield {**event, "event_id": f"{cycle}-{event['event_id']}"}


def _stamped(spec: StreamSpec, produced: dict[str, float], arrivals: _Arrivals, seconds: float, settle_s: float,
             startup_s: float = 300.0, tail_s: float = 120.0) -> Iterator[str]:
    """Generated events with event time = now; the produce times of the measured ones go to ``produced``.

    Measuring begins ``settle_s`` after the job's first prediction, so that its start-up (the
    MiniCluster, the Python workers, and the backlog produced meanwhile) is not measured, however
    long it takes, and lasts ``seconds``. After the measured events the stream goes on, unmeasured,
    until every measured prediction has arrived (or ``tail_s`` passes), as a live stream does: an
    event is scored once the watermark passes the end of its slice, which takes later events.
    """
    started, checked = time.time(), 0.0
    measure_from = measure_until = float("inf")
    for event in _endless(spec):
        now = time.time()
        if measure_from == float("inf"):
            if arrivals.seen:  # the job scores
                measure_from = now + settle_s
                measure_until = measure_from + seconds
            elif now - started > startup_s:
                raise RuntimeError(f"no prediction within {startup_s:.0f} s of producing: the job did not start")
        if measure_from <= now < measure_until:
            produced[event["event_id"]] = now
        elif now >= measure_until:
            if now > measure_until + tail_s:
                return
            if now - checked > 0.5:
                checked = now
                if all(e in arrivals.seen for e in produced):
                    return
        yield json.dumps({**event, "event_time": int(now * 1000)})


def measure_latency(rate: float, seconds: float, parallelism: int, overrides: list[str], workdir: Path,
                    settle_s: float = 10.0) -> dict:
    """p50/p99 produce-to-prediction latency (ms) of the full job at ``rate`` events/s, over ``seconds``
    from ``settle_s`` after its first prediction."""
    spec = StreamSpec(n_events=max(int(rate * 60), 1), n_users=2_000, duration_s=60.0, seed=5)
    produced: dict[str, float] = {}
    with Broker() as broker:
        # One input partition: the front reads the stream as one sequence and judges lateness over it,
        # so partitions consumed at different paces would make each other's events late (dead letters).
        create_topics(broker.bootstrap, ["interactions:1", f"predictions:{parallelism}",
                                         "dead-letters", "drift-events"])
        cmd = [sys.executable, "-m", "jobs.online_learning", "--output", str(workdir)]
        for item in [*overrides, *LATENCY_SETTINGS, "source.kind=kafka", "output.kind=kafka",
                     f"kafka.bootstrap_servers={broker.bootstrap}", "kafka.starting_offsets=earliest",
                     f"job.parallelism={parallelism}"]:
            cmd += ["--set", item]
        job = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        arrivals = _Arrivals(broker.bootstrap)
        arrivals.start()
        try:
            print(f"  kafka: producing at {rate:.0f}/s; measuring {seconds:.0f} s from {settle_s:.0f} s after the "
                  "first prediction", file=sys.stderr)
            replay_lines(broker.bootstrap, "interactions", _stamped(spec, produced, arrivals, seconds, settle_s),
                         rate=rate)
            try:
                wait_until(lambda: all(e in arrivals.seen for e in produced) or job.poll() is not None, 120,
                           "every measured prediction", 0.5)
            except TimeoutError:  # the job fell behind the offered rate: reported as received < measured
                pass
        finally:
            arrivals.stopped.set()
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    # An event still unscored counts with the time it has waited so far: a rate the job cannot
    # sustain shows as a large p99 and received < measured_events, not as an error.
    latencies = np.array([(arrivals.seen.get(e, time.time()) - t) * 1000 for e, t in produced.items()])
    return {"offered_rate": rate, "measured_events": len(produced), "received": len(set(produced) & set(arrivals.seen)),
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "max_ms": float(latencies.max()), "settings": list(LATENCY_SETTINGS)}
