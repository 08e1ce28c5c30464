"""Entry point: ``python -m jobs.online_learning --config conf/local.yaml`` (or ``flink run -py``).

Runs the online-learning job on the configured source, writes predictions, dead letters,
drift events and snapshots under ``output.path``, logs the run to MLflow and prints a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlparse

from conf.settings import DEFAULT_CONFIG, Settings, SettingsError, load_settings
from jobs.mlflow_process import call_once, tracking_uri, ui_command
from jobs.pipeline import uses_kafka
from jobs.run_summary import format_summary
from jobs.failures import failure_line
from jobs.runner import Cancelled, JobFailed, run
from udfs.learning.devices import training_device


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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of another run under --output (with --resume: drop the outputs "
                             "and start them over from PATH, even if the folder has committed beyond it)")
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


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        settings = load(args)
        summary = run(settings, overwrite=args.overwrite)
    except SettingsError as exc:  # raised before the job starts: configuration, input, schema, warm start
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt) as exc:
        print(f"cancelled: {exc or 'before the job started'}", file=sys.stderr)
        return 130
    except JobFailed as exc:
        print(f"error: job failed: {exc}" + (f" ({exc.run_note})" if exc.run_note else ""), file=sys.stderr)
        return 1
    except OSError as exc:  # before the job: the output folder or the store cannot be written
        print(f"error: {failure_line(exc)}", file=sys.stderr)
        return 1
    if not settings.job.wait_for_completion or "savepoint" in summary:
        return 0
    print(format_summary(summary))
    out = settings.output_dir()
    print(f"outputs          {out} (finished in {summary['elapsed_s']} s)")
    k = settings.kafka
    print(f"predictions      Kafka topic {k.predictions_topic} at {k.bootstrap_servers}" if uses_kafka(settings)
          else f"predictions      {out / 'predictions'} (one JSON line per valid event)")
    if settings.mlflow.enabled:
        print(f"MLflow UI        {ui_command(settings)}")
        print(f"MLflow run       {call_once('run_page', settings, summary['mlflow_run_id'])}")
        # Without it, models:/ URIs go to a new, empty ./mlflow.db: "Registered Model ... not found".
        print(f"the model        export MLFLOW_TRACKING_URI={tracking_uri(settings)}, then "
              f"mlflow.pyfunc.load_model(\"models:/{settings.mlflow.registered_model}@champion\") "
              "(input: udfs.tracking.pyfunc_input.model_input)")
    if summary["failure"]:
        print(f"error: {summary['failure']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
