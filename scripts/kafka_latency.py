"""Produce-to-prediction latency of the full job between Kafka topics, at a fixed offered rate, and
the highest rate the job keeps up with.

Used by ``scripts/bench.py --kafka-rate``. Events are stamped with the wall clock as their event
time when produced, so the job's watermarks and windows advance in real time as in production.
A consumer on the predictions topic records when each event's prediction arrives; latency is
arrival minus produce time, over the events produced from shortly after the job caught up with
what was produced during its start-up: the start-up and that backlog are not measured.

These settings bound the latency by design, and are set here as a latency-minded deployment would:
``source.max_out_of_orderness_ms`` (an event waits until the watermark passes the end of its slice,
``batching.slice_ms``; the producer here sends in time order, so a small bound suffices; short
slices also make small batches, so there are fewer user shards, ``batching.shards``; 100-ms
slices suit thread mode, whose cost per batch is small: p50 0.47 s against 0.64 s with 200-ms
slices, README *Latency*), ``job.python_bundle_time_ms`` (how long a Python operator may buffer
records; process mode only, thread mode hands them over one at a time), ``job.trainer_slot``
(a task slot of its own for the trainer: in process mode a worker of its own, which never holds
up scoring while it trains; in thread mode a task thread of its own);
``job.watermark_interval_ms`` (how often the watermark moves) and the Kafka clients'
``fetch.max.wait.ms`` and ``linger.ms`` trade batching for latency as well.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from kafka import KafkaConsumer

from scripts.broker import Broker, wait_until
from scripts.kafka_tools import create_topics, replay_lines
from udfs.sim.stream_generator import StreamSpec, generate_events

REPO = Path(__file__).resolve().parent.parent
LATENCY_SETTINGS = ("source.max_out_of_orderness_ms=100", "job.python_bundle_time_ms=50", "batching.slice_ms=100",
                    "batching.shards=4", "job.watermark_interval_ms=20", "job.trainer_slot=own",
                    "window.serving_lag_ms=30000",
                    'kafka.consumer_properties={"fetch.max.wait.ms": "20"}',
                    'kafka.producer_properties={"linger.ms": "0"}')
MAX_GROWTH_MS = 1_000.0
CAUGHT_UP_S = 2.0  # caught up: the event produced this long ago has its prediction
PROBE_STARTUP_S = 150.0
PROBE_TAIL_S = 30.0


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


@dataclass
class _Measured:
    """What the producer records: produce times of the measured events, and when the job caught up."""

    produced: dict[str, float] = field(default_factory=dict)
    caught_up_s: float | None = None  # after the first event; None: not within the start-up allowance


def _stamped(spec: StreamSpec, measured: _Measured, arrivals: _Arrivals, seconds: float, settle_s: float,
             startup_s: float, tail_s: float) -> Iterator[str]:
    """Generated events with event time = now; the produce times of the measured ones go to ``measured``.

    Measuring begins ``settle_s`` after the job has caught up with what was produced during its
    start-up (an event produced ``CAUGHT_UP_S`` ago has its prediction), so that the start-up
    (client, MiniCluster, Python workers) and the backlog it leaves are not measured, however
    long they take; a job that has not caught up ``startup_s`` after launch is measured from then
    on. Measuring lasts ``seconds``. After the measured events the stream goes on, unmeasured,
    until every measured prediction has arrived (or ``tail_s`` passes), as a live stream does: an
    event is scored once the watermark passes the end of its slice, which takes later events.
    """
    started, checked = time.time(), 0.0
    measure_from = measure_until = float("inf")
    times: list[float] = []  # produce time of every event so far, and its id
    ids: list[str] = []
    for event in _endless(spec):
        now = time.time()
        if measure_from == float("inf"):
            times.append(now)
            ids.append(event["event_id"])
            if now - checked > 0.5:
                checked = now
                if not arrivals.seen and now - started > startup_s:
                    raise RuntimeError(f"no prediction within {startup_s:.0f} s of producing: the job did not start")
                due = bisect.bisect_right(times, now - CAUGHT_UP_S) - 1
                if due >= 0 and ids[due] in arrivals.seen:
                    measured.caught_up_s = now - started
                if measured.caught_up_s is not None or now - started > startup_s:
                    measure_from = now + settle_s
                    measure_until = measure_from + seconds
                    how = "caught up" if measured.caught_up_s is not None else "still behind"
                    print(f"  kafka: {how} {now - started:.0f} s after the first event; measuring from "
                          f"{settle_s:.0f} s on", file=sys.stderr, flush=True)
        if measure_from <= now < measure_until:
            measured.produced[event["event_id"]] = now
        elif now >= measure_until:
            if now > measure_until + tail_s:
                return
            if now - checked > 0.5:
                checked = now
                if all(e in arrivals.seen for e in measured.produced):
                    return
        yield json.dumps({**event, "event_time": int(now * 1000)})


def measure_latency(rate: float, seconds: float, parallelism: int, overrides: list[str], workdir: Path,
                    settle_s: float = 10.0, startup_s: float = 300.0, tail_s: float = 120.0) -> dict:
    """p50/p99 produce-to-prediction latency (ms) of the full job at ``rate`` events/s, over ``seconds``
    from ``settle_s`` after it caught up with its start-up backlog."""
    spec = StreamSpec(n_events=max(int(rate * 60), 1), n_users=2_000, duration_s=60.0, seed=5)
    measured = _Measured()
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
                  "job caught up with its start-up", file=sys.stderr)
            stream = _stamped(spec, measured, arrivals, seconds, settle_s, startup_s, tail_s)
            replay_lines(broker.bootstrap, "interactions", stream, rate=rate)
            try:
                wait_until(lambda: all(e in arrivals.seen for e in measured.produced) or job.poll() is not None, tail_s,
                           "every measured prediction", 0.5)
            except TimeoutError:  # the job fell behind the offered rate: reported as received < measured
                pass
        finally:
            arrivals.stopped.set()
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    # An event still unscored counts with the time it has waited so far: a rate the job cannot
    # sustain shows as a large p99 and received < measured_events, not as an error.
    produced = measured.produced
    latencies = np.array([(arrivals.seen.get(e, time.time()) - t) * 1000 for e, t in produced.items()])
    thirds = np.array_split(latencies, 3)  # in produce order
    return {"offered_rate": rate, "measured_events": len(produced), "received": len(set(produced) & set(arrivals.seen)),
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "max_ms": float(latencies.max()), "growth_ms": float(np.median(thirds[-1]) - np.median(thirds[0])),
            "caught_up_s": measured.caught_up_s,
            "settings": list(LATENCY_SETTINGS)}


def keeps_up(result: dict) -> bool:
    """The job caught up with its start-up backlog within the allowance, then scored every measured
    event, and latency did not grow over the measurement: the median of its last third within
    ``MAX_GROWTH_MS`` of its first third's (a pause, such as a window's training, raises the tail
    but not the medians; a job behind the offered rate falls further behind with every second).

    >>> keeps_up({"caught_up_s": 40.0, "measured_events": 100, "received": 100, "growth_ms": 120.0})
    True
    >>> keeps_up({"caught_up_s": 40.0, "measured_events": 100, "received": 100, "growth_ms": 4000.0})
    False
    >>> keeps_up({"caught_up_s": None, "measured_events": 100, "received": 100, "growth_ms": -9000.0})
    False
    """
    return (result["caught_up_s"] is not None and result["received"] == result["measured_events"]
            and result["growth_ms"] <= MAX_GROWTH_MS)


def max_sustainable_rate(start: float, probes: int, probe_seconds: float, parallelism: int, overrides: list[str],
                         workdir: Path) -> tuple[float, list[dict]]:
    """The highest offered rate the job kept up with (:func:`keeps_up`), by doubling from ``start``
    until it falls behind and then halving the gap, ``probes`` runs in all; 0.0 if it fell behind
    even at ``start``. Also returns every probe's figures.

    A probe allows ``PROBE_STARTUP_S`` to catch up with what was produced while the job started
    (about 30 s of events): at a rate r that takes the job a spare capacity of about r/4.
    """
    kept, behind, results = 0.0, None, []
    rate = start
    for probe in range(probes):
        result = measure_latency(rate, probe_seconds, parallelism, overrides, workdir / f"probe-{probe}",
                                 startup_s=PROBE_STARTUP_S, tail_s=PROBE_TAIL_S)
        results.append(result)
        kept_up = keeps_up(result)
        caught = (f"caught up after {result['caught_up_s']:.0f} s" if result["caught_up_s"] is not None
                  else f"not caught up within {PROBE_STARTUP_S:.0f} s")
        print(f"  kafka: {rate:.0f} events/s {'kept up' if kept_up else 'fell behind'} ({caught}, "
              f"p50 {result['p50_ms']:.0f} ms, growth {result['growth_ms']:.0f} ms)", file=sys.stderr, flush=True)
        if kept_up:
            kept = rate
        else:
            behind = rate
        rate = rate * 2 if behind is None else (kept + behind) / 2
    return kept, results
