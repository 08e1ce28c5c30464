"""The job graph: source -> triage -> batches per (user shard, slice) -> features -> (trainer, predictor) -> sinks.

    chunks -> ReadChunks (or lines -> TriageStream) -> parts + stamps -> slices per shard (SQL) -> key_by(shard) -> UserFeatures
               |                                                                    |  +-> key_by(const) -> TrainOnWindows
               +-> dead letters (invalid, late)         dead letters (duplicates) <-+  |       | snapshots (broadcast)
                                                                                       +-> key_by(shard) -> ScoreEvents -> predictions
                                                                       drift events (trainer) -> drift

Files cross into Python in chunks of thousands of lines (parallel readers, one per subtask); a
Kafka stream line by line through one keyed triage. Flink SQL groups the timely events of each
user shard and event-time slice into one record (ARRAY_AGG) before the per-user operators see
them. Lines come from files or Kafka; predictions, dead letters and drift go to JSONL files or
Kafka topics; snapshots always go to files (and MLflow).

Every stateful DataStream operator has a stable uid so that savepoints survive code changes; the
SQL stages take the planner's uids, which stay the same while the configuration does.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pyflink.common import Configuration, Encoder, Row, Types, WatermarkStrategy
from pyflink.datastream import DataStream, OutputTag, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink
from pyflink.datastream.connectors.file_system import (
    FileSink,
    FileSource,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
)
from pyflink.datastream.connectors.hybrid_source import HybridSource
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.table import DataTypes, Schema, StreamTableEnvironment

from conf.settings import Settings
from jobs.input_sample import input_files
from jobs.kafka_io import kafka_jars, kafka_sink, kafka_source
from operators.constant_predictions import ConstantPredictions
from operators.featurize_users import UserFeatures
from operators.read_chunks import CHUNK_PADDING, MARKER_SHARD, PADDED_CHUNK, PART_TYPE, ReadChunks
from operators.report_to_mlflow import ReportToMlflow
from operators.score_events import SNAPSHOTS, ScoreEvents
from operators.tags import DEAD_LETTERS, DRIFT_EVENTS, TRAINING_ROWS
from operators.train_on_windows import TrainOnWindows
from operators.triage_stream import TriageStream
from udfs.features.chunks import MAX_PARALLELISM, Chunk, plan_chunks, reader_keys
from udfs.features.slice_batches import BLOB_SEPARATOR
from udfs.features.user_features import UserFeatureExtractor

OUTPUTS = ("predictions", "dead_letters", "drift", "snapshots")
LEARNING_SLOTS = "learning"
TRAINING_SLOT = "training"
MAP_STATE_CACHE_ENTRIES = 100_000
LOCAL_TASKMANAGERS = 2  # the job's and a spare (create_environment says why)
LOCAL_NETWORK_MEMORY = "32mb"  # per TaskManager on the MiniCluster
LOCAL_YOUNG_GEN_MB = 48  # the local JVM's and its Python workers' memory: create_environment says why
LOCAL_MALLOC_ARENAS = 2


@dataclass(frozen=True)
class MlflowTarget:
    tracking_uri: str
    run_id: str


def create_environment(settings: Settings) -> StreamExecutionEnvironment:
    job = settings.job
    # Read when PyFlink starts the local JVM, i.e. before the first Java object below; a JVM_ARGS
    # set by the user wins. No effect under `flink run`, whose JVM already runs. The parallel
    # collector: G1's concurrent threads took 7 of the JVM's 55 CPU-seconds on the bench's
    # 300,000 events, on a machine whose 2 cores the Python workers need as well.
    # A young generation of LOCAL_YOUNG_GEN_MB: the parallel collector's adaptive one grew to
    # ~170 MB of resident heap for garbage the job makes in small batches. glibc gives each thread
    # that allocates (the embedded interpreter runs on every task thread) an arena of its own,
    # which keeps freed memory; two arenas are enough for the 2 cores. Measured on the bench
    # file: peak 1,581-1,583 MiB -> 1,428-1,461 MiB for both, at the same speed. C1 alone compiles
    # the Java code (TieredStopAtLevel=1): C2's compiler threads took 12 of the JVM's 60
    # CPU-seconds and ~50 MB for code this job spends a small part of its time in. Measured: the
    # same elapsed time, 4-5 JVM CPU-seconds and 45-60 MB of peak less.
    os.environ.setdefault("JVM_ARGS", f"-Xmx{job.local_heap_mb}m -Xmn{LOCAL_YOUNG_GEN_MB}m -XX:+UseParallelGC "
                                      "-XX:TieredStopAtLevel=1")
    os.environ.setdefault("MALLOC_ARENA_MAX", str(LOCAL_MALLOC_ARENAS))
    # PyFlink's workers, and thread mode's embedded interpreter too, look for `python` on PATH.
    bin_dir, path = str(Path(sys.executable).parent), os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{path}"
    conf = Configuration()
    conf.set_string("python.execution-mode", job.python_execution_mode)
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.fn-execution.bundle.size", str(job.python_bundle_size))
    conf.set_string("python.fn-execution.bundle.time", str(job.python_bundle_time_ms))
    conf.set_string("pipeline.auto-watermark-interval", f"{job.watermark_interval_ms} ms")
    # Per-user state is a MapState entry in the key of the user's shard: a worker's cache of map
    # entries (PyFlink's default: 1,000) spares a JVM round trip per user and batch. 100,000 users
    # at about 1.5 KB each: 150 MB per worker at most. Measured: 100,000 users, 51.0 s -> 43.7 s.
    conf.set_string("python.map-state.read-cache-size", str(MAP_STATE_CACHE_ENTRIES))
    conf.set_string("python.map-state.write-cache-size", str(MAP_STATE_CACHE_ENTRIES))
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
    # On the MiniCluster PyFlink runs every Python operator inside this client process by default
    # ("loopback" workers: one interpreter, one GIL for the whole job). Separate worker processes,
    # one per slot, are what a cluster uses and let the job use more than one core here too.
    os.environ["_python_worker_execution_mode"] = "process"
    conf.set_string("taskmanager.numberOfTaskSlots", str(slots_needed(settings)))
    # A spare TaskManager on the MiniCluster, with all the slots the job needs. A TaskManager stops
    # for good when a cancelled task cannot be cleaned up; PyFlink's process-mode operators do that
    # now and then (Beam: "Reference count must not be negative", a bundle in flight when a failure
    # cancels them), and on a cluster the deployment starts a new one. Here the restart goes to the
    # spare instead of waiting for slots that never come back. Each TaskManager gets half of Flink's
    # local default network memory (64 MB, allocated up front): measured, the same speed and peak
    # memory as one TaskManager with 64 MB. No effect under `flink run`.
    conf.set_string("local.number-taskmanager", str(LOCAL_TASKMANAGERS))
    conf.set_string("taskmanager.memory.network.min", LOCAL_NETWORK_MEMORY)
    conf.set_string("taskmanager.memory.network.max", LOCAL_NETWORK_MEMORY)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(job.parallelism)
    if uses_kafka(settings):
        env.add_jars(*(jar.as_uri() for jar in kafka_jars()))
    return env


def slots_needed(settings: Settings) -> int:
    """The front (the file readers, at ``parallelism``; Kafka's source and triage, one) has slots of
    its own, beside ``parallelism`` slots for the per-user operators and the trainer, and one more
    for a trainer of its own (``job.trainer_slot``; see build_pipeline). A cluster needs as many free.

    >>> from conf.settings import load_settings
    >>> [slots_needed(load_settings(overrides=["job.parallelism=2", f"job.trainer_slot={s}"])) for s in ("shared", "own")]
    [4, 5]
    >>> slots_needed(load_settings(overrides=["job.parallelism=2", "source.kind=kafka"]))
    3
    """
    front = 1 if settings.source.kind in ("kafka", "hybrid") else settings.job.parallelism
    return front + settings.job.parallelism + (1 if settings.job.trainer_slot == "own" else 0)


def uses_kafka(settings: Settings) -> bool:
    return settings.source.kind in ("kafka", "hybrid") or settings.output.kind == "kafka"


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


def _batches(env: StreamExecutionEnvironment, settings: Settings,
             input_paths: list[str]) -> tuple[DataStream, DataStream]:
    """The front: lines -> one record per (user shard, event-time slice), ``Row(shard, events)`` with
    the slice's events as udfs/features/slice_batches.py encodes them.

    Returns the batches and the front's dead letters (invalid, late or far-ahead lines, as JSON).
    Files go through parallel chunk readers; Kafka and the hybrid source through Flink's sources
    and a vectorised triage.
    """
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    files = [str(f) for f in input_files(input_paths)] if settings.source.kind in ("file", "generator") else []
    chunks = plan_chunks(files, settings.source.chunk_lines)
    if chunks:
        return _chunk_front(env, t_env, settings, files, chunks)
    return _stream_front(env, t_env, settings, input_paths)


def _chunk_front(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, settings: Settings,
                 files: list[str], chunks: list[Chunk]) -> tuple[DataStream, DataStream]:
    """Files (split ``i``: ``files[i]``): a source of chunk numbers, keyed readers (one per subtask,
    each owning its files), then Flink SQL batches their parts per (shard, slice) under the
    readers' watermarks."""
    readers = min(settings.job.parallelism, len(files), MAX_PARALLELISM)
    keys = reader_keys(readers)
    finished = set(range(len(files))) - {c.split for c in chunks}  # empty files
    numbers = env.from_source(NumberSequenceSource(0, len(chunks) - 1), WatermarkStrategy.no_watermarks(),
                              "chunks").uid("chunks").set_parallelism(1)
    # Each chunk number travels padded to more than a network buffer: a few numbers in flight fill the
    # channel, so the source stays at most a few chunks ahead of the readers. Unpadded, it sent every
    # number at once and finished, and a checkpoint or a stop with a savepoint (aligned, behind the
    # numbers already sent) then waited until the readers had read the whole input.
    padded = numbers.map(lambda n: Row(n, CHUNK_PADDING), output_type=PADDED_CHUNK).set_parallelism(1)
    parts = padded.key_by(lambda c: keys[chunks[c[0]].split % readers], key_type=Types.INT()) \
        .process(ReadChunks(settings, chunks, keys, finished), output_type=PART_TYPE) \
        .uid("reader").name("reader").set_parallelism(readers).set_max_parallelism(MAX_PARALLELISM)
    return _batched_parts(t_env, parts, readers, settings.batching.slice_ms), _side_output(parts, DEAD_LETTERS, readers)


def _side_output(stream: DataStream, tag: OutputTag, parallelism: int) -> DataStream:
    """``stream``'s side output at ``parallelism``, its operator's. PyFlink follows a side output with an
    identity map that it does not give the operator's parallelism: a one-slot Kafka front's dead
    letters asked for a second slot (a cluster sized by ``slots_needed`` never started the job), and
    with one file reader at ``job.parallelism=2`` the training rows' map ran at 1. A chain of its own:
    see build_pipeline."""
    return stream.get_side_output(tag).set_parallelism(parallelism).start_new_chain()


def _batched_parts(t_env: StreamTableEnvironment, parts: DataStream, parallelism: int, slice_ms: int) -> DataStream:
    """The front's parts (PART_TYPE), batched by Flink SQL per (shard, slice) under the watermark their
    stamps make."""
    # The conversion runs at the front's parallelism, chained to it: each subtask's watermark is its
    # one reader's stamp (a conversion fed by several readers would take the newest of theirs).
    t_env.get_config().set("table.exec.resource.default-parallelism", str(parallelism))
    schema = Schema.new_builder() \
        .column("shard", DataTypes.INT()).column("slice_start", DataTypes.BIGINT()) \
        .column("events", DataTypes.STRING()).column("stamp", DataTypes.BIGINT()) \
        .column_by_expression("rt", "TO_TIMESTAMP_LTZ(slice_start, 3)") \
        .column_by_expression("wt", "TO_TIMESTAMP_LTZ(stamp, 3)") \
        .watermark("rt", "wt").build()
    t_env.create_temporary_view("front_parts", t_env.from_data_stream(parts, schema))
    batches = t_env.sql_query(f"""
        SELECT shard, ARRAY_JOIN(ARRAY_AGG(events), '{BLOB_SEPARATOR}') AS events
        FROM TABLE(TUMBLE((SELECT * FROM front_parts WHERE shard <> {MARKER_SHARD}), DESCRIPTOR(rt),
                          {_interval(slice_ms)}))
        GROUP BY shard, window_start, window_end""")
    return t_env.to_data_stream(batches)


def _stream_front(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, settings: Settings,
                  input_paths: list[str]) -> tuple[DataStream, DataStream]:
    """Kafka, and files then Kafka: one source and a keyed triage in one sequence (parallelism 1), so
    the whole stream is one split for lateness, its newest event time in Flink state."""
    if settings.source.kind == "kafka":
        source = kafka_source(settings.kafka)
    else:  # hybrid: the files to their end, then Kafka: one source, one job
        source = HybridSource.builder(_file_source(input_paths)).add_source(kafka_source(settings.kafka)).build()
    # A quiet Kafka partition never holds the watermark back: the triage's stamps make it (no
    # idleness timeout). The type named: Java cannot infer it through HybridSource's generic parameter.
    lines = env.from_source(source, WatermarkStrategy.no_watermarks(), "interactions", type_info=Types.STRING()) \
        .uid("source").set_parallelism(1)
    parts = lines.key_by(lambda line: 0, key_type=Types.INT()) \
        .process(TriageStream(settings), output_type=PART_TYPE) \
        .uid("triage").name("triage").set_parallelism(1).set_max_parallelism(1)
    return _batched_parts(t_env, parts, 1, settings.batching.slice_ms), _side_output(parts, DEAD_LETTERS, 1)


def _file_source(paths: list[str]) -> FileSource:
    return FileSource.for_record_stream_format(StreamFormat.text_line_format(), *paths).build()


def _interval(ms: int) -> str:
    """A SQL interval literal of ``ms`` milliseconds (``INTERVAL 'n' SECOND`` stops at 99 s).

    >>> _interval(300_000)
    "INTERVAL '00:05:00.000' HOUR TO SECOND"
    """
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"INTERVAL '{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}' HOUR TO SECOND"


def build_passthrough(env: StreamExecutionEnvironment, settings: Settings, input_paths: list[str]) -> None:
    """The platform ceiling for benchmarks: the job's source, triage, batching and prediction sink with
    one trivial keyed Python operator in place of features, training and scoring."""
    batches, dead_letters = _batches(env, settings, input_paths)
    predictions = batches.key_by(lambda b: b.shard, key_type=Types.INT()) \
        .flat_map(ConstantPredictions(), output_type=Types.STRING()).name("constant-score") \
        .set_parallelism(settings.job.parallelism)
    predictions.sink_to(_sink(settings, "predictions", settings.kafka.predictions_topic))
    dead_letters.sink_to(_sink(settings, "dead_letters", settings.kafka.dead_letters_topic))


def build_pipeline(env: StreamExecutionEnvironment, settings: Settings, input_paths: list[str]) -> DataStream:
    """The whole graph but the snapshots' sink (``sink_snapshots``), which needs the MLflow run: the
    client opens the run while this builds. Returns the trainer's snapshots."""
    batches, triage_dead_letters = _batches(env, settings, input_paths)
    # Keyed operators after the SQL stage take the parallelism of their input unless told otherwise.
    # They share slots of their own, apart from the front: all Python operators of a slot share one
    # worker process (one GIL), and the front's triage, one sequence for the whole stream, must not
    # wait for the per-user operators' Python work.
    parallelism = settings.job.parallelism
    rows = batches.key_by(lambda b: b.shard, key_type=Types.INT()) \
        .process(UserFeatures(settings), output_type=Types.PICKLED_BYTE_ARRAY()).uid("user-features") \
        .name("user-features").set_parallelism(parallelism).slot_sharing_group(LEARNING_SLOTS)
    dense_names = UserFeatureExtractor.from_settings(settings).dense_names
    # The trainer gets each batch's sample rows as a side output.
    trained = _side_output(rows, TRAINING_ROWS, parallelism).key_by(lambda r: 0, key_type=Types.INT()) \
        .process(TrainOnWindows(settings, dense_names), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .uid("trainer").name("trainer").set_parallelism(1).set_max_parallelism(1) \
        .slot_sharing_group(TRAINING_SLOT if settings.job.trainer_slot == "own" else LEARNING_SLOTS)
    predictions = rows.key_by(lambda r: r[0], key_type=Types.INT()) \
        .connect(trained.broadcast(SNAPSHOTS)) \
        .process(ScoreEvents(settings), output_type=Types.STRING()).uid("predictor").name("predictor") \
        .set_parallelism(parallelism).slot_sharing_group(LEARNING_SLOTS)  # its inputs' groups may differ

    # Side outputs and the snapshot map start chains of their own: PyFlink follows a side output with
    # an identity Python map, and a Python operator chained onto another one puts two interpreter
    # thread states on one task thread. In thread mode a C extension that takes the GIL through
    # PyGILState (scipy's pybind11 modules, sqlite3 under MLflow) then waits for itself forever.
    k = settings.kafka
    # A sink's parallelism is not its input's unless told: measured, one writer for every event with
    # one file reader at job.parallelism=2.
    predictions.sink_to(_sink(settings, "predictions", k.predictions_topic)).uid("predictions-sink") \
        .set_parallelism(parallelism)
    triage_dead_letters.union(_side_output(rows, DEAD_LETTERS, parallelism)) \
        .sink_to(_sink(settings, "dead_letters", k.dead_letters_topic)).uid("dead-letters-sink")
    _side_output(trained, DRIFT_EVENTS, 1) \
        .sink_to(_sink(settings, "drift", k.drift_topic)).uid("drift-sink")
    return trained


def sink_snapshots(trained: DataStream, settings: Settings, target: MlflowTarget | None) -> None:
    """Snapshots to files, through the MLflow reporter when the run has one."""
    if target is None:
        as_json = trained.map(json.dumps, output_type=Types.STRING()).uid("snapshot-json").set_parallelism(1) \
            .start_new_chain()
    else:
        as_json = trained.map(ReportToMlflow(settings, target.tracking_uri, target.run_id),
                              output_type=Types.STRING()) \
            .uid("mlflow-reporter").name("mlflow-reporter").set_parallelism(1).start_new_chain()
    as_json.sink_to(_sink(settings, "snapshots")).uid("snapshots-sink")
