"""The client's MLflow calls, made in a child interpreter that exits when they are done.

The client waits on the job for the whole run and calls MLflow only before the job starts and
after it ends. Imported in the client, MLflow (with SQLAlchemy and pandas) would stay resident
there all along: about 200 MB of the job's peak memory, for a handful of calls. So each group of
calls runs in a child (``python -m jobs.mlflow_process``) that imports ``jobs.mlflow_run`` and
nothing of the client's. A plain pipe, not multiprocessing: that would keep a resource-tracker
process alive for the whole run (12 MB) and re-import the client's main module in the child.

A step is the name of a function in ``jobs.mlflow_run``; its arguments and result cross the pipe
by pickle, and so does an exception it raises (a ``SettingsError`` stays one), with the child's
traceback as a note.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from conf.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def tracking_uri(settings: Settings) -> str:
    """The configured server, or a local sqlite store beside the job's outputs."""
    return settings.mlflow.tracking_uri or f"sqlite:///{settings.output_dir() / 'mlflow.db'}"


UI_PORT = 5000  # of the printed `mlflow ui` command for a local store


def ui_command(settings: Settings) -> str:
    uri = tracking_uri(settings)
    if uri.startswith("sqlite:"):
        return f"{sys.executable} -m mlflow ui --backend-store-uri {uri} --port {UI_PORT}"
    return f"open {uri} in a browser"


def ui_address(settings: Settings) -> str:
    """Where the MLflow UI answers: the `mlflow ui` command's for a local store, else the server's."""
    uri = tracking_uri(settings)
    return f"http://127.0.0.1:{UI_PORT}" if uri.startswith("sqlite:") else uri.rstrip("/")


class MlflowProcess:
    """One child interpreter for a group of steps, started by ``start`` or the first ``call``, ended by
    ``with``'s exit."""

    def __enter__(self) -> MlflowProcess:
        self.child: subprocess.Popen | None = None
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.child is not None:
            self.child.stdin.close()  # the child's loop ends at end of input
            self.child.wait()
            self.child.stdout.close()

    def start(self) -> None:
        """Starts the child now, so that its imports (seconds: MLflow, SQLAlchemy) overlap the caller's
        work until the first ``call``."""
        if self.child is None:
            path = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
            self.child = subprocess.Popen([sys.executable, "-m", "jobs.mlflow_process"], cwd=PROJECT_ROOT,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          env={**os.environ, "PYTHONPATH": path})

    def call(self, step: str, *args: Any) -> Any:
        """``jobs.mlflow_run.<step>(*args)`` in the child; its result, or the exception it raised."""
        self.start()
        pickle.dump((step, args), self.child.stdin)
        self.child.stdin.flush()
        try:
            failed, value = pickle.load(self.child.stdout)
        except EOFError:
            raise RuntimeError(f"the MLflow child process exited (code {self.child.wait()}) during '{step}'; "
                               "its error is printed above") from None
        if failed:
            raise value
        return value


def call_once(step: str, *args: Any) -> Any:
    """One step in a child of its own."""
    with MlflowProcess() as mlflow:
        return mlflow.call(step, *args)


def _serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: one pickled (step, args) in, one pickled (failed, result or exception) out."""
    from jobs import mlflow_run
    # MLflow's INFO lines (database set-up, example validation) say nothing a user can act on; its
    # import sets its logger's level, so this comes after.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # A store error (a full disk) is logged there with its whole traceback before it is raised; the
    # client reports the raised error in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    while True:
        try:
            step, args = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = (False, getattr(mlflow_run, step)(*args))
        except Exception as exc:
            exc.add_note(f"in the MLflow child process:\n{traceback.format_exc()}")
            reply = (True, exc)
        try:
            data = pickle.dumps(reply)
        except Exception as exc:  # an exception that does not pickle: its text does
            data = pickle.dumps((True, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} ({exc})")))
        replies.write(data)
        replies.flush()


if __name__ == "__main__":
    # Ctrl-C is the client's to handle (it stops the job with a savepoint, then ends the run here).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The pipe is the replies' alone: anything the steps print goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, replies)
