"""What the client settles before the job starts: input, feature schema, warm start, slices, outputs.

Every check here fails with a SettingsError that names the key or file at fault, before Flink starts."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from conf.settings import Settings, SettingsError
from jobs.mlflow_process import call_once
from jobs.input_sample import count_and_sample, kafka_sample, last_event_time, parquet_as_jsonl
from jobs.pipeline import OUTPUTS
from jobs.run_folder import RECORD_FILE, SETTINGS_FILE
from udfs.features.events import parse_time
from udfs.features.input_shape import EXPECTED_SHAPE, unreadable_sample
from udfs.features.schema import AUTO as AUTO_FEATURES
from udfs.features.schema import FeatureSchema, infer_schema
from udfs.features.slicing import AUTO, LIVE_SLICE_MS, SAMPLE_LINES, with_slice, with_slice_ms
from udfs.features.user_features import UserFeatureExtractor, UserStateFile
from udfs.sim.stream_generator import CovariateShift, StreamSpec, generate_events, write_jsonl
from udfs.tracking.warm_start import check_compatible

RUN_ID_FILE = "mlflow_run_id"
SCHEMA_FILE = "schema.json"

KAFKA_SAMPLE_TIMEOUT_S = 15.0


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
        path = call_once("fetch_warm_start", settings, settings.output_dir() / "warm-start-snapshot.json")
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
                         settings.features.hash_buckets, settings.model.kind, given, settings.model.id_buckets)
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
    spec = generator_spec(settings)
    print(f"generating {g.events} events for {g.users} users over {g.duration_s / 3600:.1f} h -> {path}", flush=True)
    write_jsonl(generate_events(spec), path)
    return [str(path)]


def generator_spec(settings: Settings) -> StreamSpec:
    """The built-in generator's stream as ``source.generator`` describes it."""
    g = settings.source.generator
    return StreamSpec(
        n_events=g.events, n_users=g.users, n_items=g.items, duration_s=g.duration_s, seed=g.seed,
        n_numeric=g.numeric, n_categorical=g.categorical, labeled_fraction=g.labeled_fraction,
        base_rate=g.base_rate, signal=g.signal, concept_drift_at_s=g.concept_drift_at_s,
        covariate_shifts=tuple(CovariateShift(s.feature, s.at_s, s.delta_std) for s in g.covariate_shifts),
    )


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
                            f"events need a 'features' object: {EXPECTED_SHAPE}")
    resolved = schema.apply(settings)
    print(f"features         {schema.describe()}", flush=True)
    for warning in schema.warnings:
        print(f"warning          {warning}", flush=True)
    (settings.output_dir() / SCHEMA_FILE).write_text(json.dumps(schema.to_json(), indent=2))
    return resolved, schema


def check_input_shape(settings: Settings, sample: list[str], where: str) -> None:
    """A sample the job could mostly not read (CSV, epoch seconds...) stops the run here, saying what
    the input must look like, instead of a run of dead letters."""
    v = settings.validation
    problem = unreadable_sample(sample, parse_time(v.min_event_time), parse_time(v.max_event_time), v.min_valid_share)
    if problem is not None:
        raise SettingsError(f"{where}: {problem} (validation.min_valid_share={v.min_valid_share})")


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


def clear_outputs(settings: Settings, state_too: bool = True) -> None:
    """A re-run into the same folder must not mix its records with the previous run's (``state_too``
    False: the checkpoints and the generated input stay, for a resume that starts the outputs over)."""
    out = settings.output_dir()
    names = OUTPUTS + (RUN_ID_FILE, SCHEMA_FILE, RECORD_FILE, SETTINGS_FILE, "summary.json")
    paths = [out / name for name in names] + ([out / "input", settings.checkpoint_dir()] if state_too else [])
    for folder in paths:
        if folder.is_dir():
            shutil.rmtree(folder)
        elif folder.exists():
            folder.unlink()


@dataclass(frozen=True)
class Prepared:
    """What the client settles before the job starts."""

    settings: Settings    # feature columns, warm start, slices and the hybrid switch resolved
    inputs: list[str]     # the file source's paths
    schema: FeatureSchema
    where: str            # the input as the user named it
    lines: int            # lines in the input files (0 for Kafka: unknown), read once with the sample


def prepare(settings: Settings) -> Prepared:
    """Input files, feature columns, warm start, slices, the hybrid switch: a SettingsError here stops
    the job before it starts, naming what to fix."""
    inputs = prepare_input(settings)
    counted = input_sample(settings, inputs)
    where = describe_source(settings, inputs)
    check_input_shape(settings, counted[1], where)
    given_warm_start = settings.model.warm_start
    settings, warm = fetch_warm_start(settings)
    settings, schema = resolve_schema(settings, counted[1], where, warm["dense_names"] if warm else [])
    check_user_state(settings)
    if warm is not None:
        check_warm_start(settings, warm, given_warm_start)
    settings = resolve_hybrid_switch(resolve_slice(settings, inputs, counted), inputs)
    return Prepared(settings, inputs, schema, where, counted[0])

