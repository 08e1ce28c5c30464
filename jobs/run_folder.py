"""An output folder belongs to one run: a lock while a job writes into it, and a record of the run.

The record (``run.json``) says which run the folder's results are of, how far the run has committed
(the savepoint or checkpoint that continues it exactly), what state-shaping settings the run's state
was made with and which input files (names and sizes) it reads. The client reads it before a job
starts, so that a second job, a re-run of an old ``--resume`` or a resume that changed the
configuration or the input is refused before it can lose or double a record.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from conf.settings import SettingsError

LOCK_FILE = ".run.lock"
RECORD_FILE = "run.json"
SETTINGS_FILE = "settings.json"  # the state-shaping settings, also beside every savepoint (like schema.json)


@dataclass
class RunRecord:
    """What the output folder holds: one run's results.

    ``newest``: the savepoint or checkpoint (a URI) that continues the run where its committed outputs
    end; None before the first commit. ``state``: running, stopped, cancelled, failed or finished.
    """

    run_id: str
    state: str = "running"
    newest: str | None = None
    job_ids: list[str] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)  # input file -> size in bytes at the run's start

    @staticmethod
    def load(out: Path) -> RunRecord | None:
        path = out / RECORD_FILE
        return RunRecord(**json.loads(path.read_text())) if path.is_file() else None

    def resume_point(self, checkpoint_dir: Path) -> str | None:
        """Where the run continues from: its savepoint, or, if its last job was killed, cancelled or
        failed, that job's newest completed checkpoint (the one its committed outputs end at)."""
        if self.state in ("running", "cancelled", "failed") and self.job_ids:
            return newest_checkpoint(checkpoint_dir, self.job_ids[-1]) or self.newest
        return self.newest

    def save(self, out: Path) -> None:
        path = out / RECORD_FILE
        tmp = path.with_name(f".{RECORD_FILE}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)


@dataclass(frozen=True)
class RunLock:
    """``output.path/.run.lock`` while a job of ``run_id`` writes there; created atomically, so of two
    jobs started on one folder only one gets it. A lock whose process is gone (SIGKILL, power loss on
    this host) is stale and taken over."""

    out: Path
    run_id: str

    def acquire(self) -> RunLock:
        path = self.out / LOCK_FILE
        mine = json.dumps({"run_id": self.run_id, "pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_lock(path)
                if holder is not None and not _stale(holder):
                    raise SettingsError(
                        f"--output {self.out}: in use by run {holder.get('run_id')} (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('started')}); wait for it to end or choose "
                        f"another --output (if that process is gone for good, delete {path})") from None
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(mine)
            return self
        raise SettingsError(f"--output {self.out}: could not take the lock {path}; another job took it meanwhile")

    def release(self) -> None:
        path = self.out / LOCK_FILE
        holder = _read_lock(path)
        if holder is not None and holder.get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {}  # half-written by a process that died while writing it: stale


def _stale(holder: dict) -> bool:
    """The lock's process is gone: only decidable on the host that took it."""
    if not holder or "pid" not in holder:
        return True
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def end_record(out: Path, job_id: str, state: str, newest: str | None = None) -> None:
    """Marks the run in ``out`` ended (``state``; ``newest``: its savepoint) if its record still says its
    job ``job_id`` runs. A detached job's client has exited before the job ends, so the tool that
    cancels or watches it ends the record; a later run's record (``--overwrite``) is left alone."""
    record = RunRecord.load(out)
    if record is None or record.state != "running" or record.job_ids[-1:] != [job_id]:
        return
    record.state, record.newest = state, newest or record.newest
    record.save(out)


def holds_results(out: Path, names: tuple[str, ...]) -> bool:
    """Whether ``out`` holds another run's results: a run record, or any file under the output folders."""
    return (out / RECORD_FILE).is_file() or any(
        f.is_file() for name in names if (out / name).is_dir() for f in (out / name).rglob("*"))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def same_location(a: str, b: str) -> bool:
    """Two savepoint/checkpoint locations, as URIs or paths, name the same folder.

    >>> same_location("file:/tmp/out/savepoints/savepoint-1", "/tmp/out/savepoints/savepoint-1/")
    True
    """
    path = lambda uri: urlparse(uri).path.rstrip("/") if urlparse(uri).scheme in ("", "file") else uri  # noqa: E731
    return path(a) == path(b)


def newest_checkpoint(checkpoint_dir: Path, job_id: str) -> str | None:
    """The newest completed checkpoint (``chk-N`` with its ``_metadata``) of a job, as a URI."""
    done = [c for c in (checkpoint_dir / job_id).glob("chk-*") if (c / "_metadata").is_file()]
    if not done:
        return None
    return max(done, key=lambda c: int(c.name.removeprefix("chk-"))).as_uri()


def check_resume_point(record: RunRecord, given: str, out: Path, checkpoint_dir: Path) -> None:
    """A resume must continue from where the committed outputs end: from an older point, the records
    since then would be written twice."""
    if record.state == "finished":
        raise SettingsError(f"--resume {given}: the run in {out} has finished (every input line is committed); "
                            "resuming it again would write its outputs twice. Start a new run with --overwrite, "
                            "or into another --output")
    newest = record.resume_point(checkpoint_dir)
    if newest is not None and not same_location(given, newest):
        raise SettingsError(f"--resume {given}: older than what {out} has committed; resume from {newest} "
                            "(or add --overwrite to drop the outputs and start them over from the given point)")
