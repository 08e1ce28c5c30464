"""The output folder on a read-only file system, and on a disk that fills up mid-run and is then
enlarged: one line saying what happened, a non-zero exit, and after the resume every line predicted
or dead-lettered exactly once.

The folder is a small tmpfs mounted in a user and mount namespace of the test's own (``unshare``),
so no privilege is needed and nothing outside the test sees it; as root a read-only mode bit would
not stop a write."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections import Counter
from pathlib import Path

from tests.integration.conftest import JOB_TIMEOUT_S, REPO, job_command, outputs, write_stream
from udfs.sim.stream_generator import StreamSpec

SPEC = StreamSpec(n_events=30_000, n_users=1_000, duration_s=2 * 3600.0, seed=41)
OVERRIDES = ("job.checkpoint_interval_ms=1000", "source.chunk_lines=500")


def in_namespace(script: str) -> subprocess.CompletedProcess:
    """``script`` (sh) as root of a new user and mount namespace, where it may mount a tmpfs."""
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-euc", script], cwd=REPO,
                          capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    assert "unshare:" not in proc.stderr, f"these tests need user namespaces (unshare -rm): {proc.stderr}"
    return proc


def stream(tmp_path: Path) -> list[dict]:
    (tmp_path / "in").mkdir()
    return write_stream(tmp_path / "in" / "events.jsonl", SPEC)


def job(input_dir: Path, out: Path, *args: str, module: str = "jobs.online_learning") -> str:
    """The job's command line, killed after 5 minutes: a job that hangs on a full disk fails the test."""
    return "timeout -s KILL 300 " + shlex.join(job_command(input_dir, out, *OVERRIDES, module=module) + list(args))


def test_a_read_only_output_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    stream(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    proc = in_namespace(f"mount -t tmpfs tmpfs {out}; mount -o remount,ro {out}; "
                        f"{job(tmp_path / 'in', out)} || echo exit=$?")
    assert proc.stdout.strip().endswith("exit=1"), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: Read-only file system: {out}/.run.lock (the output folder or a store cannot be written)"]


def test_a_full_disk_fails_in_one_line_and_the_resume_loses_and_doubles_nothing(tmp_path: Path) -> None:
    events = stream(tmp_path)
    out, kept = tmp_path / "out", tmp_path / "kept"
    out.mkdir()
    # 5 MB fill up at about half the predictions, several checkpoints in (the readers slowed to 0.2 s a
    # chunk of 500 lines); the resume continues from the newest checkpoint.
    slowed = job(tmp_path / "in", out, "--slow-reader", "200", module="tests.faulty_job")
    proc = in_namespace(f"""
        mount -t tmpfs -o size=5m tmpfs {out}
        {slowed} > {tmp_path}/first.out 2> {tmp_path}/first.err || echo first=$?
        mount -o remount,size=256m {out}
        newest=$(ls -d {out}/checkpoints/*/chk-* | sort -t- -k2 -n | tail -1)
        {job(tmp_path / 'in', out, '--resume', '$newest')} > {tmp_path}/second.out 2>&1 || echo second=$?
        cp -a {out} {kept}
    """.replace("'$newest'", '"$newest"'))
    first_err = (tmp_path / "first.err").read_text()
    assert proc.stdout.strip() == "first=1", proc.stdout + proc.stderr + (tmp_path / "second.out").read_text()[-3000:]
    # Whether the MLflow store on the full disk can still mark the run FAILED depends on what the job
    # left there; either way each message is one line.
    messages = first_err.strip().splitlines()
    assert all(m.startswith(("warning: ", "error: ")) for m in messages), first_err[-3000:]
    assert messages[-1].startswith("error: job failed: No space left on device (java.io.IOException) (the MLflow run ")
    counts = Counter(p["event_id"] for p in outputs(kept, "predictions"))
    counts.update(json.loads(d["raw"])["event_id"] for d in outputs(kept, "dead_letters"))
    assert set(counts) == {e["event_id"] for e in events}
    assert max(counts.values()) == 1, "doubled predictions or dead letters"
    assert json.loads((kept / "run.json").read_text())["state"] == "finished"
