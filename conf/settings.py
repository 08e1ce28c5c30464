"""The job's one configuration object, loaded from YAML and validated once at start-up.

Every setting lives here so that operators receive a single, already-validated object
and no module reads the environment on its own. Validation errors name the dotted key
that is wrong (``model.learning_rate``) and the file it came from.

>>> cfg = load_settings(overrides=["model.learning_rate=0.01", "window.size_ms=60000"])
>>> cfg.model.learning_rate, cfg.window.size_ms
(0.01, 60000)
>>> load_settings(overrides=["model.learning_rat=0.01"])
Traceback (most recent call last):
...
conf.settings.SettingsError: invalid configuration (built-in defaults + --set): model.learning_rat: unknown key (extra inputs are not permitted); did you mean model.learning_rate?
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path(__file__).with_name("local.yaml")


class SettingsError(ValueError):
    """A configuration problem, worded so that the user can fix it without reading code."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobSettings(_Section):
    name: str = "online-learning"
    parallelism: int = Field(1, ge=1)
    # "thread": Python operators run inside the TaskManager JVM (no per-call JVM round trip for state);
    # measured faster and leaner than "process" on the default bench (README, Performance).
    python_execution_mode: Literal["thread", "process"] = "thread"
    # "own": the trainer (and the MLflow reporter) get a slot of their own. In process mode that is a
    # Python worker of their own, and a window's training never holds up the scoring of the per-user
    # subtask it would share a worker with (a live stream's p99 latency), for a worker's memory and,
    # on 2 cores, about a fifth of a replay's throughput. In thread mode it is a task thread of its
    # own in the same interpreter; a window's close still holds up the graph (README, Latency).
    trainer_slot: Literal["shared", "own"] = "shared"
    python_bundle_size: int = Field(1000, ge=1)
    python_bundle_time_ms: int = Field(1000, ge=1)
    # How often watermarks move (Flink's pipeline.auto-watermark-interval): a live stream's events
    # wait for the watermark, so this adds up to its value to their latency.
    watermark_interval_ms: int = Field(200, ge=1)
    checkpoint_interval_ms: int = Field(10_000, ge=100)
    checkpoint_mode: Literal["exactly_once", "at_least_once"] = "exactly_once"
    checkpoint_dir: str | None = None      # null: <output.path>/checkpoints
    checkpoints_retained: int = Field(3, ge=1)
    savepoint_dir: str | None = None       # null: <output.path>/savepoints (Ctrl-C stops with a savepoint there)
    state_backend: Literal["hashmap", "rocksdb"] = "hashmap"
    restart_attempts: int = Field(3, ge=0)
    restart_delay_ms: int = Field(2_000, ge=0)
    # A checkpoint or savepoint to start from (the CLI's --resume): state, offsets and outputs carry on.
    resume_from: str | None = None
    wait_for_completion: bool = True  # false: submit and return (flink run -d on a cluster)
    # Heap of the JVM that runs the local MiniCluster (Java's default is a quarter of the
    # machine's memory); a cluster's TaskManagers take theirs from the cluster's configuration.
    local_heap_mb: int = Field(512, ge=128)


class CovariateShiftSettings(_Section):
    feature: str
    at_s: float = Field(ge=0)
    delta_std: float


class GeneratorSettings(_Section):
    events: int = Field(120_000, ge=1)
    users: int = Field(2_000, ge=1)
    items: int = Field(500, ge=1)
    duration_s: float = Field(3 * 3600.0, gt=0)
    seed: int = 7
    numeric: int = Field(6, ge=1)
    categorical: int = Field(2, ge=0)
    labeled_fraction: float = Field(0.8, ge=0, le=1)
    base_rate: float = Field(0.3, gt=0, lt=1)
    signal: float = Field(1.0, ge=0)
    concept_drift_at_s: float | None = None
    covariate_shifts: tuple[CovariateShiftSettings, ...] = ()


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topics: tuple[str, ...] = ("interactions",)
    group_id: str = "online-learning"
    starting_offsets: Literal["earliest", "latest", "committed", "timestamp"] = "earliest"
    starting_timestamp_ms: int | None = None
    stopping_offsets: dict[str, int] | None = None  # {"topic:partition": offset}: replay a fixed range, then finish
    predictions_topic: str = "predictions"
    dead_letters_topic: str = "dead-letters"
    drift_topic: str = "drift-events"
    delivery_guarantee: Literal["at-least-once", "exactly-once", "none"] = "at-least-once"
    transactional_id_prefix: str = "online-learning"
    # Passed to the Kafka clients as they are, e.g. {"fetch.max.wait.ms": "50"} or security settings.
    consumer_properties: dict[str, str] = {}
    producer_properties: dict[str, str] = {}

    @model_validator(mode="after")
    def _timestamp_needs_value(self) -> KafkaSettings:
        if self.starting_offsets == "timestamp" and self.starting_timestamp_ms is None:
            raise ValueError("kafka.starting_timestamp_ms: required when kafka.starting_offsets is 'timestamp'")
        for key in self.stopping_offsets or {}:
            topic, _, partition = key.rpartition(":")
            if not topic or not partition.isdigit():
                raise ValueError(f"kafka.stopping_offsets: key {key!r} must look like 'topic:partition'")
        return self


class ParquetSettings(_Section):
    """How Parquet input maps onto the event schema (udfs/features/parquet_events.py)."""

    # Event field -> Parquet column, where they differ: {"event_time": "ts", "features": "attrs"}.
    columns: dict[Literal["event_id", "user_id", "item_id", "event_time", "label", "features"], str] = {}
    # Flat feature columns; null: a 'features' struct/map column if there is one, else every other column.
    feature_columns: tuple[str, ...] | None = None


class SourceSettings(_Section):
    # hybrid: the files at `path` first, then Kafka from the files' last event time on (one job).
    kind: Literal["generator", "file", "kafka", "hybrid"] = "generator"
    path: str | None = None  # JSONL or Parquet files, or a folder of them
    parquet: ParquetSettings = ParquetSettings()
    generator: GeneratorSettings = GeneratorSettings()
    max_out_of_orderness_ms: int = Field(5_000, ge=0)
    # An event more than this ahead of its source split's newest event and of the clock is a dead
    # letter (event_time_too_far_ahead) instead of the split's new newest time; null: no such check.
    max_ahead_ms: int | None = Field(86_400_000, ge=0)
    # Files are read in chunks of this many lines, one Python call each, by job.parallelism readers.
    chunk_lines: int = Field(2_000, ge=1)

    @model_validator(mode="after")
    def _file_needs_path(self) -> SourceSettings:
        if self.kind in ("file", "hybrid") and not self.path:
            raise ValueError(f"source.path: required when source.kind is '{self.kind}' (or pass --input FILE_OR_DIR)")
        return self


class ValidationSettings(_Section):
    min_event_time: str = "2000-01-01T00:00:00Z"
    max_event_time: str = "2100-01-01T00:00:00Z"
    max_record_bytes: int = Field(65_536, ge=64)
    max_id_length: int = Field(256, ge=1)
    # Duplicate event ids are caught per user within this much event time, up to this many ids per user.
    dedup_horizon_ms: int = Field(3_600_000, ge=0)
    dedup_max_ids_per_user: int = Field(256, ge=1)
    # A bounded run whose share of valid events is below this fails (exit status 1, with the top reasons):
    # an input the job cannot read must not look like a successful run.
    min_valid_share: float = Field(0.5, ge=0, le=1)


class FeatureSettings(_Section):
    """Feature columns: names, or ``auto`` to infer them from a sample of the input (udfs/features/schema.py).

    The class defaults name the built-in generator's features (for library code and tests);
    conf/local.yaml, the CLI's default config, says ``auto``. The client resolves ``auto`` before the
    job starts, so operators only ever see names.
    """

    numeric: tuple[str, ...] | Literal["auto"] = ("amount", "dwell_seconds", "price", "discount_pct",
                                                  "pages_viewed", "scroll_depth")
    categorical: tuple[str, ...] | Literal["auto"] = ("device", "country", "is_returning")
    # Events read (file, folder, Parquet, or the first Kafka records) to infer ``auto`` and to check the lists.
    infer_sample: int = Field(2_000, ge=10)
    # Per-user feature state written by scripts/train_batch.py: users the job has not seen yet start
    # from their state at the end of the history instead of from nothing.
    initial_user_state: str | None = None
    hash_buckets: int = Field(64, ge=1)
    velocity_half_life_s: float = Field(3600.0, gt=0)
    positive_rate_prior: float = Field(0.3, gt=0, lt=1)
    positive_rate_prior_strength: float = Field(5.0, gt=0)
    zscore_clip: float = Field(5.0, gt=0)
    max_items_per_user: int = Field(50, ge=1)

    @field_validator("numeric", "categorical", mode="before")
    @classmethod
    def _names_are_text(cls, value: Any) -> Any:
        """YAML reads ``[0, 1]`` as numbers; feature names are JSON keys, always text."""
        return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else value

    @model_validator(mode="after")
    def _names_unique(self) -> FeatureSettings:
        names = [n for names in (self.numeric, self.categorical) if names != "auto" for n in names]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features.numeric/features.categorical: feature names listed twice: {dupes}")
        return self

    def names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The numeric and categorical columns, once ``auto`` has been resolved from the input."""
        if self.numeric == "auto" or self.categorical == "auto":
            raise SettingsError("features.numeric/features.categorical: 'auto' is resolved from a sample of the "
                                "input before the job starts (udfs/features/schema.py); name the features to use them here")
        return self.numeric, self.categorical


class EnsembleSettings(_Section):
    """``model.kind=ensemble``: one member per learning rate, weighted by exp(-eta x its decayed recent logloss)."""

    member: Literal["logistic", "mlp", "fm"] = "logistic"
    learning_rates: tuple[Annotated[float, Field(gt=0)], ...] = Field((0.003, 0.01, 0.03, 0.1), min_length=1)
    eta: float = Field(20.0, gt=0)
    loss_decay: float = Field(0.5, ge=0, lt=1)  # weight of the older windows in each member's recent logloss


class FtrlSettings(_Section):
    """``model.kind=ftrl``: FTRL-Proximal (McMahan et al., KDD 2013); ``l1`` gives exact zeros."""

    alpha: float = Field(0.5, gt=0)  # per-coordinate learning rate alpha / (beta + sqrt(sum of squared gradients))
    beta: float = Field(1.0, gt=0)
    l1: float = Field(0.5, ge=0)
    l2: float = Field(0.0, ge=0)


class FmSettings(_Section):
    """``model.kind=fm``: a factorization machine (Rendle, ICDM 2010) over the design matrix plus
    hashed one-hot ``user_id`` and ``item_id`` columns, trained with ``model.optimizer``."""

    factors: int = Field(4, ge=1)
    id_buckets: int = Field(1024, ge=1)  # hash buckets per id field (user, item)
    init_std: float = Field(0.1, gt=0)  # of the latent factors at the start


# Per learner (``model.kind``, or the ensemble's member), what ``model.learning_rate`` and ``model.batch_size``
# are when they are left out (or null): Adam's step for a line is too coarse for a hidden layer, whose
# default-stream windows then swing enough to raise false drift alarms (README "Model kinds").
KIND_DEFAULTS: dict[str, dict[str, float | int]] = {
    "logistic": {"learning_rate": 0.05, "batch_size": 256},
    "mlp": {"learning_rate": 0.01, "batch_size": 64},
    "ftrl": {"learning_rate": 0.05, "batch_size": 256},
    "fm": {"learning_rate": 0.3, "batch_size": 64},  # AdaGrad's base rate (udfs/learning/fm.py)
}


class ModelSettings(_Section):
    """What the trainer learns; ``learning_rate`` and ``batch_size`` default per kind (KIND_DEFAULTS).

    >>> [(m.learning_rate, m.batch_size) for m in (ModelSettings(), ModelSettings(kind="mlp"))]
    [(0.05, 256), (0.01, 64)]
    >>> ModelSettings(kind="mlp", learning_rate=0.003).learning_rate
    0.003
    """

    kind: Literal["logistic", "mlp", "ensemble", "ftrl", "fm"] = "logistic"
    hidden_units: tuple[Annotated[int, Field(ge=1)], ...] = Field((64,), min_length=1)  # mlp: units per hidden layer
    dropout: float = Field(0.0, ge=0, lt=1)  # mlp
    # Where torch learners train: auto = cuda when a GPU is visible, else cpu. Scoring runs on the CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    ensemble: EnsembleSettings = EnsembleSettings()
    ftrl: FtrlSettings = FtrlSettings()
    fm: FmSettings = FmSettings()
    optimizer: Literal["sgd", "adam"] = "adam"
    learning_rate: float = Field(0.05, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(256, ge=1)
    l2: float = Field(1e-4, ge=0)
    scaler_decay: float = Field(0.9, ge=0, lt=1)
    seed: int = 0
    # Start from a registered model instead of from zero: models:/NAME@ALIAS, models:/NAME/VERSION,
    # runs:/RUN_ID/models/model-NNNNNN, or a snapshot JSON file (one line of snapshots/).
    warm_start: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        """Fills ``learning_rate`` / ``batch_size`` left out or null with the learner's defaults."""
        if not isinstance(data, dict):
            return data
        ensemble = data.get("ensemble")
        member = ensemble.get("member") if isinstance(ensemble, dict) else getattr(ensemble, "member", None)
        kind = data.get("kind", "logistic")
        learner = (member or "logistic") if kind == "ensemble" else kind
        defaults = KIND_DEFAULTS.get(learner, {})
        return {**data, **{key: value for key, value in defaults.items() if data.get(key) is None}}

    @property
    def id_buckets(self) -> int:
        """Hashed one-hot columns per id field the features carry: only factorization machines use them."""
        uses_fm = self.kind == "fm" or (self.kind == "ensemble" and self.ensemble.member == "fm")
        return self.fm.id_buckets if uses_fm else 0

    @model_validator(mode="after")
    def _cuda_visible(self) -> ModelSettings:
        if self.device == "cuda":
            import torch  # only here: most configurations never need it to validate

            if not torch.cuda.is_available():
                raise ValueError("model.device: 'cuda' but no CUDA GPU is visible to this torch build "
                                 f"({torch.__version__}); use model.device=auto or cpu")
        return self


class WindowSettings(_Section):
    size_ms: int = Field(300_000, ge=1_000)
    # Event-time slots inside a window: the concept checks run per slot, and while the stream
    # drifts (fast mode) the model is updated per slot too. Must divide size_ms.
    slot_ms: int = Field(30_000, ge=1_000)
    # How much older than an event's slot start the model that scores it must be. 0 serves the
    # freshest model, so a slot's first rows wait for the trainer to close the slot before (and a
    # window's, for its training). A multiple of slot_ms lets rows be scored as they arrive, with a
    # model that much staler: for live streams where latency matters more than the last slot.
    serving_lag_ms: int = Field(0, ge=0)
    # The trainer learns from at most this many rows of a window: a uniform sample of each slot,
    # chosen by event-id hash by the per-user subtasks (udfs/learning/row_sample.py), so that its work
    # does not grow with the stream. Windows with fewer rows train on all of them; null: every row.
    training_rows: int | None = Field(4_096, ge=1)

    @model_validator(mode="after")
    def _slots_tile_windows(self) -> WindowSettings:
        if self.size_ms % self.slot_ms:
            raise ValueError(f"window.slot_ms={self.slot_ms} must divide window.size_ms={self.size_ms} "
                             "(a slot may not straddle two windows)")
        if self.serving_lag_ms % self.slot_ms or self.serving_lag_ms > self.size_ms:
            raise ValueError(f"window.serving_lag_ms={self.serving_lag_ms} must be a multiple of "
                             f"window.slot_ms={self.slot_ms} and at most window.size_ms={self.size_ms} "
                             "(a lag is counted in whole slots: try 0 or the slot)")
        return self

    @property
    def slots_per_window(self) -> int:
        return self.size_ms // self.slot_ms

    @property
    def training_rows_per_slot(self) -> int | None:
        return None if self.training_rows is None else -(-self.training_rows // self.slots_per_window)


class BatchingSettings(_Section):
    """How events cross into Python: one batch per user shard and event-time slice.

    A batch holds the valid, timely events of one slice (``slice_ms`` of event time) whose users
    hash to one shard. Larger slices make larger batches (faster replays of history); a live
    stream waits up to one slice plus ``source.max_out_of_orderness_ms`` before it is scored, so
    keep slices short there. ``auto`` picks, at start-up, one second for Kafka and, for files,
    the longest slice (at most a window) whose batches hold about ``target_batch_events``
    (udfs/features/slicing.py). Results do not depend on these settings. ``shards`` caps the useful
    parallelism of the per-user operators.
    """

    slice_ms: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    target_batch_events: int = Field(2_000, ge=1)
    shards: int = Field(16, ge=1)


class DriftSettings(_Section):
    alpha: float = Field(0.05, gt=0, lt=1)
    correction: Literal["bonferroni", "holm", "benjamini-hochberg"] = "holm"
    features: tuple[str, ...] | None = None
    check_losses: bool = True
    reference_windows: int = Field(2, ge=1)
    reference_size: int = Field(5_000, ge=10)
    min_samples: int = Field(100, ge=10)
    min_statistic: float = Field(0.1, ge=0, le=1)
    check_error_rate: bool = True  # one-sided two-proportion test of the window's error rate
    min_error_rate_increase: float = Field(0.05, ge=0, le=1)
    seed: int = 0


class AdaptationSettings(_Section):
    """What the trainer does about concept drift and bad models (udfs/drift/adaptation.py)."""

    # On concept drift (loss or error-rate detection), in this order; [] turns adaptation off.
    policies: tuple[Literal["lr_boost", "reset_weights", "retrain_window"], ...] = ("lr_boost", "reset_weights", "retrain_window")
    learning_rate_boost: float = Field(3.0, ge=1)
    boost_windows: int = Field(2, ge=1)
    retrain_epochs: int = Field(10, ge=1)
    # Validation gate: a candidate serves only if its logloss on held-out rows of its window is not
    # worse than the serving model's by more than the tolerance.
    gate: bool = True
    holdout_fraction: float = Field(0.1, gt=0, lt=1)
    gate_tolerance: float = Field(0.05, ge=0)
    gate_min_rows: int = Field(30, ge=1)
    # Rollback: if a recent served snapshot beats the serving one on this window by this relative margin.
    rollback: bool = True
    rollback_tolerance: float = Field(0.25, ge=0)
    recent_snapshots: int = Field(4, ge=1)
    # Fast mode: a concept check that fires at a slot switches to one update per slot; back to one
    # per window once this many slots in a row have a loss within the calm band (udfs/drift/adaptation.py).
    fast_mode: bool = True
    calm_slots: int = Field(3, ge=1)


class MlflowSettings(_Section):
    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "online-learning"
    registered_model: str = "online-learning-model"
    register_every_windows: int = Field(12, ge=1)
    queue_size: int = Field(10_000, ge=1)
    flush_timeout_s: float = Field(120.0, ge=0)


class OutputSettings(_Section):
    kind: Literal["files", "kafka"] = "files"  # kafka: predictions, dead letters, drift to kafka.*_topic
    path: str = "out"


class Settings(_Section):
    """The whole configuration: one section per concern, validated together once at start-up."""

    # How the job runs, and what it reads.
    job: JobSettings = JobSettings()
    source: SourceSettings = SourceSettings()
    kafka: KafkaSettings = KafkaSettings()
    validation: ValidationSettings = ValidationSettings()
    # What it learns, and when.
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    window: WindowSettings = WindowSettings()
    batching: BatchingSettings = BatchingSettings()
    # How it watches and adapts.
    drift: DriftSettings = DriftSettings()
    adaptation: AdaptationSettings = AdaptationSettings()
    # Where results go.
    mlflow: MlflowSettings = MlflowSettings()
    output: OutputSettings = OutputSettings()

    @model_validator(mode="after")
    def _drift_features_known(self) -> Settings:
        if self.features.numeric == "auto":
            return self  # checked once the schema is known (udfs/features/schema.py)
        unknown = sorted(set(self.drift.features or ()) - set(self.features.numeric))
        if unknown:
            raise ValueError(f"drift.features: {unknown} are not in features.numeric")
        return self

    @model_validator(mode="after")
    def _slots_sample_enough_rows(self) -> Settings:
        w, least = self.window, self.window.slots_per_window * self.drift.min_samples
        if w.training_rows is not None and w.training_rows < least:
            raise ValueError(f"window.training_rows={w.training_rows} must be at least {least} (window.size_ms / "
                             f"window.slot_ms x drift.min_samples: each slot's concept check needs "
                             f"{self.drift.min_samples} rows), or null for every row")
        return self

    @model_validator(mode="after")
    def _slices_tile_windows(self) -> Settings:
        slice_ms, window_ms = self.batching.slice_ms, self.window.size_ms
        if slice_ms != "auto" and window_ms % slice_ms:
            divisors = [d for d in (1_000, 2_000, 5_000, 10_000, 30_000, 60_000) if window_ms % d == 0]
            raise ValueError(f"batching.slice_ms={slice_ms} must divide window.size_ms={window_ms} (a slice "
                             f"may not straddle two windows); for example {divisors or [window_ms]}")
        return self

    @property
    def drift_features(self) -> tuple[str, ...]:
        """Raw numeric features tested for drift (all numeric ones unless narrowed)."""
        return self.drift.features if self.drift.features is not None else self.features.numeric

    def output_dir(self) -> Path:
        return Path(self.output.path).resolve()

    def checkpoint_dir(self) -> Path:
        return Path(self.job.checkpoint_dir).resolve() if self.job.checkpoint_dir else self.output_dir() / "checkpoints"

    def savepoint_dir(self) -> Path:
        return Path(self.job.savepoint_dir).resolve() if self.job.savepoint_dir else self.output_dir() / "savepoints"

    def flat(self) -> dict[str, str]:
        """Dotted key -> value, for MLflow params."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, sub)
            else:
                out[prefix] = value if isinstance(value, str) else json.dumps(value)

        walk("", self.model_dump(mode="json"))
        return out


def _set_dotted(tree: dict[str, Any], dotted: str, raw: str) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SettingsError(f"--set {dotted}={raw}: '{part}' is a value, not a section")
        node = child
    node[leaf] = yaml.safe_load(raw) if raw != "" else None


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "value_error":  # our validators already name the full key
            lines.append(msg.removeprefix("Value error, "))
            continue
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (extra inputs are not permitted); {_did_you_mean(e['loc'])}"
        lines.append(f"{key}: {msg}" if key else msg)
    return "; ".join(lines)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """The closest known key of the mistyped key's section, or where the keys are listed.

    >>> _did_you_mean(("model", "learnig_rate")), _did_you_mean(("mlflow", "zzz"))
    ('did you mean model.learning_rate?', 'check spelling against conf/local.yaml')
    """
    section: type[BaseModel] = Settings
    for part in loc[:-1]:
        annotation = section.model_fields[str(part)].annotation if str(part) in section.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "check spelling against conf/local.yaml"
        section = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(section.model_fields), n=1)
    return f"did you mean {'.'.join(map(str, (*loc[:-1], close[0])))}?" if close else "check spelling against conf/local.yaml"


def load_settings(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Settings:
    """Read YAML (or the built-in defaults), apply ``key=value`` overrides, validate once."""
    origin = "built-in defaults"
    tree: dict[str, Any] = {}
    if path is not None:
        origin = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise SettingsError(f"config file not found: {path} (use conf/local.yaml or pass --config)") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"{path}: top level must be a mapping of sections (job:, source:, ...)")
        tree = loaded or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.learning_rate=0.01")
        _set_dotted(tree, key.strip(), raw)
    where = origin + (" + --set" if overrides else "")
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        raise SettingsError(f"invalid configuration ({where}): {_format_errors(exc)}") from None
