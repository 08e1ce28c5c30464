"""The parallel file front on the MiniCluster: files read by parallel readers with lateness per file,
a far-ahead event that poisons nothing, and restores after late events that lose and double nothing.
Each run is compared with library mode, which gives a run that never failed."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

from conf.settings import load_settings
from jobs.progress import lines_written
from jobs.run_summary import read_snapshots
from scripts.broker import wait_until
from tests.faulty_job import FAILURE_MARKER, completed_checkpoints
from tests.integration.conftest import REPO, differing_predictions, job_command, outputs, run_job
from udfs.offline.library_mode import run_library
from udfs.sim.stream_generator import StreamSpec, generate_events

SPEC = StreamSpec(n_events=40_000, n_users=1_000, duration_s=3 * 3600.0, seed=23)
FAR_AHEAD = 4_070_908_800_000  # 2099-01-01
OVERRIDES = ("job.parallelism=2", "job.checkpoint_interval_ms=1000", "source.chunk_lines=500",
             "mlflow.register_every_windows=100")


def late_stream() -> list[str]:
    """The stream with every fourth event sent again an hour later under a new id (late for its
    file), and one event dated 2099: what used to go missing across a restore."""
    events = list(generate_events(SPEC))
    placed = [(float(i), json.dumps(e)) for i, e in enumerate(events)]
    placed += [(i + len(events) / 6 + 0.5, json.dumps({**events[i], "event_id": f"late-{i}"}))
               for i in range(0, len(events) // 2, 4)]
    far = {**events[100], "event_id": "far-ahead", "event_time": FAR_AHEAD}
    placed.append((random.Random(SPEC.seed).randrange(len(events) // 10, len(events) // 5) + 0.25, json.dumps(far)))
    return [line for _, line in sorted(placed, key=lambda p: p[0])]


def assert_as_library_mode(out: Path, *splits: list[str], overrides: tuple[str, ...] = ()) -> None:
    """Every line is one prediction or one dead letter, exactly as library mode has it."""
    library = run_library(load_settings(overrides=list(overrides)), *splits)
    committed = outputs(out, "predictions")
    counts = Counter(p["event_id"] for p in committed)
    expected = {json.loads(p)["event_id"] for p in library.predictions}
    assert set(counts) == expected, f"{len(expected - set(counts))} lost, {len(set(counts) - expected)} unexpected"
    assert max(counts.values()) == 1, "doubled predictions"
    differing = differing_predictions(committed, library.predictions)
    assert not differing, f"{len(differing)} predictions differ from library mode's; the earliest: {differing[0]}"
    reasons = Counter(d["reason"] for d in outputs(out, "dead_letters"))
    assert reasons == Counter(json.loads(d)["reason"] for d in library.dead_letters)
    assert sum(reasons.values()) + len(committed) == sum(len(s) for s in splits)


def test_two_files_are_read_in_parallel_each_with_its_own_lateness(tmp_path: Path) -> None:
    # A window holds about 1,100 rows here: the trainer's sample (window.training_rows) leaves some out.
    sampled = ("window.training_rows=1000",)
    lines = [json.dumps(e) for e in generate_events(SPEC)]
    later, earlier = lines[len(lines) // 2:], lines[:len(lines) // 2]  # file b: all older than file a
    far = {**json.loads(lines[-1]), "event_id": "far-ahead", "event_time": FAR_AHEAD}
    later.insert(500, json.dumps(far))
    later.insert(700, "{not json")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("\n".join(later) + "\n")
    (folder / "b.jsonl").write_text("\n".join(earlier) + "\n")
    run_job(folder, tmp_path / "out", *OVERRIDES, *sampled)
    reasons = Counter(d["reason"] for d in outputs(tmp_path / "out", "dead_letters"))
    assert reasons == Counter({"event_time_too_far_ahead": 1, "malformed_json": 1}), \
        "file b is behind file a, never late for its own split"
    assert_as_library_mode(tmp_path / "out", later, earlier, overrides=sampled)
    trained = [s["metrics"]["events"] for s in read_snapshots(tmp_path / "out") if s["update"] == "window"]
    assert max(trained) <= 1000 < len(lines) / 36, "the trainer should learn from a sample of the larger windows"


def test_a_failure_after_late_events_restores_their_lateness_exactly(tmp_path: Path) -> None:
    lines = late_stream()
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    run_job(tmp_path / "events.jsonl", tmp_path / "out", *OVERRIDES, faults=("--fail", "reader", "--after", "60"))
    assert (tmp_path / "out" / "checkpoints" / FAILURE_MARKER.format("reader")).exists(), "no failure was injected"
    assert_as_library_mode(tmp_path / "out", lines)


def test_stop_and_resume_after_late_events_loses_and_doubles_nothing(tmp_path: Path) -> None:
    # The MLP, and the readers slowed to 0.1 s a chunk (9 s for the stream): the stop lands mid-stream.
    stop_after, kind = 2_000, ("model.kind=mlp",)
    lines = late_stream()
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    first = subprocess.Popen(job_command(tmp_path / "events.jsonl", out, *OVERRIDES, *kind, module="tests.faulty_job")
                             + ["--slow-reader", "100"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: lines_written(out / "predictions") >= stop_after or first.poll() is not None, 300,
                   f"the first {stop_after} predictions", 0.2)
        first.send_signal(signal.SIGINT)
        stdout, _ = first.communicate(timeout=300)
    finally:
        first.kill()
    match = re.search(r"stopped; savepoint (\S+)", stdout)
    assert first.returncode == 0 and match, stdout[-4000:]
    assert 0 < lines_written(out / "predictions") < len(lines), "the stop should land mid-stream"
    run_job(tmp_path / "events.jsonl", out, *OVERRIDES, *kind, resume=match.group(1))
    assert_as_library_mode(out, lines, overrides=kind)


def test_sigkill_and_resume_from_the_newest_checkpoint_after_late_events(tmp_path: Path) -> None:
    # The client and its MiniCluster killed at once (no savepoint, no run record update), once a
    # checkpoint holds some predictions; resumed from the newest checkpoint Flink left behind.
    lines = late_stream()
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    first = subprocess.Popen(job_command(tmp_path / "events.jsonl", out, *OVERRIDES, module="tests.faulty_job")
                             + ["--slow-reader", "100"], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: len(outputs(out, "predictions")) >= 2_000 or first.poll() is not None, 300,
                   "2,000 committed predictions", 0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(60)
    finally:
        first.kill()
    assert 0 < len(outputs(out, "predictions")) < len(lines), "the kill should land mid-stream"
    newest = max(completed_checkpoints(out / "checkpoints"), key=lambda chk: int(chk.name.split("-")[1]))
    run_job(tmp_path / "events.jsonl", out, *OVERRIDES, resume=str(newest))
    assert_as_library_mode(out, lines)
