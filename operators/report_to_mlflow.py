"""Hands each snapshot to the background MLflow reporter and passes it on as JSON."""

from __future__ import annotations

import json
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
        m = self.settings.mlflow
        self.reporter = MlflowReporter(self.tracking_uri, self.run_id, m.registered_model,
                                       m.register_every_windows, m.queue_size).start()

    def map(self, snapshot: dict[str, Any]) -> str:
        self.reporter.submit(snapshot)
        return json.dumps(snapshot)

    def close(self) -> None:
        self.reporter.close(self.settings.mlflow.flush_timeout_s)
