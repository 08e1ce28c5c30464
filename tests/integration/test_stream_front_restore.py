"""The Kafka front across a restore: the stream's newest event time is Flink state, so the lines
after a failure are judged late or timely exactly as in a run that never failed (library mode).

The stream jumps an hour ahead early on, so that every event of the following hour is late, and the
job fails inside that hour, after a checkpoint taken there: a guard that forgot the jump on restore
let that hour's events through."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.broker import Broker
from scripts.kafka_tools import create_topics, replay_lines
from tests.faulty_job import FAILURE_MARKER
from tests.integration.conftest import run_job
from tests.integration.test_parallel_front import OVERRIDES, assert_as_library_mode, late_stream

JUMP_AT, JUMP_MS = 1_500, 3_600_000
FAIL_AFTER = 9_000  # lines: inside the jump's hour (about 13,000 lines), 4.5 s into the slowed triage


def jumping_stream() -> list[str]:
    lines = late_stream()
    jump = json.loads(lines[JUMP_AT])
    jump.update(event_id="jump", event_time=jump["event_time"] + JUMP_MS)
    return lines[:JUMP_AT] + [json.dumps(jump)] + lines[JUMP_AT:]


def test_a_failure_after_a_jump_restores_the_streams_lateness_exactly(tmp_path: Path) -> None:
    lines = jumping_stream()
    with Broker() as broker:
        create_topics(broker.bootstrap, ["interactions"])
        assert replay_lines(broker.bootstrap, "interactions", lines) == len(lines)
        settings = (*OVERRIDES, "source.kind=kafka", "batching.slice_ms=60000", "mlflow.enabled=false",
                    f"kafka.bootstrap_servers={broker.bootstrap}", f'kafka.stopping_offsets={{"interactions:0": {len(lines)}}}')
        run_job(None, tmp_path / "out", *settings,
                faults=("--fail", "triage", "--after", str(FAIL_AFTER), "--after-a-checkpoint", "--slow-reader", "0.5"))
    assert (tmp_path / "out" / "checkpoints" / FAILURE_MARKER.format("triage")).exists(), "no failure was injected"
    assert_as_library_mode(tmp_path / "out", lines, overrides=settings)
