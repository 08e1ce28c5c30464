"""One run of the job, start to summary: MLflow run, graph, execution, progress, savepoint stop."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from urllib.parse import urlparse

from pyflink.common import JobClient

from conf.settings import Settings
from jobs.kafka_client import consumer_lag
from jobs.mlflow_process import MlflowProcess, call_once, tracking_uri
from jobs.pipeline import MlflowTarget, build_pipeline, create_environment
from jobs.preparation import RUN_ID_FILE, SCHEMA_FILE, clear_outputs, prepare
from jobs.progress import WINDOW_SNAPSHOT, ProgressLine, lines_written
from jobs.run_summary import read_snapshots, summarize, too_few_valid
from jobs.savepoints import stop_with_savepoint
from udfs.learning.devices import describe


def wait_with_progress(client: JobClient, settings: Settings, progress: ProgressLine,
                       every_s: float = 10.0) -> str | None:
    """Block until the job ends, printing how far it got every ``every_s`` seconds.

    Ctrl-C (or SIGTERM) stops the job with a savepoint; returns its path, or None if the job ran to its end.
    """
    out = settings.output_dir()
    stop_requested: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _: stop_requested.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _follow(client, settings, out, progress, every_s, stop_requested)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _follow(client: JobClient, settings: Settings, out: Path, progress: ProgressLine, every_s: float,
            stop_requested: list[int]) -> str | None:
    last_report = progress.started
    kafka = settings.source.kind in ("kafka", "hybrid")
    result = client.get_job_execution_result()
    while not result.done():
        if stop_requested:
            print("stopping with a savepoint (state, offsets and committed outputs are kept) ...", flush=True)
            path = stop_with_savepoint(client, settings.savepoint_dir())
            result.result()
            print(f"stopped; savepoint {path}\nresume with: --output {out} --resume {path} "
                  "(and the same --config/--set/--input)", flush=True)
            return path
        time.sleep(0.5)
        if time.time() - last_report >= every_s:
            last_report = time.time()
            done = lines_written(out / "predictions") + lines_written(out / "dead_letters")
            lag = consumer_lag(settings.kafka) if kafka else None
            print(f"  {last_report - progress.started:5.0f} s: {progress.line(done, last_report, lag)}, "
                  f"{lines_written(out / 'snapshots', WINDOW_SNAPSHOT)} windows closed", flush=True)
    result.result()  # raises with the job's failure cause
    return None


def run(settings: Settings) -> dict:
    out = settings.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    resuming = settings.job.resume_from is not None
    if not resuming:
        clear_outputs(settings)
    prepared = prepare(settings)
    settings, inputs, schema, where = prepared.settings, prepared.inputs, prepared.schema, prepared.where
    run_id = None
    with MlflowProcess() as mlflow:  # the run's set-up: gone before the job gets going
        if settings.mlflow.enabled:
            run_id = mlflow.call("open_run", settings, out / RUN_ID_FILE, schema.describe(), out / SCHEMA_FILE)
        target = MlflowTarget(tracking_uri(settings), run_id) if run_id else None
        env = create_environment(settings)
        build_pipeline(env, settings, inputs, target)
        print(f"running job '{settings.job.name}' (parallelism {settings.job.parallelism}) on {where}", flush=True)
        print(f"model {settings.model.kind}, training on {describe(settings.model.device)}", flush=True)
        client = env.execute_async(settings.job.name)
        job_id = str(client.get_job_id())
        if run_id:
            mlflow.call("tag_job", settings, run_id, job_id)
    if not settings.job.wait_for_completion:
        logged_to = f"; MLflow run {run_id} at {tracking_uri(settings)}" if run_id else ""
        print(f"submitted; JobID {job_id}{logged_to}", flush=True)
        return {"job_id": job_id, "mlflow_run_id": run_id}
    if resuming:
        print(f"resuming from {settings.job.resume_from}", flush=True)
    total = None if settings.source.kind in ("kafka", "hybrid") else prepared.lines  # a live stream has no end
    progress = ProgressLine(total=total, started=time.time())
    try:
        savepoint = wait_with_progress(client, settings, progress)
    except BaseException as exc:
        if run_id:
            lines = str(exc).strip().splitlines() or [""]
            call_once("end_run", tracking_uri(settings), run_id, "FAILED",
                      f"job failed: {type(exc).__name__}: {lines[0]}")
        raise
    if savepoint is not None:
        shutil.copy(out / SCHEMA_FILE, Path(urlparse(savepoint).path) / SCHEMA_FILE)
        if run_id:
            call_once("end_run", tracking_uri(settings), run_id, "KILLED",
                      "stopped with a savepoint; --resume it to continue this run", savepoint)
        return {"savepoint": savepoint, "mlflow_run_id": run_id}
    snapshots = read_snapshots(out)
    summary = summarize(out, snapshots)
    summary["schema"] = schema.to_json()
    summary["elapsed_s"] = round(time.time() - progress.started, 1)
    summary["batching_slice_ms"] = settings.batching.slice_ms
    summary["mlflow_run_id"] = run_id
    summary["failure"] = too_few_valid(summary, settings.validation.min_valid_share)
    with MlflowProcess() as mlflow:  # started only if there is a run to finish
        if run_id:
            summary["mlflow_windows_logged_after_job"] = mlflow.call("reconcile", settings, run_id, snapshots)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        if run_id:
            mlflow.call("summary_artifact", settings, run_id, out / "summary.json")
            status, reason = ("FAILED", summary["failure"]) if summary["failure"] else \
                ("FINISHED", "the input was read to its end")
            mlflow.call("end_run", tracking_uri(settings), run_id, status, reason)
    return summary
