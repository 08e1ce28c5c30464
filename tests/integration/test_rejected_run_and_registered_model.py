"""One small job run whose input is mostly unusable (labels the job rejects): it exits 1 with the top
reasons and its MLflow run ends FAILED; its registered model then loads as the printed lines say
(the tracking URI exported), takes input built from raw events, integer columns included, and refuses
an unknown column."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conf.settings import load_settings
from jobs.run_summary import read_snapshots
from tests.integration.conftest import JOB_TIMEOUT_S, REPO, job_command, write_stream
from udfs.learning.model import Model
from udfs.sim.stream_generator import StreamSpec, generate_events
from udfs.tracking.pyfunc_input import model_input
from udfs.tracking.pyfunc_model import score_frame

SPEC = StreamSpec(n_events=2_000, n_users=150, duration_s=1800.0, seed=13)
REJECTED = 2_500  # events with a label of 2: valid JSON, a user and a time, dead-lettered as bad_label

LOAD = """
import json
import sys
import mlflow
import pandas as pd
model = mlflow.pyfunc.load_model("models:/online-learning-model@champion")
frame = pd.read_json(sys.argv[1], orient="split")
print(json.dumps([float(p) for p in model.predict(frame)]))
frame["amout"] = 1.0
try:
    model.predict(frame)
except Exception as exc:
    print("refused:", exc)
"""


@pytest.fixture(scope="module")
def rejected_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("rejected")
    valid = list(generate_events(SPEC))
    bad = [json.dumps({**valid[k % len(valid)], "event_id": f"bad-{k}", "label": 2}) for k in range(REJECTED)]
    events = write_stream(tmp / "events.jsonl", SPEC, bad_lines=bad)
    cmd = job_command(tmp / "events.jsonl", tmp / "out")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    return proc, tmp / "out", events


def test_a_run_below_the_valid_share_exits_1_with_the_reasons_and_a_failed_mlflow_run(rejected_run):
    proc, out, _ = rejected_run
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    reason = (f"only {2_000 / 4_500:.1%} of the 4,500 events read were valid (validation.min_valid_share=0.5); "
              "dead letters: bad_label x 2,500")
    assert f"error: {reason}" in proc.stderr
    assert proc.stdout.count("features         ") == 1, "the features line once, at start-up"
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    run = client.get_run((out / "mlflow_run_id").read_text().strip())
    assert run.info.status == "FAILED" and run.data.tags["end_reason"] == reason


def test_the_registered_model_loads_with_the_printed_uri_and_scores_raw_events(rejected_run, tmp_path):
    proc, out, events = rejected_run
    exported = re.search(r"export MLFLOW_TRACKING_URI=(\S+), then", proc.stdout)
    assert exported and exported.group(1) == f"sqlite:///{out / 'mlflow.db'}", proc.stdout[-2000:]
    run_id = (out / "mlflow_run_id").read_text().strip()
    assert re.search(rf"MLflow run       http://127\.0\.0\.1:5000/#/experiments/\d+/runs/{run_id}\n", proc.stdout)

    schema = json.loads((out / "schema.json").read_text())
    settings = load_settings(overrides=[f"features.numeric={json.dumps(schema['numeric'])}",
                                        f"features.categorical={json.dumps(schema['categorical'])}"])
    frame = model_input([json.dumps(e) for e in events[:50]], settings)
    buckets = [c for c in frame.columns if c.startswith("hash_bucket_")]
    frame[buckets] = frame[buckets].astype(np.int64)  # integer columns, as a user's frame may have them
    frame.to_json(tmp_path / "frame.json", orient="split")
    loaded = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "frame.json")], cwd=tmp_path,
                            env={**os.environ, "MLFLOW_TRACKING_URI": exported.group(1)},
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    scores, refused = loaded.stdout.strip().splitlines()[-2:]
    champion = read_snapshots(out)[-1]
    expected = score_frame(champion, Model.from_parameters(champion["parameters"]), frame.astype(float))
    np.testing.assert_allclose(json.loads(scores), expected, rtol=1e-9)
    assert refused.startswith("refused: unknown input columns ['amout']"), refused
    assert not (tmp_path / "mlflow.db").exists(), "loading must not create an empty store where it runs"
