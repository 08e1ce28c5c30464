"""Shared helpers for tests that run the real job on Flink's MiniCluster."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from jobs.run_summary import read_jsonl_dir
from scripts.broker import free_port, wait_until
from udfs.stream_generator import StreamSpec, generate_events

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 900
MLFLOW_START_TIMEOUT_S = 120


def run_job(input_file: Path | None, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    """The job exactly as a user starts it; fails the test with the job's own output on error."""
    cmd = [sys.executable, "-m", "jobs.online_learning", "--output", str(out)]
    if input_file is not None:
        cmd += ["--input", str(input_file)]
    for item in overrides:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    assert proc.returncode == 0, f"job failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def write_stream(path: Path, spec: StreamSpec, bad_lines: list[str] = ()) -> list[dict[str, Any]]:
    """Writes the generated events with ``bad_lines`` scattered among them; returns the valid events."""
    events = list(generate_events(spec))
    lines = [json.dumps(e) for e in events]
    rng = random.Random(spec.seed)
    for bad in bad_lines:
        lines.insert(rng.randrange(len(lines) // 10, len(lines)), bad)
    path.write_text("\n".join(lines) + "\n")
    return events


def outputs(out: Path, name: str) -> list[dict[str, Any]]:
    return list(read_jsonl_dir(out / name))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real tracking server: sqlite backend store, artifacts proxied through the server."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
           "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    log_file = tmp / "server.log"
    proc = subprocess.Popen(cmd, stdout=log_file.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, f"mlflow server exited: {log_file.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_until(healthy, MLFLOW_START_TIMEOUT_S, f"mlflow server on {url}", 0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
