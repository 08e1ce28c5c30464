"""The one MLflow run of a job execution, created by the client before the job starts."""

from __future__ import annotations

import sys
from pathlib import Path

from mlflow.entities import Param, RunStatus
from mlflow.tracking import MlflowClient

from conf.settings import Settings
from udfs.mlflow_reporter import MlflowReporter


def tracking_uri(settings: Settings) -> str:
    """The configured server, or a local sqlite store beside the job's outputs."""
    return settings.mlflow.tracking_uri or f"sqlite:///{settings.output_dir() / 'mlflow.db'}"


def ui_command(settings: Settings) -> str:
    uri = tracking_uri(settings)
    if uri.startswith("sqlite:"):
        return f"{sys.executable} -m mlflow ui --backend-store-uri {uri} --port 5000"
    return f"open {uri} in a browser"


def start_run(settings: Settings) -> str:
    client = MlflowClient(tracking_uri(settings))
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        artifacts = None
        if tracking_uri(settings).startswith("sqlite:"):
            artifacts = (settings.output_dir() / "mlartifacts").as_uri()
        experiment_id = client.create_experiment(settings.mlflow.experiment, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, run_name=settings.job.name, tags={"job": settings.job.name})
    params = [Param(key, value[:6000]) for key, value in settings.flat().items()]
    for start in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[start:start + 100])
    return run.info.run_id


def reopen_run(settings: Settings, run_id: str) -> str:
    """A resumed job logs into the run it was stopped in: same steps, no window twice."""
    MlflowClient(tracking_uri(settings)).update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    return run_id


def finish_run(settings: Settings, run_id: str, succeeded: bool) -> None:
    status = RunStatus.to_string(RunStatus.FINISHED if succeeded else RunStatus.FAILED)
    MlflowClient(tracking_uri(settings)).set_terminated(run_id, status)


def reconcile(settings: Settings, run_id: str, snapshots: list[dict]) -> int:
    """After a bounded run: make sure every window and the final champion reached MLflow."""
    m = settings.mlflow
    reporter = MlflowReporter(tracking_uri(settings), run_id, m.registered_model, m.register_every_windows, 1)
    return reporter.reconcile(snapshots, m.flush_timeout_s)


def summary_artifact(settings: Settings, run_id: str, summary_file: Path) -> None:
    MlflowClient(tracking_uri(settings)).log_artifact(run_id, str(summary_file))
