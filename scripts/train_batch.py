"""Train a model on a history file, register it as ``@batch``, and keep the users' feature state.

    python scripts/train_batch.py --history history.parquet --output out --epochs 5
    python -m jobs.online_learning --input live.jsonl --output out \\
        --set model.warm_start=models:/online-learning-model@batch \\
        --set features.initial_user_state=out/batch/user_state.pkl

The hybrid pattern: start from a model trained on everything there is, then learn online. The
history (Parquet or JSONL, a file or a folder) is replayed in event-time order through the job's
own per-user feature extraction, without Flink (udfs/offline/batch_training.py); the configured
``model.kind`` trains on all of it; the result is registered in the job's MLflow registry as a
version of ``mlflow.registered_model`` with the alias ``batch``. Same ``--config`` / ``--set`` as the
job, same ``mlflow.tracking_uri`` (default: the sqlite store under ``--output``, where the job looks).
Writes ``batch/snapshot.json``, ``batch/user_state.pkl`` and ``batch/schema.json`` under ``--output``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from mlflow.tracking import MlflowClient

from conf.settings import DEFAULT_CONFIG, Settings, SettingsError, load_settings
from jobs import mlflow_run
from jobs.input_sample import history_lines
from udfs.features.schema import infer_schema
from udfs.features.slicing import spread_sample
from udfs.features.user_features import UserStateFile
from udfs.offline.batch_training import replay_history, train_on_history
from udfs.tracking.mlflow_reporter import MlflowReporter

BATCH_ALIAS = "batch"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scripts/train_batch.py", description=__doc__.splitlines()[0])
    parser.add_argument("--history", required=True, help="Parquet or JSONL file, or a folder of them")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--output", help="folder for batch/ and the local MLflow store (sets output.path)")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the history (default: %(default)s)")
    return parser.parse_args(argv)


def _progress(label: str, every_s: float = 10.0) -> Callable[[int, int], None]:
    """A callback that prints ``label: done of total`` at most every ``every_s`` seconds, and at the end."""
    last = [time.monotonic()]

    def report(done: int, total: int) -> None:
        if done == total or time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            print(f"  {label}: {done} of {total}", flush=True)
    return report


def train(settings: Settings, history: str, epochs: int) -> dict:
    """Replays, trains, writes and registers; returns what it printed as a dict (for callers and tests)."""
    lines = list(history_lines([history], settings.source.parquet))
    f = settings.features
    schema = infer_schema(spread_sample(lines, f.infer_sample), f.numeric, f.categorical,
                          settings.validation.max_record_bytes)
    settings = schema.apply(settings)
    print(f"history          {history}: {len(lines)} events", flush=True)
    print(f"features         {schema.describe()}", flush=True)
    for warning in schema.warnings:
        print(f"warning          {warning}", flush=True)
    replay = replay_history(settings, lines, _progress("events featurised in event-time order"))
    print(f"training         {settings.model.kind} on {int((replay.rows.labels >= 0).sum())} labeled events, "
          f"{epochs} epochs", flush=True)
    snapshot = train_on_history(settings, replay, epochs,
                                lambda epoch, loss: print(f"  epoch {epoch}: training logloss {loss:.4f}", flush=True))
    out = settings.output_dir() / "batch"
    out.mkdir(parents=True, exist_ok=True)
    (out / "snapshot.json").write_text(json.dumps(snapshot))
    (out / "schema.json").write_text(json.dumps(schema.to_json(), indent=2))
    numeric, categorical = settings.features.names()
    UserStateFile(numeric, categorical, replay.users).save(out / "user_state.pkl")
    result = {"events": len(lines), "dead_letters": replay.dead_letters, "metrics": snapshot["metrics"],
              "user_state": str(out / "user_state.pkl"), "users": len(replay.users), "schema": schema.to_json()}
    if settings.mlflow.enabled:
        result["model_version"] = register(settings, snapshot, out / "schema.json")
    return result


def register(settings: Settings, snapshot: dict, schema_file: Path) -> str:
    """A run ``train-batch`` with the config and the training figures, and the model as a new version of
    ``mlflow.registered_model`` with the alias ``batch``; returns the version."""
    m = settings.mlflow
    run_id = mlflow_run.start_run(settings, run_name="train-batch")
    client = MlflowClient(mlflow_run.tracking_uri(settings))
    for name, value in snapshot["metrics"].items():
        client.log_metric(run_id, name, value)
    client.log_artifact(run_id, str(schema_file))
    reporter = MlflowReporter(mlflow_run.tracking_uri(settings), run_id, m.registered_model, m.register_every_windows, 1)
    reporter.deadline = time.monotonic() + m.flush_timeout_s
    version = reporter.register_model(snapshot, BATCH_ALIAS)
    client.set_registered_model_alias(m.registered_model, BATCH_ALIAS, version)
    client.set_terminated(run_id, "FINISHED")
    return version


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not Path(args.history).exists():
            raise SettingsError(f"--history {args.history}: no such file or directory")
        overrides = [*args.set, *([f"output.path={args.output}"] if args.output else [])]
        settings = load_settings(args.config, overrides)
        result = train(settings, str(Path(args.history).resolve()), args.epochs)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = result["metrics"]
    print(f"trained          training logloss {metrics['logloss']:.4f} (base rate {metrics['baseline_logloss']:.4f}); "
          f"dead letters {result['dead_letters'] or 0}")
    print(f"user state       {result['users']} users -> {result['user_state']}")
    if "model_version" in result:
        name = settings.mlflow.registered_model
        print(f"registered       models:/{name}@{BATCH_ALIAS} (version {result['model_version']}) "
              f"in {mlflow_run.tracking_uri(settings)}")
        print(f"go online with   --set model.warm_start=models:/{name}@{BATCH_ALIAS} "
              f"--set features.initial_user_state={result['user_state']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
