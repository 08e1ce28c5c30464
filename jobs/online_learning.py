"""Entry point: ``python -m jobs.online_learning --config conf/local.yaml`` (or ``flink run -py``).

Runs the online-learning job on the configured source, writes predictions, dead letters,
drift events and snapshots under ``output.path``, logs the run to MLflow and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

# `flink run -py jobs/online_learning.py` starts this file as a script: make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyflink.common import JobClient  # noqa: E402

from conf.settings import DEFAULT_CONFIG, Settings, SettingsError, load_settings  # noqa: E402
from jobs import mlflow_run  # noqa: E402
from jobs.input_sample import count_and_sample, count_lines, kafka_sample, last_event_time, parquet_as_jsonl  # noqa: E402
from jobs.pipeline import OUTPUTS, MlflowTarget, build_pipeline, create_environment, uses_kafka  # noqa: E402
from jobs.progress import ProgressLine, consumer_lag, lines_written  # noqa: E402
from jobs.run_summary import format_summary, read_snapshots, summarize  # noqa: E402
from jobs.savepoints import stop_with_savepoint  # noqa: E402
from udfs.devices import describe, training_device  # noqa: E402
from udfs.schema import AUTO as AUTO_FEATURES, FeatureSchema, infer_schema  # noqa: E402
from udfs.slicing import AUTO, LIVE_SLICE_MS, SAMPLE_LINES, with_slice, with_slice_ms  # noqa: E402
from udfs.stream_generator import CovariateShift, StreamSpec, generate_events, write_jsonl  # noqa: E402
from udfs.user_features import UserFeatureExtractor, UserStateFile  # noqa: E402
from udfs.warm_start import check_compatible  # noqa: E402

RUN_ID_FILE = "mlflow_run_id"
SCHEMA_FILE = "schema.json"
KAFKA_SAMPLE_TIMEOUT_S = 15.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.online_learning", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set model.learning_rate=0.01 (repeatable)")
    parser.add_argument("--input", help="JSONL or Parquet file, or a directory of them (sets source.kind=file)")
    parser.add_argument("--output", help="output folder (sets output.path)")
    parser.add_argument("--resume", metavar="PATH",
                        help="continue from a savepoint or retained checkpoint (sets job.resume_from); "
                             "the outputs and MLflow run under --output carry on")
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> Settings:
    overrides = []
    if args.input:
        if not Path(args.input).exists():
            raise SettingsError(f"--input {args.input}: no such file or directory")
        # Before the --set items: `--set source.kind=hybrid` keeps Kafka after the files.
        overrides += ["source.kind=file", f"source.path={Path(args.input).resolve()}"]
    overrides += args.set
    if args.output:
        overrides.append(f"output.path={args.output}")
    if args.resume:
        overrides.append(f"job.resume_from={resume_location(args.resume)}")
    settings = load_settings(args.config, overrides)
    # Workers run in other folders: they must see the same absolute paths as the client.
    absolute = settings.output.model_copy(update={"path": str(settings.output_dir())})
    if settings.features.initial_user_state:
        user_state = str(Path(settings.features.initial_user_state).resolve())
        settings = settings.model_copy(update={"features": settings.features.model_copy(
            update={"initial_user_state": user_state})})
    # The device resolved once, here: workers train where the log and the MLflow params say.
    device = training_device(settings.model.kind, settings.model.device)
    model = settings.model.model_copy(update={"device": device})
    return settings.model_copy(update={"output": absolute, "model": model})


def resume_location(given: str) -> str:
    """A savepoint/checkpoint as Flink printed it (``file:/...``), a plain path, or a remote URI."""
    parsed = urlparse(given)
    if parsed.scheme not in ("", "file"):
        return given  # s3://, hdfs://...: Flink checks it
    path = Path(parsed.path if parsed.scheme else given).resolve()
    if not path.exists():
        raise SettingsError(f"--resume {given}: no such savepoint or checkpoint folder "
                            "(use the path printed at the stop, or a chk-N folder under job.checkpoint_dir)")
    return path.as_uri()


def resolve_warm_start(settings: Settings) -> Settings:
    """``model.warm_start`` as a local snapshot file the operators can read, checked against the features."""
    resolved, snapshot = fetch_warm_start(settings)
    if snapshot is not None:
        check_warm_start(resolved, snapshot, settings.model.warm_start)
    return resolved


def fetch_warm_start(settings: Settings) -> tuple[Settings, dict | None]:
    """``settings`` with ``model.warm_start`` as a local snapshot file, and that snapshot (None: cold start)."""
    given = settings.model.warm_start
    if given is None:
        return settings, None
    if given.startswith(("models:/", "runs:/")):
        path = mlflow_run.fetch_warm_start(settings, settings.output_dir() / "warm-start-snapshot.json")
    else:
        path = Path(given).resolve()
        if not path.is_file():
            raise SettingsError(f"model.warm_start={given}: no such snapshot file")
    resolved = settings.model_copy(update={"model": settings.model.model_copy(update={"warm_start": str(path)})})
    return resolved, json.loads(path.read_text())


def check_warm_start(settings: Settings, snapshot: dict, given: str) -> None:
    """The warm-start model must be of the run's features and model kind."""
    try:
        check_compatible(snapshot, UserFeatureExtractor.from_settings(settings).dense_names,
                         settings.features.hash_buckets, settings.model.kind, given)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    print(f"warm start from {given}: model version {snapshot['version']}", flush=True)


def prepare_input(settings: Settings) -> list[str]:
    """Paths for the file source; the generator writes its stream to a file first (once: a resumed
    job must read the very file its savepoint points into)."""
    if settings.source.kind == "kafka":
        return []
    if settings.source.kind in ("file", "hybrid"):
        return parquet_as_jsonl([str(Path(settings.source.path).resolve())], settings.output_dir() / "input" / "parquet",
                                settings.source.parquet)
    path = settings.output_dir() / "input" / "events.jsonl"
    if settings.job.resume_from and path.exists():
        return [str(path)]
    g = settings.source.generator
    spec = StreamSpec(
        n_events=g.events, n_users=g.users, n_items=g.items, duration_s=g.duration_s, seed=g.seed,
        n_numeric=g.numeric, n_categorical=g.categorical, labeled_fraction=g.labeled_fraction,
        base_rate=g.base_rate, signal=g.signal, concept_drift_at_s=g.concept_drift_at_s,
        covariate_shifts=tuple(CovariateShift(s.feature, s.at_s, s.delta_std) for s in g.covariate_shifts),
    )
    print(f"generating {g.events} events for {g.users} users over {g.duration_s / 3600:.1f} h -> {path}", flush=True)
    write_jsonl(generate_events(spec), path)
    return [str(path)]


def input_sample(settings: Settings, inputs: list[str]) -> tuple[int, list[str]]:
    """Lines in the input files and a sample of them, read once for the slices and the schema; on
    Kafka the topics' first records, read only when a feature list is ``auto`` (0 lines: unknown)."""
    size = max(SAMPLE_LINES, settings.features.infer_sample)
    if settings.source.kind != "kafka":
        return count_and_sample(inputs, size)
    if AUTO_FEATURES not in (settings.features.numeric, settings.features.categorical):
        return 0, []
    print(f"reading up to {settings.features.infer_sample} records of Kafka {','.join(settings.kafka.topics)} "
          "to infer the features (features.infer_sample)", flush=True)
    return 0, kafka_sample(settings.kafka, settings.features.infer_sample, KAFKA_SAMPLE_TIMEOUT_S)


def describe_source(settings: Settings, inputs: list[str]) -> str:
    """What the job reads, as the user named it (not the converted or generated files' folder)."""
    kafka = f"Kafka {','.join(settings.kafka.topics)}"
    kind = settings.source.kind
    if kind == "kafka":
        return kafka
    if kind == "hybrid":
        return f"{settings.source.path}, then {kafka}"
    return settings.source.path if kind == "file" else inputs[0]


def resolve_schema(settings: Settings, sample: list[str], where: str,
                   order: list[str] = ()) -> tuple[Settings, FeatureSchema]:
    """The run's feature columns: inferred for ``auto`` lists (in ``order`` where it names them: a
    warm-start model's columns), checked against the sample in any case, and the same as before on
    ``--resume`` (kept beside the savepoint and under ``output.path``)."""
    f = settings.features
    kept = _kept_schema(settings)
    if kept is not None:
        for kind, configured in (("numeric", f.numeric), ("categorical", f.categorical)):
            if configured != AUTO_FEATURES and tuple(configured) != getattr(kept, kind):
                raise SettingsError(f"features.{kind}: {list(configured)} differs from the {list(getattr(kept, kind))} "
                                    f"the resumed job was started with; a savepoint keeps its columns")
        schema = kept
    else:
        schema = infer_schema(sample[:f.infer_sample], f.numeric, f.categorical,
                              settings.validation.max_record_bytes).ordered_like(order)
    if not schema.numeric and not schema.categorical:
        raise SettingsError(f"features: no feature found in {schema.sample_events} sampled events of {where}; "
                            "events need a 'features' object of numbers, strings or bools, or name the columns "
                            "with --set features.numeric=[...] --set features.categorical=[...]")
    resolved = schema.apply(settings)
    print(f"features         {schema.describe()}", flush=True)
    for warning in schema.warnings:
        print(f"warning          {warning}", flush=True)
    (settings.output_dir() / SCHEMA_FILE).write_text(json.dumps(schema.to_json(), indent=2))
    return resolved, schema


def resolve_hybrid_switch(settings: Settings, inputs: list[str]) -> Settings:
    """``source.kind: hybrid``: Kafka is read from ``kafka.starting_timestamp_ms``, by default the files'
    last event time, so that what the history holds is not read twice."""
    k = settings.kafka
    if settings.source.kind != "hybrid":
        return settings
    switch = k.starting_timestamp_ms if k.starting_timestamp_ms is not None else last_event_time(inputs)
    print(f"hybrid source    the files, then Kafka {','.join(k.topics)} from record time {switch} "
          "(the files' last event time unless kafka.starting_timestamp_ms is set)", flush=True)
    kafka = k.model_copy(update={"starting_offsets": "timestamp", "starting_timestamp_ms": switch})
    return settings.model_copy(update={"kafka": kafka})


def check_user_state(settings: Settings) -> None:
    """``features.initial_user_state`` must be readable and of the run's columns: checked here, once,
    not in every worker."""
    path = settings.features.initial_user_state
    if path is None:
        return
    try:
        users = UserStateFile.load(path, *settings.features.names()).users
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    print(f"user state       {len(users)} users start from {path}", flush=True)


def _kept_schema(settings: Settings) -> FeatureSchema | None:
    """On ``--resume``: the schema written beside the savepoint, else the one under ``output.path``."""
    if not settings.job.resume_from:
        return None
    resume = urlparse(settings.job.resume_from)
    for candidate in (Path(resume.path) / SCHEMA_FILE, settings.output_dir() / SCHEMA_FILE):
        if resume.scheme in ("", "file") and candidate.is_file():
            return FeatureSchema.from_json(json.loads(candidate.read_text()))
    return None


def resolve_slice(settings: Settings, inputs: list[str], counted: tuple[int, list[str]] | None = None) -> Settings:
    """``batching.slice_ms: auto``: a second for a live Kafka stream, else sized to the replay's density
    (``counted``: the input's lines and sample, if already read)."""
    if settings.batching.slice_ms != AUTO:
        return settings
    if settings.source.kind in ("kafka", "hybrid"):  # hybrid: live once the history is read
        resolved = with_slice_ms(settings, LIVE_SLICE_MS)
    else:
        resolved = with_slice(settings, *(counted or count_and_sample(inputs)))
    print(f"batching         {resolved.batching.slice_ms / 1000:g}-s event-time slices "
          f"(batching.slice_ms=auto, {resolved.batching.shards} user shards)", flush=True)
    return resolved


def clear_outputs(settings: Settings) -> None:
    """A re-run into the same folder must not mix its records with the previous run's."""
    out = settings.output_dir()
    for folder in [out / name for name in OUTPUTS + ("input",)] + [settings.checkpoint_dir(), out / RUN_ID_FILE,
                                                                  out / SCHEMA_FILE]:
        if folder.is_dir():
            shutil.rmtree(folder)
        elif folder.exists():
            folder.unlink()


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
                  f"{lines_written(out / 'snapshots')} windows closed", flush=True)
    result.result()  # raises with the job's failure cause
    return None


@dataclass(frozen=True)
class Prepared:
    """What the client settles before the job starts."""

    settings: Settings    # feature columns, warm start, slices and the hybrid switch resolved
    inputs: list[str]     # the file source's paths
    schema: FeatureSchema
    where: str            # the input as the user named it


def prepare(settings: Settings) -> Prepared:
    """Input files, feature columns, warm start, slices, the hybrid switch: a SettingsError here stops
    the job before it starts, naming what to fix."""
    inputs = prepare_input(settings)
    counted = input_sample(settings, inputs)
    where = describe_source(settings, inputs)
    given_warm_start = settings.model.warm_start
    settings, warm = fetch_warm_start(settings)
    settings, schema = resolve_schema(settings, counted[1], where, warm["dense_names"] if warm else [])
    check_user_state(settings)
    if warm is not None:
        check_warm_start(settings, warm, given_warm_start)
    settings = resolve_hybrid_switch(resolve_slice(settings, inputs, counted), inputs)
    return Prepared(settings, inputs, schema, where)


def run(settings: Settings) -> dict:
    out = settings.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    resuming = settings.job.resume_from is not None
    if not resuming:
        clear_outputs(settings)
    # PyFlink's workers (and the embedded interpreter of thread mode) look for `python` on PATH.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    prepared = prepare(settings)
    settings, inputs, schema, where = prepared.settings, prepared.inputs, prepared.schema, prepared.where
    run_id = _mlflow_run(settings, out / RUN_ID_FILE, resuming) if settings.mlflow.enabled else None
    if run_id and not resuming:
        mlflow_run.log_schema(settings, run_id, schema.describe(), out / SCHEMA_FILE)
    target = MlflowTarget(mlflow_run.tracking_uri(settings), run_id) if run_id else None
    env = create_environment(settings)
    build_pipeline(env, settings, inputs, target)
    print(f"running job '{settings.job.name}' (parallelism {settings.job.parallelism}) on {where}", flush=True)
    print(f"model {settings.model.kind}, training on {describe(settings.model.device)}", flush=True)
    client = env.execute_async(settings.job.name)
    job_id = str(client.get_job_id())
    if run_id:
        mlflow_run.tag_job(settings, run_id, job_id)
    if not settings.job.wait_for_completion:
        logged_to = f"; MLflow run {run_id} at {mlflow_run.tracking_uri(settings)}" if run_id else ""
        print(f"submitted; JobID {job_id}{logged_to}", flush=True)
        return {"job_id": job_id, "mlflow_run_id": run_id}
    if resuming:
        print(f"resuming from {settings.job.resume_from}", flush=True)
    total = None if settings.source.kind in ("kafka", "hybrid") else count_lines(inputs)  # a live stream has no end
    progress = ProgressLine(total=total, started=time.time())
    try:
        savepoint = wait_with_progress(client, settings, progress)
    except BaseException as exc:
        if run_id:
            lines = str(exc).strip().splitlines() or [""]
            mlflow_run.end_run(mlflow_run.tracking_uri(settings), run_id, "FAILED",
                               f"job failed: {type(exc).__name__}: {lines[0]}")
        raise
    if savepoint is not None:
        shutil.copy(out / SCHEMA_FILE, Path(urlparse(savepoint).path) / SCHEMA_FILE)
        if run_id:
            mlflow_run.end_run(mlflow_run.tracking_uri(settings), run_id, "KILLED",
                               "stopped with a savepoint; --resume it to continue this run", savepoint)
        return {"savepoint": savepoint, "mlflow_run_id": run_id}
    snapshots = read_snapshots(out)
    summary = summarize(out, snapshots)
    summary["schema"] = schema.to_json()
    summary["elapsed_s"] = round(time.time() - progress.started, 1)
    summary["batching_slice_ms"] = settings.batching.slice_ms
    summary["mlflow_run_id"] = run_id
    if run_id:
        summary["mlflow_windows_logged_after_job"] = mlflow_run.reconcile(settings, run_id, snapshots)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if run_id:
        mlflow_run.summary_artifact(settings, run_id, out / "summary.json")
        mlflow_run.end_run(mlflow_run.tracking_uri(settings), run_id, "FINISHED", "the input was read to its end")
    return summary


def _mlflow_run(settings: Settings, id_file: Path, resuming: bool) -> str:
    """A new run, or on --resume the run the stopped job was logging to (its id is kept in ``id_file``)."""
    if resuming and id_file.exists():
        return mlflow_run.reopen_run(settings, id_file.read_text().strip(), settings.job.resume_from)
    run_id = mlflow_run.start_run(settings)
    id_file.write_text(run_id)
    return run_id


def main(argv: list[str] | None = None) -> int:
    # MLflow's INFO lines (database set-up, example validation) say nothing a user can act on.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        settings = load(parse_args(argv))
        summary = run(settings)
    except SettingsError as exc:  # raised before the job starts: configuration, input, schema, warm start
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not settings.job.wait_for_completion or "savepoint" in summary:
        return 0
    print(format_summary(summary))
    out = settings.output_dir()
    print(f"outputs          {out} (finished in {summary['elapsed_s']} s)")
    k = settings.kafka
    print(f"predictions      Kafka topic {k.predictions_topic} at {k.bootstrap_servers}" if uses_kafka(settings)
          else f"predictions      {out / 'predictions'} (one JSON line per valid event)")
    if settings.mlflow.enabled:
        print(f"MLflow UI        {mlflow_run.ui_command(settings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
