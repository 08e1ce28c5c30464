"""`flink_cluster.py` without a cluster: a refused submit reads as the local job's one-line error, and a job's
end reaches its output folder's run record."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from jobs.run_folder import RunRecord
from scripts import flink_cluster

REFUSAL = ("--output /x/out-kafka: holds the results of the running run abc; --overwrite replaces them, "
           "or choose another --output")
# What `flink run -py` printed when the job's client refused to start (flink run exits 31).
FLINK_RUN_OUTPUT = f"""error: {REFUSAL}
org.apache.flink.client.program.ProgramAbortException: java.lang.RuntimeException: Python process exits with code: 2
\tat org.apache.flink.client.python.PythonDriver.main(PythonDriver.java:140)
\tat org.apache.flink.client.cli.CliFrontend.main(CliFrontend.java:1323)
Caused by: java.lang.RuntimeException: Python process exits with code: 2
\tat org.apache.flink.client.python.PythonDriver.main(PythonDriver.java:130)
\t... 15 more
"""


def test_a_refused_submit_prints_the_clients_error_line_alone_and_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(flink_cluster.subprocess, "run", lambda cmd, **_: subprocess.CompletedProcess(
        cmd, 31, stdout="", stderr=FLINK_RUN_OUTPUT))
    (tmp_path / "one.jar").write_bytes(b"")
    (tmp_path / "job_helper.py").write_text("")
    code = flink_cluster.main(["submit", "--rest-address", "localhost:1", "--jars", str(tmp_path / "one.jar"),
                               "--pyfiles", str(tmp_path / "job_helper.py"),
                               "--", "--config", "conf/kafka-cluster.yaml"])
    assert code == 2
    assert capsys.readouterr().err == f"error: {REFUSAL}\n"


def test_submit_remembers_the_jobs_mlflow_run_and_output_folder(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    job_id, run_id = "a" * 32, "b" * 32
    said = f"submitted; JobID {job_id}; MLflow run {run_id} at http://127.0.0.1:5000; outputs /x/out kafka\n"
    monkeypatch.setattr(flink_cluster.subprocess, "run", lambda cmd, **_: subprocess.CompletedProcess(
        cmd, 0, stdout=said, stderr=""))
    monkeypatch.setattr(flink_cluster, "SUBMITTED", tmp_path / "submitted.json")
    assert flink_cluster.submit(rest="localhost:1", jars=[], pyfiles=[]) == job_id
    assert json.loads(flink_cluster.SUBMITTED.read_text()) == {
        job_id: {"run_id": run_id, "tracking_uri": "http://127.0.0.1:5000", "output": "/x/out kafka"}}


def test_a_job_argument_the_client_does_not_know_is_argparses_one_line() -> None:
    said = ("usage: python -m jobs.online_learning [-h] [--config CONFIG]\n"
            "python -m jobs.online_learning: error: unrecognized arguments: --resum sp\n"
            + FLINK_RUN_OUTPUT.split("\n", 1)[1])
    refused = flink_cluster.client_error(said)
    assert (str(refused), refused.exit_code) == ("unrecognized arguments: --resum sp", 2)


def test_a_client_that_said_nothing_of_its_own_leaves_flink_runs_output() -> None:
    assert flink_cluster.client_error("org.apache.flink...: Python process exits with code: 1\nTraceback ...") is None
    assert flink_cluster.client_error("error: not from the client\njava.net.ConnectException") is None


@pytest.mark.parametrize(("flink_state", "recorded"), [("CANCELED", "cancelled"), ("FAILED", "failed"),
                                                       ("FINISHED", "finished")])
def test_a_job_that_ended_ends_its_folders_run_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      flink_state: str, recorded: str) -> None:
    out, later = tmp_path / "out", tmp_path / "replaced"
    for folder, job_id in ((out, "job-a"), (later, "job-c")):
        folder.mkdir()
        RunRecord("r", state="running", job_ids=[job_id]).save(folder)
    checkpoint = out / "checkpoints" / "job-a" / "chk-3"
    checkpoint.mkdir(parents=True)
    (checkpoint / "_metadata").write_text("")
    # job-b's folder was taken over by a later run (--overwrite) whose own job still runs
    submitted = {"job-a": {"output": str(out)}, "job-b": {"output": str(later)}}
    monkeypatch.setattr(flink_cluster, "SUBMITTED", tmp_path / "submitted.json")
    flink_cluster.SUBMITTED.write_text(json.dumps(submitted))
    monkeypatch.setattr(flink_cluster, "job_status", lambda job_id, rest=None: flink_state)
    monkeypatch.setattr(flink_cluster, "stopped_with_savepoint", lambda job_id, rest=None: None)

    flink_cluster.end_runs("localhost:1")
    assert RunRecord.load(out).state == recorded
    retained = None if recorded == "finished" else checkpoint.as_uri()  # what `--resume` continues the run from
    assert RunRecord.load(out).resume_point(out / "checkpoints") == retained
    assert RunRecord.load(later).state == "running"


def test_a_job_stopped_with_a_savepoint_leaves_its_record_to_continue_from_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    RunRecord("r", state="running", job_ids=["job-a"]).save(tmp_path)
    monkeypatch.setattr(flink_cluster, "SUBMITTED", tmp_path / "submitted.json")
    flink_cluster.SUBMITTED.write_text(json.dumps({"job-a": {"output": str(tmp_path)}}))
    monkeypatch.setattr(flink_cluster, "job_status", lambda job_id, rest=None: "FINISHED")
    monkeypatch.setattr(flink_cluster, "stopped_with_savepoint", lambda job_id, rest=None: "file:/sp/savepoint-1")

    flink_cluster.end_runs("localhost:1")
    record = RunRecord.load(tmp_path)
    assert (record.state, record.resume_point(tmp_path / "checkpoints")) == ("stopped", "file:/sp/savepoint-1")


def test_a_stopped_jobs_end_leaves_the_mlflow_run_its_resumed_job_carries_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jobs.mlflow_run

    run = {"run_id": "r", "tracking_uri": "http://mlflow"}
    monkeypatch.setattr(flink_cluster, "SUBMITTED", tmp_path / "submitted.json")
    flink_cluster.SUBMITTED.write_text(json.dumps({"stopped": run, "resumed": run}))
    monkeypatch.setattr(flink_cluster, "job_status",
                        lambda job_id, rest=None: {"stopped": "FINISHED"}.get(job_id, "RUNNING"))
    monkeypatch.setattr(flink_cluster, "stopped_with_savepoint", lambda job_id, rest=None: "file:/sp/savepoint-1")
    monkeypatch.setattr(jobs.mlflow_run, "run_state", lambda uri, run_id: ("RUNNING", "resumed"))
    ended: list[tuple] = []
    monkeypatch.setattr(jobs.mlflow_run, "end_run", lambda *args: ended.append(args))

    assert flink_cluster.end_runs("localhost:1") == {"stopped": "RUNNING", "resumed": "RUNNING"}
    assert ended == [], "the stopped job ended the run its resumed job logs into"
