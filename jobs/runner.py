"""One run of the job, start to summary: output folder, MLflow run, graph, execution, progress, stop.

The output folder belongs to the run (jobs/run_folder.py): it is locked while the client runs, a
fresh start on another run's results is refused without ``--overwrite``, and a resume is refused
when it would repeat committed outputs, restore state into other settings or read changed input.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pyflink.common import JobClient
from pyflink.common.completable_future import CompletableFuture

from conf.settings import Settings, SettingsError
from jobs.failures import failure_line
from jobs.input_sample import input_files
from jobs.kafka_client import consumer_lag
from jobs.mlflow_process import MlflowProcess, call_once, tracking_uri
from jobs.pipeline import OUTPUTS, MlflowTarget, build_pipeline, create_environment, sink_snapshots
from jobs.preparation import RUN_ID_FILE, SCHEMA_FILE, Prepared, clear_outputs, prepare
from jobs.progress import WINDOW_SNAPSHOT, ProgressLine, lines_written
from jobs.resume_checks import input_changes, input_sizes, settings_changes
from jobs.run_folder import (SETTINGS_FILE, RunLock, RunRecord, check_resume_point, holds_results, new_run_id)
from jobs.run_summary import read_snapshots, summarize, too_few_valid
from jobs.savepoints import stop_with_savepoint
from udfs.learning.devices import describe

STOP_RETRY_S = 60.0  # how long a stop waits for a job still starting to take its savepoint


class JobFailed(RuntimeError):
    """The job (or the client while it ran) failed; the message is the cause, in one line."""

    def __init__(self, reason: str, run_note: str) -> None:
        super().__init__(reason)
        self.run_note = run_note  # what became of the MLflow run, for the error line ("" without one)


class Cancelled(RuntimeError):
    """Ctrl-C before the job was submitted: nothing was read, nothing written."""


@dataclass
class StopRequests:
    """Ctrl-C and SIGTERM for the whole run: noted, not raised, so that the client stops where it is
    safe to (before the job starts: nothing runs; while it runs: a savepoint; at its end: it finishes)."""

    signals: list[int] = field(default_factory=list)

    def __enter__(self) -> StopRequests:
        self._previous = {sig: signal.signal(sig, lambda signum, _: self.signals.append(signum))
                          for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def wait_with_progress(client: JobClient, settings: Settings, progress: ProgressLine, stop: StopRequests,
                       every_s: float = 10.0) -> str | None:
    """Block until the job ends, printing how far it got every ``every_s`` seconds.

    A stop request stops the job with a savepoint; returns its path, or None if the job ran to its end.
    """
    out = settings.output_dir()
    last_report = progress.started
    kafka = settings.source.kind in ("kafka", "hybrid")
    result = client.get_job_execution_result()
    while not result.done():
        if stop.signals:
            print("stopping with a savepoint (state, offsets and committed outputs are kept) ...", flush=True)
            path = _stop(client, settings, result)
            if path is None:
                print("the job had read its input to the end before it could stop: its results stand", flush=True)
                break
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


def _stop(client: JobClient, settings: Settings, result: CompletableFuture) -> str | None:
    """The savepoint's path; None when the job ended first. A job still starting (its tasks not all
    running) or already finishing declines a savepoint: retried until it runs, or until it has ended."""
    deadline = time.time() + STOP_RETRY_S
    while True:
        try:
            path = stop_with_savepoint(client, settings.savepoint_dir())
            result.result()
            return path
        except Exception as exc:
            if not _settles(result, 2.0) and time.time() < deadline:
                print(f"  the job cannot take a savepoint yet ({failure_line(exc)}); retrying", flush=True)
                continue
            if result.done():
                return None
            raise


def _settles(result: CompletableFuture, wait_s: float) -> bool:
    """Whether the job's result arrives within ``wait_s``."""
    end = time.time() + wait_s
    while time.time() < end:
        if result.done():
            return True
        time.sleep(0.2)
    return result.done()


def claim_folder(settings: Settings, record: RunRecord | None, run_id: str, overwrite: bool) -> RunRecord:
    """The run's record of the output folder, after refusing what would lose or double committed results."""
    out = settings.output_dir()
    resume = settings.job.resume_from
    if resume is None:
        if holds_results(out, OUTPUTS + ("input", "checkpoints")) and not overwrite:
            state = f"the {record.state} run {record.run_id}" if record else "an earlier run"
            point = record.resume_point(settings.checkpoint_dir()) if record and record.state != "finished" else None
            hint = f"--resume {point} continues it, " if point else ""
            raise SettingsError(f"--output {out}: holds the results of {state}; {hint}--overwrite replaces them, "
                                "or choose another --output")
        if overwrite:
            clear_outputs(settings)
        return RunRecord(run_id)
    if record is not None and overwrite:
        print(f"--overwrite: the outputs in {out} are dropped; they start over from {resume}", flush=True)
        clear_outputs(settings, state_too=False)
        return RunRecord(run_id)
    if record is not None:
        check_resume_point(record, resume, out, settings.checkpoint_dir())
        return record
    return RunRecord(run_id)


def check_resume(settings: Settings, prepared: Prepared, record: RunRecord) -> None:
    """A resume restores state made with certain settings from certain input files: both must be as they were."""
    kept = _kept_settings(settings)
    if kept is not None:
        refused, accepted = settings_changes(kept, prepared.settings.flat())
        if refused:
            raise SettingsError(f"--resume {settings.job.resume_from}: the state was made with other settings: "
                                f"{'; '.join(refused)}; resume with the old values, or start a new run (--overwrite)")
        for line in accepted:
            print(f"changed          {line} (takes effect from the resume on)", flush=True)
    changed = input_changes(record.inputs, input_sizes(input_files(prepared.inputs))) if record.inputs else []
    if changed:
        raise SettingsError(f"--resume: the input changed since the run started: {'; '.join(changed)}; a resumed "
                            "job reads the files its savepoint knows, from where it stopped. Restore them, or "
                            "read new files as a new run (another --output, or --overwrite)")


def _kept_settings(settings: Settings) -> dict[str, str] | None:
    """The settings beside the savepoint (else under ``output.path``) the resumed state was made with."""
    resume = urlparse(settings.job.resume_from)
    for candidate in (Path(resume.path) / SETTINGS_FILE, settings.output_dir() / SETTINGS_FILE):
        if resume.scheme in ("", "file") and candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def run(settings: Settings, overwrite: bool = False) -> dict:
    out = settings.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    record = RunRecord.load(out)
    resuming = settings.job.resume_from is not None
    run_id = record.run_id if resuming and record and not overwrite else new_run_id()
    lock = RunLock(out, run_id).acquire()
    try:
        with StopRequests() as stop:
            record = claim_folder(settings, record, run_id, overwrite)
            return _run(settings, record, stop)
    finally:
        lock.release()


@dataclass
class _Attempt:
    """What this client has started so far: what a failure must end."""

    mlflow_run_id: str | None = None
    job_id: str | None = None


def _run(settings: Settings, record: RunRecord, stop: StopRequests) -> dict:
    out = settings.output_dir()
    prepared = prepare(settings)
    if settings.job.resume_from is not None:
        check_resume(settings, prepared, record)
    if stop.signals:
        raise Cancelled("before the job started; nothing was read or written")
    if not record.inputs and prepared.settings.source.kind != "kafka":
        record.inputs = input_sizes(input_files(prepared.inputs))
    (out / SETTINGS_FILE).write_text(json.dumps(prepared.settings.flat(), indent=2))
    attempt = _Attempt()
    try:
        return _execute(prepared, record, stop, attempt)
    except (Cancelled, SettingsError):
        raise
    except Exception as exc:  # the job, or the client while it set the job up or summed it up
        reason = failure_line(exc)
        if attempt.job_id is not None:
            record.state = "failed"
            _save_quietly(record, out)
        note = ""
        if attempt.mlflow_run_id:
            note = "the MLflow run ends FAILED with this reason" if _end_failed(
                prepared.settings, attempt.mlflow_run_id, reason) else "the MLflow run could not be marked FAILED"
        raise JobFailed(reason, note) from exc


def _execute(prepared: Prepared, record: RunRecord, stop: StopRequests, attempt: _Attempt) -> dict:
    settings, inputs, schema, where = prepared.settings, prepared.inputs, prepared.schema, prepared.where
    out = settings.output_dir()
    # The run's set-up, gone before the job gets going. The run opens (MLflow's import, a new store's
    # tables: about 5 s) in the child while the JVM starts and the graph is built (about 7 s).
    with MlflowProcess() as mlflow, ThreadPoolExecutor(max_workers=1) as background:
        opening = background.submit(mlflow.call, "open_run", settings, out / RUN_ID_FILE, schema.describe(),
                                    out / SCHEMA_FILE) if settings.mlflow.enabled else None
        try:
            env = create_environment(settings)
            trained = build_pipeline(env, settings, inputs)
        finally:  # a run that opened is the attempt's to end, whatever failed meanwhile
            attempt.mlflow_run_id = run_id = opening.result() if opening else None
        sink_snapshots(trained, settings, MlflowTarget(tracking_uri(settings), run_id) if run_id else None)
        if stop.signals:
            if run_id:
                mlflow.call("end_run", tracking_uri(settings), run_id, "KILLED",
                            "cancelled before the job started; nothing was read", record.newest)
            raise Cancelled("before the job started; nothing was read or written")
        print(f"running job '{settings.job.name}' (parallelism {settings.job.parallelism}) on {where}", flush=True)
        print(f"model {settings.model.kind}, training on {describe(settings.model.device)}", flush=True)
        client = env.execute_async(settings.job.name)
        attempt.job_id = job_id = str(client.get_job_id())
        record.job_ids.append(job_id)
        record.state = "running"
        record.save(out)
        if run_id:
            mlflow.call("tag_job", settings, run_id, job_id)
    if not settings.job.wait_for_completion:
        logged_to = f"; MLflow run {run_id} at {tracking_uri(settings)}" if run_id else ""
        # The last item is the folder whose run record `flink_cluster.py` ends when the job does.
        print(f"submitted; JobID {job_id}{logged_to}; outputs {out}", flush=True)
        return {"job_id": job_id, "mlflow_run_id": run_id}
    if settings.job.resume_from is not None:
        print(f"resuming from {settings.job.resume_from}", flush=True)
    total = None if settings.source.kind in ("kafka", "hybrid") else prepared.lines  # a live stream has no end
    progress = ProgressLine(total=total, started=time.time())
    savepoint = wait_with_progress(client, settings, progress, stop)
    if savepoint is None:
        return _finish(settings, prepared, record, run_id, progress)
    for name in (SCHEMA_FILE, SETTINGS_FILE):
        shutil.copy(out / name, Path(urlparse(savepoint).path) / name)
    record.state, record.newest = "stopped", savepoint
    record.save(out)
    if run_id:
        call_once("end_run", tracking_uri(settings), run_id, "KILLED",
                  "stopped with a savepoint; --resume it to continue this run", savepoint)
    return {"savepoint": savepoint, "mlflow_run_id": run_id}


def _finish(settings: Settings, prepared: Prepared, record: RunRecord, run_id: str | None,
            progress: ProgressLine) -> dict:
    """The finished run's summary, written and logged; the run's record says nothing is left to resume."""
    out = settings.output_dir()
    record.state, record.newest = "finished", None
    record.save(out)
    elapsed_s = round(time.time() - progress.started, 1)
    with MlflowProcess() as mlflow:
        if run_id:  # only if there is a run to finish; its imports overlap the summing up
            mlflow.start()
        snapshots = read_snapshots(out)
        summary = summarize(out, snapshots)
        summary["input_lines"] = prepared.lines or None
        summary["schema"] = prepared.schema.to_json()
        summary["elapsed_s"] = elapsed_s
        summary["batching_slice_ms"] = settings.batching.slice_ms
        summary["mlflow_run_id"] = run_id
        summary["failure"] = too_few_valid(summary, settings.validation.min_valid_share)
        if run_id:
            summary["mlflow_windows_logged_after_job"] = mlflow.call("reconcile", settings, run_id, snapshots)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        if run_id:
            mlflow.call("summary_artifact", settings, run_id, out / "summary.json")
            status, reason = ("FAILED", summary["failure"]) if summary["failure"] else \
                ("FINISHED", "the input was read to its end")
            mlflow.call("end_run", tracking_uri(settings), run_id, status, reason)
    return summary


def _save_quietly(record: RunRecord, out: Path) -> None:
    try:
        record.save(out)
    except OSError as exc:
        print(f"warning: the run's record in {out} could not be written: {failure_line(exc)}", file=sys.stderr)


def _end_failed(settings: Settings, run_id: str, reason: str) -> bool:
    """The MLflow run ends FAILED with the cause (True); if its store cannot be written either, stderr says so."""
    try:
        call_once("end_run", tracking_uri(settings), run_id, "FAILED", f"job failed: {reason}")
        return True
    except Exception as exc:
        print(f"warning: MLflow run {run_id} could not be marked FAILED at {tracking_uri(settings)}: "
              f"{failure_line(exc)}", file=sys.stderr)
        return False
