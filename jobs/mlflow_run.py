"""The one MLflow run of a job execution, created by the client before the job starts.

The client calls these through ``jobs.mlflow_process`` (in a child interpreter, so that MLflow
does not stay loaded in the client while the job runs); scripts call them directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import urlopen

import mlflow
from mlflow.entities import Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from conf.settings import Settings, SettingsError
from jobs.mlflow_process import tracking_uri, ui_address
from udfs.tracking.mlflow_reporter import MlflowReporter
from udfs.tracking.pyfunc_model import SNAPSHOT_ARTIFACT

RunEnd = Literal["FINISHED", "FAILED", "KILLED"]


SERVER_CHECK_TIMEOUT_S = 5.0


def check_server(settings: Settings) -> None:
    """A tracking server that does not answer stops the job at once, naming the setting: MLflow's
    own client retries a refused connection for about four minutes before it gives up.

    >>> from conf.settings import load_settings
    >>> check_server(load_settings(overrides=["mlflow.tracking_uri=http://127.0.0.1:9"]))
    Traceback (most recent call last):
    conf.settings.SettingsError: mlflow.tracking_uri=http://127.0.0.1:9: no MLflow server answers (...
    """
    uri = settings.mlflow.tracking_uri
    if not uri or urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        urlopen(f"{uri.rstrip('/')}/health", timeout=SERVER_CHECK_TIMEOUT_S).close()
    except HTTPError:
        return  # it answers, if not on this path (a proxy, another version): MLflow's calls will tell
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SettingsError(f"mlflow.tracking_uri={uri}: no MLflow server answers ({reason}); start the server, "
                            "or leave mlflow.tracking_uri out to log to a local store under output.path") from None


def open_run(settings: Settings, id_file: Path, schema_description: str, schema_file: Path) -> str:
    """The job's run: a new one, its id kept in ``id_file`` and the schema logged; or on --resume
    the run the stopped job was logging to."""
    check_server(settings)
    resuming = settings.job.resume_from is not None
    if resuming and id_file.exists():
        return reopen_run(settings, id_file.read_text().strip(), settings.job.resume_from)
    run_id = start_run(settings)
    id_file.write_text(run_id)
    if not resuming:
        log_schema(settings, run_id, schema_description, schema_file)
    return run_id


def start_run(settings: Settings, run_name: str | None = None) -> str:
    client = MlflowClient(tracking_uri(settings))
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        artifacts = None
        if tracking_uri(settings).startswith("sqlite:"):
            artifacts = (settings.output_dir() / "mlartifacts").as_uri()
        experiment_id = client.create_experiment(settings.mlflow.experiment, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    run = client.create_run(experiment_id, run_name=run_name or settings.job.name, tags={"job": settings.job.name})
    params = [Param(key, value[:6000]) for key, value in settings.flat().items()]
    for start in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[start:start + 100])
    return run.info.run_id


def fetch_warm_start(settings: Settings, dest: Path) -> Path:
    """Downloads the snapshot behind ``model.warm_start`` (a models:/ or runs:/ URI) to ``dest``."""
    uri = settings.model.warm_start
    check_server(settings)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=_artifact_uri(settings, uri),
                                                    tracking_uri=tracking_uri(settings))
    except MlflowException as exc:
        raise SettingsError(f"model.warm_start={uri}: not found in MLflow at {tracking_uri(settings)} "
                            f"({exc.message.splitlines()[0]}); list models with the MLflow UI") from None
    found = list(Path(local).rglob(f"{SNAPSHOT_ARTIFACT}*.json"))
    if not found:
        raise SettingsError(f"model.warm_start={uri}: not a model logged by this job (no snapshot artifact)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(found[0].read_text())
    return dest


def _artifact_uri(settings: Settings, uri: str) -> str:
    """models:/NAME@ALIAS or models:/NAME/VERSION -> where the version's files are, on the job's server."""
    if not uri.startswith("models:/"):
        return uri
    name, _, ref = uri.removeprefix("models:/").partition("@")
    client = MlflowClient(tracking_uri(settings), registry_uri=tracking_uri(settings))
    if ref:
        version = client.get_model_version_by_alias(name, ref).version
    else:
        name, _, version = name.rpartition("/")
    return client.get_model_version_download_uri(name, version)


END_REASON_TAG = "end_reason"
SAVEPOINT_TAG = "savepoint"
FLINK_JOB_TAG = "flink_job_id"


def reopen_run(settings: Settings, run_id: str, resumed_from: str) -> str:
    """A resumed job logs into the run it was stopped in: same steps, no window twice."""
    client = MlflowClient(tracking_uri(settings))
    client.set_tag(run_id, END_REASON_TAG, f"resumed from {resumed_from}")
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    return run_id


def tag_job(settings: Settings, run_id: str, job_id: str) -> None:
    """Which Flink job logs into the run: the MLflow UI then points at the job in Flink's UI."""
    MlflowClient(tracking_uri(settings)).set_tag(run_id, FLINK_JOB_TAG, job_id)


def end_run(uri: str, run_id: str, status: RunEnd, reason: str, savepoint: str | None = None) -> None:
    """Ends the run with ``status`` and says why in the ``end_reason`` tag (and where the savepoint is)."""
    client = MlflowClient(uri)
    client.set_tag(run_id, END_REASON_TAG, reason[:5000])
    if savepoint is not None:
        client.set_tag(run_id, SAVEPOINT_TAG, savepoint)
    client.set_terminated(run_id, status)


def run_page(settings: Settings, run_id: str) -> str:
    """The run's own page in the MLflow UI: MLflow 3 opens an experiment in its GenAI view, away from its runs."""
    experiment_id = MlflowClient(tracking_uri(settings)).get_run(run_id).info.experiment_id
    return f"{ui_address(settings)}/#/experiments/{experiment_id}/runs/{run_id}"


def run_state(uri: str, run_id: str) -> tuple[str, str | None]:
    """The run's status and the Flink job that logs into it now (a resumed run's is its latest job)."""
    run = MlflowClient(uri).get_run(run_id)
    return run.info.status, run.data.tags.get(FLINK_JOB_TAG)


def reconcile(settings: Settings, run_id: str, snapshots: list[dict]) -> int:
    """After a bounded run: make sure every window and the final champion reached MLflow."""
    m = settings.mlflow
    reporter = MlflowReporter(tracking_uri(settings), run_id, m.registered_model, m.register_every_windows, 1)
    return reporter.reconcile(snapshots, m.flush_timeout_s)


def summary_artifact(settings: Settings, run_id: str, summary_file: Path) -> None:
    MlflowClient(tracking_uri(settings)).log_artifact(run_id, str(summary_file))


def log_schema(settings: Settings, run_id: str, description: str, schema_file: Path) -> None:
    """The run's feature columns as a param (``features.schema``) and the full schema, warnings included,
    as an artifact."""
    client = MlflowClient(tracking_uri(settings))
    client.log_param(run_id, "features.schema", description[:6000])
    client.log_artifact(run_id, str(schema_file))
