"""A tracking server that does not answer: the job stops at start-up in one line naming the setting,
within seconds, not after MLflow's four minutes of retries; nothing is read."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.integration.conftest import REPO, job_command, write_stream
from udfs.sim.stream_generator import StreamSpec


def closed_port() -> int:
    """A local port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_server_is_refused_in_one_line(tmp_path: Path) -> None:
    write_stream(tmp_path / "events.jsonl", StreamSpec(n_events=2_000, n_users=100, seed=5))
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    proc = subprocess.run(job_command(tmp_path / "events.jsonl", tmp_path / "out", f"mlflow.tracking_uri={uri}"),
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: mlflow.tracking_uri={uri}: no MLflow server answers ([Errno 111] Connection refused); start the "
        "server, or leave mlflow.tracking_uri out to log to a local store under output.path"]
    assert time.monotonic() - started < 120, "the refusal must not wait for MLflow's retries (about 4 minutes)"
    assert not list((tmp_path / "out" / "predictions").rglob("*.jsonl")), "nothing is read"
