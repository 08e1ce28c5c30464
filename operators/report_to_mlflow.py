"""Hands each snapshot to the background MLflow reporter and passes it on as JSON."""

from __future__ import annotations

import json
import logging
from typing import Any

from pyflink.datastream.functions import MapFunction, RuntimeContext

from conf.settings import Settings


class ReportToMlflow(MapFunction):
    def __init__(self, settings: Settings, tracking_uri: str, run_id: str) -> None:
        self.settings = settings
        self.tracking_uri = tracking_uri
        self.run_id = run_id

    def open(self, runtime_context: RuntimeContext) -> None:
        # Imported here, in the worker: the client that builds the graph does not load MLflow.
        from udfs.tracking.mlflow_reporter import MlflowReporter
        _log_without_stderr()
        m = self.settings.mlflow
        self.reporter = MlflowReporter(self.tracking_uri, self.run_id, m.registered_model,
                                       m.register_every_windows, m.queue_size).start()

    def map(self, snapshot: dict[str, Any]) -> str:
        self.reporter.submit(snapshot)
        return json.dumps(snapshot)

    def close(self) -> None:
        self.reporter.close(self.settings.mlflow.flush_timeout_s)


def _log_without_stderr() -> None:
    """MLflow's log records and Python warnings go to Flink's log, not to ``sys.stderr``.

    In thread mode ``sys.stderr`` is pemja's bridge to Java's ``System.err``, and a write to it from
    the reporter's own thread blocked for good (an MLflow store on a full disk logs every failed
    call with its traceback): the task stayed INITIALIZING after the restart and the job hung
    instead of failing. The root logger's handler, which PyFlink installs, already carries the
    reporter's own messages from that thread to Flink's log.
    """
    mlflow_log = logging.getLogger("mlflow")
    for handler in list(mlflow_log.handlers):
        if isinstance(handler, logging.StreamHandler):
            mlflow_log.removeHandler(handler)
    mlflow_log.propagate = True
    logging.captureWarnings(True)
