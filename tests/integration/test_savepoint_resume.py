"""Stop the running job with a savepoint (Ctrl-C), resume it with --resume: the outcome is that of
a run that never stopped (library mode gives that run; a test elsewhere shows it equals the job)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from mlflow.tracking import MlflowClient

from conf.settings import load_settings
from jobs.progress import lines_written
from jobs.run_summary import read_snapshots
from scripts.broker import wait_until
from tests.integration.conftest import (REPO, assert_same_model, differing_predictions, job_command, outputs,
                                       run_job, write_stream)
from udfs.offline.library_mode import run_library
from udfs.sim.stream_generator import StreamSpec
from udfs.tracking.mlflow_reporter import window_step

# A stream the MLP finds no concept drift in, so that its versions follow each other with no gap, as the
# checks of the versions below expect (a fast-mode update the gate blocks takes a version and leaves no
# snapshot): 30,000 events over 3 or 6 hours switch fast mode on, these 40,000 do not.
SPEC = StreamSpec(n_events=40_000, n_users=2_000, duration_s=6 * 3600.0, seed=19)
# The readers slowed to 0.75 s a chunk of 2,000 lines (15 s for the stream): the stop lands mid-stream.
SLOW = ("--slow-reader", "750")
OVERRIDES = ("job.checkpoint_interval_ms=2000", "mlflow.register_every_windows=100")


def test_stop_with_savepoint_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    # The MLP: the model kind with the most state (torch weights and optimizer). Stop, savepoint and
    # resume do not depend on the kind; the default kind's state goes through a restore in
    # test_job_end_to_end.py::test_failure_mid_stream_recovers_with_exactly_once_output_and_same_model.
    kind = "mlp"
    overrides = (*OVERRIDES, f"model.kind={kind}")
    events = write_stream(tmp_path / "events.jsonl", SPEC)
    out = tmp_path / "out"
    first = subprocess.Popen(job_command(tmp_path / "events.jsonl", out, *overrides, module="tests.faulty_job") +
                             list(SLOW), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: lines_written(out / "predictions") >= 4_000 or first.poll() is not None, 300,
                   "the first 4,000 predictions", 0.2)
        first.send_signal(signal.SIGINT)
        stdout, _ = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, stdout[-4000:]
    match = re.search(r"stopped; savepoint (\S+)", stdout)
    assert match, f"no savepoint reported:\n{stdout[-4000:]}"
    assert (Path(urlparse(match.group(1)).path) / "schema.json").is_file(), "the savepoint should keep the schema"
    before = len(outputs(out, "predictions"))
    assert 0 < before < len(events), f"the stop should land mid-stream ({before} of {len(events)} committed)"
    versions_before = [s["trained_version"] for s in read_snapshots(out)]
    assert versions_before, "no snapshot committed before the stop"
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    stopped = client.search_runs([client.get_experiment_by_name("online-learning").experiment_id])[0]
    assert stopped.info.status == "KILLED", "a job stopped with a savepoint must end its run"
    assert stopped.data.tags["savepoint"] == match.group(1)
    assert stopped.data.tags["end_reason"].startswith("stopped with a savepoint")

    resumed = run_job(tmp_path / "events.jsonl", out, *overrides, resume=match.group(1))
    assert "resuming from" in resumed.stdout

    library = run_library(load_settings(overrides=[f"model.kind={kind}"]), (tmp_path / "events.jsonl").read_text().splitlines())
    expected = {p["event_id"]: p for p in map(json.loads, library.predictions)}
    committed = outputs(out, "predictions")
    counts = Counter(p["event_id"] for p in committed)
    assert set(counts) == set(expected) and max(counts.values()) == 1, "lost or doubled predictions"
    differing = differing_predictions(committed, library.predictions)
    assert not differing, (f"{len(differing)} of {len(committed)} predictions differ from library mode's; "
                           f"the earliest (job, library): {differing[0]}")

    snapshots = read_snapshots(out)
    assert [s["trained_version"] for s in snapshots] == list(range(1, len(library.snapshots) + 1))
    assert versions_before == list(range(1, len(versions_before) + 1)), "versions restart or skip"
    assert_same_model(snapshots[-1]["parameters"], library.snapshots[-1]["parameters"], atol=1e-6)

    runs = client.search_runs([client.get_experiment_by_name("online-learning").experiment_id])
    assert len(runs) == 1, "the resumed job should log into the stopped job's run"
    steps = Counter(m.step for m in client.get_metric_history(runs[0].info.run_id, "logloss"))
    assert sorted(steps) == [window_step(s) for s in snapshots if "logloss" in s["metrics"] and s["update"] == "window"]
    assert max(steps.values()) == 1, "a window logged twice"
    assert runs[0].info.status == "FINISHED"
