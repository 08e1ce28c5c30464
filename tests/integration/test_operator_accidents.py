"""An operator's ordinary accidents neither lose nor double a line: a second job on the same output,
Ctrl-C in the first seconds and at the very end, a resume with changed settings or changed input, the
same savepoint resumed twice, a fresh run on another run's results, a job that fails and its resume
from the newest checkpoint.

One job run is shared by the rows that need one: each refusal is checked on the stopped run's folder
before the run is resumed to its end, and the end is then counted by event id against the input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

from mlflow.tracking import MlflowClient

from scripts.broker import wait_until
from tests.integration.conftest import JOB_TIMEOUT_S, REPO, job_command, outputs, write_stream
from udfs.sim.stream_generator import StreamSpec

SPEC = StreamSpec(n_events=40_000, n_users=1_000, duration_s=3 * 3600.0, seed=35)
OVERRIDES = ("job.checkpoint_interval_ms=1000", "mlflow.register_every_windows=100", "source.chunk_lines=500")
# The first job's readers slowed to 0.15 s a chunk (12 s for the stream): a stop asked for as the job
# starts, which waits until every task runs (the MLflow reporter opens its store first), lands mid-stream.
SLOW = ("--slow-reader", "150")
BAD_LINE = '{"event_id": "broken"'


def _client(input_dir: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    """The job's command line, expected to stop before the job starts."""
    return subprocess.run(job_command(input_dir, out, *OVERRIDES) + list(args), cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def _start(input_dir: Path, out: Path, *args: str, module: str = "jobs.online_learning") -> subprocess.Popen:
    return subprocess.Popen(job_command(input_dir, out, *OVERRIDES, module=module) + list(args), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _interrupt_when(job: subprocess.Popen, ready) -> str:
    """SIGINT once ``ready(line so far)`` holds for the job's output; the whole output once it has exited."""
    seen = []
    try:
        for line in job.stdout:
            seen.append(line)
            if ready(line):
                job.send_signal(signal.SIGINT)
                break
        rest = job.stdout.read()  # not communicate(timeout=...): it reads the pipe past the lines buffered here
        job.wait(JOB_TIMEOUT_S)
    finally:
        job.kill()
    return "".join(seen) + rest


def _runs(out: Path) -> list:
    """The MLflow runs logged under ``out``, newest first."""
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("online-learning")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _statuses(out: Path) -> list[str]:
    return [r.info.status for r in _runs(out)]


def test_accidents_leave_every_line_predicted_or_dead_lettered_once(tmp_path: Path) -> None:
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    events = write_stream(input_dir / "events.jsonl", SPEC, bad_lines=[BAD_LINE])
    original = (input_dir / "events.jsonl").read_bytes()
    out = tmp_path / "out"

    # Ctrl-C before the job is submitted: cancelled, nothing left that a new run would have to overwrite.
    cancelled = _start(input_dir, out)
    stdout = _interrupt_when(cancelled, lambda line: line.startswith("features"))
    assert cancelled.returncode == 130 and "cancelled: before the job started" in stdout, stdout[-3000:]
    assert not (out / "run.json").exists()
    before = _statuses(out)
    assert before in ([], ["KILLED"]), "a run opened before the cancel must end KILLED"

    # Two jobs on one output: the second is refused while the first holds the folder.
    first = _start(input_dir, out, *SLOW, module="tests.faulty_job")
    wait_until(lambda: (out / ".run.lock").is_file() or first.poll() is not None, 300, "the first job's lock", 0.2)
    second = _client(input_dir, out)
    assert second.returncode == 2 and "in use by run" in second.stderr, second.stderr[-2000:]
    # Ctrl-C in the first seconds: as soon as the job is submitted, it stops with a savepoint once it runs.
    stdout = _interrupt_when(first, lambda line: line.startswith("running job"))
    assert first.returncode == 0, stdout[-4000:]
    match = re.search(r"stopped; savepoint (\S+)", stdout)
    assert match, f"no savepoint reported:\n{stdout[-4000:]}"
    savepoint = match.group(1)
    assert _statuses(out) == ["KILLED", *before]

    # A resume must match what the state was made with: refused, naming each key, old and new value.
    changed = _client(input_dir, out, "--resume", savepoint, "--set", "batching.shards=8", "--set", "model.kind=mlp")
    assert changed.returncode == 2, changed.stderr[-2000:]
    assert "batching.shards: 16 -> 8" in changed.stderr and "model.kind: logistic -> mlp" in changed.stderr
    # Input that changed: a new file in the folder, and lines appended to the file, each named.
    (input_dir / "later.jsonl").write_bytes(original[:2000].rsplit(b"\n", 1)[0] + b"\n")
    (input_dir / "events.jsonl").write_bytes(original + original[:500].rsplit(b"\n", 1)[0] + b"\n")
    grown = _client(input_dir, out, "--resume", savepoint)
    assert grown.returncode == 2, grown.stderr[-2000:]
    assert "later.jsonl is new" in grown.stderr and "events.jsonl grew from" in grown.stderr, grown.stderr[-2000:]
    (input_dir / "later.jsonl").unlink()
    (input_dir / "events.jsonl").write_bytes(original)
    # A fresh run on the stopped run's results is refused, pointing at the resume.
    fresh = _client(input_dir, out)
    assert fresh.returncode == 2 and f"--resume {savepoint} continues it" in fresh.stderr, fresh.stderr[-2000:]
    for refused in (second, changed, grown, fresh):
        assert refused.stderr.strip().count("\n") == 0, f"more than one line:\n{refused.stderr}"

    # A job that fails (the predictor, once, no restarts) says its cause in one line; its run ends FAILED.
    failing = job_command(input_dir, out, *OVERRIDES, "job.restart_attempts=0", module="tests.faulty_job")
    # Slowed, and failing only after a checkpoint: the failed job has committed something of its own.
    failed = subprocess.run(failing + ["--fail", "predictor", "--after", "5000", "--after-a-checkpoint", *SLOW,
                                       "--resume", savepoint], cwd=REPO,
                            capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith("error: job failed: injected failure in 'predictor'") and "(InjectedFailure)" in error, \
        failed.stderr[-3000:]
    [run, *_] = _runs(out)
    assert _statuses(out) == ["FAILED", *before]
    assert run.data.tags["end_reason"].startswith("job failed: injected failure in 'predictor'")
    # The savepoint again would repeat what the failed job committed: refused, naming its newest checkpoint.
    older = _client(input_dir, out, "--resume", savepoint)
    newest = re.search(r"resume from (\S+)", older.stderr)
    assert older.returncode == 2 and newest and "/chk-" in newest.group(1), older.stderr[-2000:]

    # Resumed from that checkpoint (restarts back on: accepted, and said), Ctrl-C at the very end (every
    # line committed, the job finishing): the run's results stand.
    total = len(events) + 1
    resumed = _start(input_dir, out, "--resume", newest.group(1))
    wait_until(lambda: len(outputs(out, "predictions")) + len(outputs(out, "dead_letters")) >= total
               or resumed.poll() is not None, JOB_TIMEOUT_S, "every line committed", 0.5)
    stdout = _interrupt_when(resumed, lambda line: True)
    assert resumed.returncode == 0, stdout[-4000:]
    assert "changed          job.restart_attempts: 0 -> 3 (takes effect from the resume on)" in stdout, stdout[:3000]
    late_stop = re.search(r"stopped; savepoint (\S+)", stdout)
    if late_stop:  # the stop won the race with the end: the run continues from there
        last = subprocess.run(job_command(input_dir, out, *OVERRIDES) + ["--resume", late_stop.group(1)],
                              cwd=REPO, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
        assert last.returncode == 0, last.stderr[-4000:]

    predictions = Counter(p["event_id"] for p in outputs(out, "predictions"))
    dead = outputs(out, "dead_letters")
    lines = predictions + Counter(d["raw"] if d["raw"] == BAD_LINE else json.loads(d["raw"])["event_id"] for d in dead)
    assert set(lines) == {e["event_id"] for e in events} | {BAD_LINE} and max(lines.values()) == 1, \
        "lost or doubled lines"
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["predictions"], summary["dead_letters"], summary["duplicate_predictions"]) == \
        (sum(predictions.values()), len(dead), 0)
    assert _statuses(out) == ["FINISHED", *before], "one run, resumed, finished"

    # The same savepoint resumed twice (the printed command re-run): refused, nothing written.
    again = _client(input_dir, out, "--resume", savepoint)
    assert again.returncode == 2 and "has finished" in again.stderr, again.stderr[-2000:]
    assert len(outputs(out, "predictions")) == sum(predictions.values())

