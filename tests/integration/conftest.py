"""Shared helpers for tests that run the real job on Flink's MiniCluster."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pytest

from jobs.run_summary import read_jsonl_dir
from scripts.broker import free_port, wait_until
from udfs.learning.model import Model
from udfs.sim.stream_generator import StreamSpec, generate_events

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 900
MLFLOW_START_TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in this folder starts real processes: ``-m "not integration"`` is the quick loop."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


def job_command(input_file: Path | None, out: Path, *overrides: str, module: str = "jobs.online_learning"
                ) -> list[str]:
    """The job's command line exactly as a user types it (``module``: the job's, or a test's wrapper of it)."""
    cmd = [sys.executable, "-m", module, "--output", str(out)]
    if input_file is not None:
        cmd += ["--input", str(input_file)]
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def run_job(input_file: Path | None, out: Path, *overrides: str, resume: str | None = None,
            faults: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Runs the job to its end; fails the test with the job's own output on error.

    ``faults``: arguments of tests/faulty_job.py, e.g. ``("--fail", "trainer", "--after", "500")``:
    the job runs with that fault injected.
    """
    module = "tests.faulty_job" if faults else "jobs.online_learning"
    cmd = job_command(input_file, out, *overrides, module=module) + list(faults)
    cmd += ["--resume", resume] if resume else []
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    assert proc.returncode == 0, f"job failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def write_stream(path: Path, spec: StreamSpec, bad_lines: list[str] = (), duplicates: int = 0
                 ) -> list[dict[str, Any]]:
    """Writes the generated events with ``bad_lines`` scattered among them and ``duplicates`` valid
    events sent twice in a row (as a retrying producer does); returns the valid events, once each."""
    events = list(generate_events(spec))
    lines = [json.dumps(e) for e in events]
    rng = random.Random(spec.seed)
    for i in sorted(rng.sample(range(len(lines) // 10, len(lines)), duplicates), reverse=True):
        lines.insert(i + 1, lines[i])
    for bad in bad_lines:
        lines.insert(rng.randrange(len(lines) // 10, len(lines)), bad)
    path.write_text("\n".join(lines) + "\n")
    return events


def assert_same_model(actual: dict[str, Any], expected: dict[str, Any], atol: float) -> None:
    """Two snapshots' parameters score alike, whatever the model kind."""
    assert actual["kind"] == expected["kind"]
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(200, len(actual["scaler_mean"])))
    buckets = rng.integers(-1, actual["hash_buckets"], size=(200, 3))
    np.testing.assert_allclose(Model.from_parameters(actual).predict_proba(dense, buckets),
                               Model.from_parameters(expected).predict_proba(dense, buckets), atol=atol)


def outputs(out: Path, name: str) -> list[dict[str, Any]]:
    return list(read_jsonl_dir(out / name))


def differing_predictions(committed: list[dict[str, Any]], library_predictions: list[str]
                          ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(the job's, library mode's) for each committed prediction whose model version or score (to
    1e-9) is not library mode's, the earliest event first. Check the two id sets first."""
    expected = {p["event_id"]: p for p in map(json.loads, library_predictions)}
    pairs = ((p, expected[p["event_id"]]) for p in committed)
    return sorted(((p, w) for p, w in pairs
                   if p["model_version"] != w["model_version"] or abs(p["score"] - w["score"]) >= 1e-9),
                  key=lambda pair: pair[0]["event_time"])


class MlflowServer:
    """A real tracking server: sqlite backend store, artifacts proxied through the server.

    ``stop`` and ``start`` again on the same port and store: how an outage looks to clients.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1"]
        log_file = self.root / "server.log"
        # Its own process group: stopping it must stop its web workers too, or the "outage" is not one.
        self.proc = subprocess.Popen(cmd, stdout=log_file.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.healthy, MLFLOW_START_TIMEOUT_S, f"mlflow server on {self.url}", 0.5)
        return self

    def healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, \
            f"mlflow server exited: {(self.root / 'server.log').read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server.start().url
    finally:
        server.stop()


def write_parquet(path: Path, events: list[dict[str, Any]]) -> None:
    """``events`` as a Parquet file of the JSON schema's columns, ``features`` as a struct column
    (pyarrow orders its fields by name) and ``event_time`` as epoch milliseconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from udfs.features.events import parse_time

    pq.write_table(pa.Table.from_pylist([{**e, "event_time": parse_time(e["event_time"])} for e in events]), path)
