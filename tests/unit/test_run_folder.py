"""The output folder's lock and run record: who may write there, and where a resume must continue from."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conf.settings import DEFAULT_CONFIG, SettingsError, load_settings
from jobs.run_folder import LOCK_FILE, RunLock, RunRecord, check_resume_point


def test_a_second_lock_on_a_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    held = RunLock(tmp_path, "run-a").acquire()
    with pytest.raises(SettingsError, match="in use by run run-a"):
        RunLock(tmp_path, "run-b").acquire()
    held.release()
    RunLock(tmp_path, "run-b").acquire().release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = {"run_id": "dead", "pid": int(gone.stdout), "host": socket.gethostname()}
    (tmp_path / LOCK_FILE).write_text(json.dumps(lock))
    RunLock(tmp_path, "mine").acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["run_id"] == "mine"


def test_a_resume_must_start_where_the_committed_outputs_end(tmp_path: Path) -> None:
    newer = tmp_path / "checkpoints" / "job1" / "chk-7"
    for chk in (tmp_path / "checkpoints" / "job1" / "chk-5", newer):
        chk.mkdir(parents=True)
        (chk / "_metadata").write_text("")
    killed = RunRecord("r", state="running", newest="file:/sp/savepoint-1", job_ids=["job1"])
    check_resume_point(killed, str(newer), tmp_path, tmp_path / "checkpoints")
    for older in ("file:/sp/savepoint-1", str(tmp_path / "checkpoints" / "job1" / "chk-5")):
        with pytest.raises(SettingsError, match=f"resume from {newer.as_uri()}"):
            check_resume_point(killed, older, tmp_path, tmp_path / "checkpoints")
    with pytest.raises(SettingsError, match="has finished"):
        check_resume_point(RunRecord("r", state="finished"), "file:/sp/savepoint-1", tmp_path, tmp_path)


def test_each_profile_has_its_own_default_output_folder() -> None:
    kafka = load_settings(DEFAULT_CONFIG.with_name("kafka-cluster.yaml"))
    assert kafka.output_dir() != load_settings(DEFAULT_CONFIG).output_dir()
