"""The job graph: source -> parse -> per-user features -> (trainer, predictor) -> sinks.

                       +--> key_by(const) -> TrainOnWindows --snapshots--+--> MLflow -> snapshots/
    lines -> Parse -> key_by(user) -> UserFeatures                        | broadcast
                       +--> key_by(user) -> ScoreEvents <----------------+
                                              +--> predictions
    dead letters (parse, late) -> dead letters      drift events (trainer) -> drift

Lines come from files or Kafka; predictions, dead letters and drift go to JSONL files or Kafka
topics; snapshots always go to files (and MLflow).

Every stateful operator has a stable uid so that savepoints survive code changes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from pyflink.common import Configuration, Duration, Encoder, Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink
from pyflink.datastream.connectors.file_system import (
    FileSink, FileSource, OutputFileConfig, RollingPolicy, StreamFormat,
)

from conf.settings import Settings
from jobs.kafka_io import kafka_jars, kafka_sink, kafka_source
from operators.mlflow_reporting import ReportToMlflow
from operators.parse_events import EventTimeAssigner, ParseEvents
from operators.passthrough import constant_prediction
from operators.predictor import SNAPSHOTS, ScoreEvents
from operators.tags import DEAD_LETTERS, DRIFT_EVENTS
from operators.user_features import UserFeatures
from operators.window_trainer import TrainOnWindows
from udfs.user_features import UserFeatureExtractor

OUTPUTS = ("predictions", "dead_letters", "drift", "snapshots")


@dataclass(frozen=True)
class MlflowTarget:
    tracking_uri: str
    run_id: str


def create_environment(settings: Settings) -> StreamExecutionEnvironment:
    job = settings.job
    conf = Configuration()
    conf.set_string("python.execution-mode", job.python_execution_mode)
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.fn-execution.bundle.size", str(job.python_bundle_size))
    conf.set_string("python.fn-execution.bundle.time", str(job.python_bundle_time_ms))
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", str(job.restart_attempts))
    conf.set_string("restart-strategy.fixed-delay.delay", f"{job.restart_delay_ms} ms")
    conf.set_string("state.backend.type", job.state_backend)
    conf.set_string("execution.checkpointing.interval", f"{job.checkpoint_interval_ms} ms")
    conf.set_string("execution.checkpointing.mode", job.checkpoint_mode.upper())
    conf.set_string("execution.checkpointing.dir", settings.checkpoint_dir().as_uri())
    conf.set_string("execution.checkpointing.savepoint-dir", settings.savepoint_dir().as_uri())
    conf.set_string("execution.checkpointing.num-retained", str(job.checkpoints_retained))
    # Keep checkpoints when the job is cancelled or fails for good: they are what --resume restarts from.
    conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if job.resume_from:
        conf.set_string("execution.state-recovery.path", job.resume_from)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(job.parallelism)
    if uses_kafka(settings):
        env.add_jars(*(jar.as_uri() for jar in kafka_jars()))
    return env


def uses_kafka(settings: Settings) -> bool:
    return settings.source.kind == "kafka" or settings.output.kind == "kafka"


def _sink(settings: Settings, name: str, topic: str | None = None) -> Sink:
    """Kafka topic when ``output.kind`` is kafka and the output has a topic, else JSONL files."""
    if topic is not None and settings.output.kind == "kafka":
        return kafka_sink(settings.kafka, topic)
    return _file_sink(settings.output_dir(), name)


def _file_sink(root: Path, name: str) -> FileSink:
    """Part files roll and commit at every checkpoint: what is visible is exactly what a restore keeps."""
    config = OutputFileConfig.builder().with_part_prefix(name).with_part_suffix(".jsonl").build()
    return FileSink.for_row_format(str(root / name), Encoder.simple_string_encoder()) \
        .with_output_file_config(config).with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy()).build()


def _parsed_events(env: StreamExecutionEnvironment, settings: Settings,
                   input_paths: list[str]) -> tuple[DataStream, DataStream]:
    """Source -> parse (dead letters on a side output) -> event-time watermarks."""
    if settings.source.kind == "kafka":
        source = kafka_source(settings.kafka)
    else:
        source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), *input_paths).build()
    lines = env.from_source(source, WatermarkStrategy.no_watermarks(), "interactions").uid("source")
    parsed = lines.process(ParseEvents(settings), output_type=Types.PICKLED_BYTE_ARRAY()).uid("parse").name("parse")
    watermarks = WatermarkStrategy \
        .for_bounded_out_of_orderness(Duration.of_millis(settings.source.max_out_of_orderness_ms)) \
        .with_idleness(Duration.of_millis(settings.source.idleness_ms)) \
        .with_timestamp_assigner(EventTimeAssigner())
    return parsed, parsed.assign_timestamps_and_watermarks(watermarks).uid("event-time")


def build_passthrough(env: StreamExecutionEnvironment, settings: Settings, input_paths: list[str]) -> None:
    """The platform ceiling for benchmarks: the job's source, parsing and prediction sink with one
    trivial keyed Python operator in place of features, training and scoring."""
    parsed, events = _parsed_events(env, settings, input_paths)
    predictions = events.key_by(lambda e: e.user_id, key_type=Types.STRING()) \
        .map(constant_prediction, output_type=Types.STRING()).name("constant-score")
    predictions.sink_to(_sink(settings, "predictions", settings.kafka.predictions_topic))
    parsed.get_side_output(DEAD_LETTERS).sink_to(_sink(settings, "dead_letters", settings.kafka.dead_letters_topic))


def build_pipeline(env: StreamExecutionEnvironment, settings: Settings, input_paths: list[str],
                   mlflow_target: MlflowTarget | None) -> None:
    parsed, events = _parsed_events(env, settings, input_paths)

    rows = events.key_by(lambda e: e.user_id, key_type=Types.STRING()) \
        .process(UserFeatures(settings), output_type=Types.PICKLED_BYTE_ARRAY()).uid("user-features").name("user-features")
    dense_names = UserFeatureExtractor.from_settings(settings).dense_names
    trained = rows.key_by(lambda r: 0, key_type=Types.INT()) \
        .process(TrainOnWindows(settings, dense_names), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("trainer").name("trainer").set_parallelism(1).set_max_parallelism(1)
    predictions = rows.key_by(lambda r: r.user_id, key_type=Types.STRING()) \
        .connect(trained.broadcast(SNAPSHOTS)) \
        .process(ScoreEvents(settings), output_type=Types.STRING()).uid("predictor").name("predictor")

    k = settings.kafka
    predictions.sink_to(_sink(settings, "predictions", k.predictions_topic)).uid("predictions-sink")
    parsed.get_side_output(DEAD_LETTERS).union(rows.get_side_output(DEAD_LETTERS)) \
        .sink_to(_sink(settings, "dead_letters", k.dead_letters_topic)).uid("dead-letters-sink")
    trained.get_side_output(DRIFT_EVENTS).sink_to(_sink(settings, "drift", k.drift_topic)).uid("drift-sink")
    _snapshot_json(trained, settings, mlflow_target).sink_to(_sink(settings, "snapshots")).uid("snapshots-sink")


def _snapshot_json(trained: DataStream, settings: Settings, target: MlflowTarget | None) -> DataStream:
    if target is None:
        return trained.map(json.dumps, output_type=Types.STRING()).uid("snapshot-json").set_parallelism(1)
    return trained.map(ReportToMlflow(settings, target.tracking_uri, target.run_id), output_type=Types.STRING()) \
        .uid("mlflow-reporter").name("mlflow-reporter").set_parallelism(1)
