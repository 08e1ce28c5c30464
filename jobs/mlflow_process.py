"""The client's MLflow calls, made in a child interpreter that exits when they are done.

The client waits on the job for the whole run and calls MLflow only before the job starts and
after it ends. Imported in the client, MLflow (with SQLAlchemy and pandas) would stay resident
there all along: about 200 MB of the job's peak memory, for a handful of calls. So each group of
calls runs in a spawned interpreter; ``jobs.mlflow_run`` holds the calls and is imported only there.

A step is the name of a function in ``jobs.mlflow_run``; its arguments and result cross by pickle,
and so does an exception it raises (a ``SettingsError`` stays one).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType
from typing import Any

from conf.settings import Settings


def tracking_uri(settings: Settings) -> str:
    """The configured server, or a local sqlite store beside the job's outputs."""
    return settings.mlflow.tracking_uri or f"sqlite:///{settings.output_dir() / 'mlflow.db'}"


def ui_command(settings: Settings) -> str:
    uri = tracking_uri(settings)
    if uri.startswith("sqlite:"):
        return f"{sys.executable} -m mlflow ui --backend-store-uri {uri} --port 5000"
    return f"open {uri} in a browser"


class MlflowProcess:
    """One child interpreter for a group of steps, started by the first ``call``, ended by ``with``'s exit."""

    def __enter__(self) -> MlflowProcess:
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_child_start)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.pool.shutdown()

    def call(self, step: str, *args: Any) -> Any:
        """``jobs.mlflow_run.<step>(*args)`` in the child; its result, or the exception it raised."""
        return self.pool.submit(_run_step, step, args).result()


def call_once(step: str, *args: Any) -> Any:
    """One step in a child of its own."""
    with MlflowProcess() as mlflow:
        return mlflow.call(step, *args)


def _child_start() -> None:
    # Ctrl-C is the client's to handle (it stops the job with a savepoint, then ends the run here).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # MLflow's INFO lines (database set-up, example validation) say nothing a user can act on.
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def _run_step(step: str, args: tuple[Any, ...]) -> Any:
    from jobs import mlflow_run  # the child's import, not the client's
    return getattr(mlflow_run, step)(*args)
