"""Benchmark: the full job against passthrough jobs, library mode and River, on one input.

    python scripts/bench.py [--events 300000] [--users 10000] [--numeric 17] [--parallelism 2] [--json bench.json]
                            [--kafka-rate auto|N|0] [--kafka-seconds 300] [--kafka-probes 4]
                            [--scaling-users 1000,10000,100000] [--scaling-events N]

Each contender runs in its own process on the same generated file:
1. passthrough: the job's source, parsing and prediction sink, one trivial keyed Python operator;
2. java_passthrough: the same file source straight into a file sink, no Python operator at all;
3. full: the whole job (features, prediction, windowed training, drift checks, MLflow logging);
4. library: the same udfs (features, model, windows, drift, scoring) in a plain Python loop;
5. river: River's per-event StandardScaler | LogisticRegression on the numeric features
   (scripts/river_baseline.py, in its own venv under .cache/river-venv, created on first use).
It prints events/s, the ratios full/passthrough, full/java_passthrough, full/library and full/river
(the job's time against River's loop), full/river for the whole commands (start-up included),
per-window training time (p50/p99), per-slot checks and fast-mode updates (p50/p99), peak resident memory of each contender's process tree, and
how training time grows with window size. The full job then runs again on streams with the same
event count and more users (``--scaling-users``; '' skips): events/s, peak memory and the cost per
event of the most users over that of the fewest. Kafka mode (on unless ``--kafka-rate 0``) then
runs the full job between Kafka topics at a fixed offered rate and prints the produce-to-prediction
latency p50/p99 (scripts/kafka_latency.py). ``auto`` offers half the highest rate the job keeps up
with, which a search finds first: runs of ``--kafka-probe-seconds`` each, doubling the rate from
1,000 events/s until the job falls behind, then halving the gap (``--kafka-probes`` runs in all).
Absolute numbers on shared machines are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conf.settings import Settings, load_settings
from scripts.kafka_latency import keeps_up, max_sustainable_rate, measure_latency
from scripts.operator_cpu import ThreadCpuPoller, by_name
from scripts.river_baseline import river_python
from udfs.sim.stream_generator import StreamSpec, generate_events, numeric_feature_names, write_jsonl

REPO = Path(__file__).resolve().parent.parent

RATIO_DENOMINATORS = ("passthrough", "java_passthrough", "library", "river")
KAFKA_SEARCH_START = 1_000.0  # events/s: the first probe of the search for the highest sustainable rate


def _process_tree(root: int) -> dict[int, tuple[str, int]]:
    """pid -> (command name, resident bytes) for a process and all its descendants (the JVM and
    Python workers), from /proc."""
    parents: dict[int, int] = {}
    procs: dict[int, tuple[str, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        pid, fields = int(stat.parent.name), tail.split()
        parents[pid], procs[pid] = int(fields[1]), (head.split("(", 1)[1], int(fields[21]) * resource.getpagesize())
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return {pid: procs[pid] for pid in tree if pid in procs}


def _failed(cmd: list[str], stdout: str, stderr: str) -> SystemExit:
    return SystemExit(f"benchmark step failed: {' '.join(cmd)}\n{stdout[-2000:]}\n{stderr[-4000:]}")


@dataclass
class ChildRun:
    result: dict  # the JSON of the command's last output line
    peak_rss_mib: float  # of the process tree
    wall_s: float  # the whole command, start-up and shut-down included
    jvm: ThreadCpuPoller | None  # CPU per JVM thread, when the command started a JVM


def _run_child(cmd: list[str]) -> ChildRun:
    """Runs a contender's command, polling its process tree's memory and its JVM's threads."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=REPO)
        peak, jvm = 0.0, None
        while proc.poll() is None:
            tree = _process_tree(proc.pid)
            peak = max(peak, sum(rss for _, rss in tree.values()) / 2**20)
            if jvm is None:
                jvm = next((ThreadCpuPoller(pid) for pid, (name, _) in tree.items() if name == "java"), None)
            if jvm is not None:
                jvm.poll()
            time.sleep(0.5)
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise _failed(cmd, stdout, stderr)
    return ChildRun(json.loads(stdout.strip().splitlines()[-1]), peak, wall, jvm)


def _measure(name: str, cmd: list[str], events: int) -> dict:
    print(f"running {name} ...", file=sys.stderr, flush=True)
    run = _run_child(cmd)
    figures = {**run.result, "events_per_s": events / run.result["seconds"], "peak_rss_mib": run.peak_rss_mib,
               "command_seconds": run.wall_s}
    if run.jvm is not None and run.jvm.cpu_s > 0:
        figures["jvm_cpu_s"] = run.jvm.cpu_s
        figures["jvm_threads"] = [{"name": g.name, "threads": g.threads, "cpu_s": g.cpu_s,
                                   "share": g.cpu_s / run.jvm.cpu_s} for g in by_name(run.jvm.threads)]
    return figures


def _worker(name: str, input_file: Path, parallelism: int, out: Path, extra: list[str]) -> list[str]:
    """The command line of one of this script's worker subcommands (see ``main``)."""
    overrides = [f"job.parallelism={parallelism}", f"output.path={out}", *extra]
    return [sys.executable, __file__, f"_{name}", str(input_file), json.dumps(overrides)]


def _generate(path: Path, events: int, users: int, numeric: int, duration_s: float) -> Path:
    print(f"generating {events} events, {users} users, {numeric + 3} features ...", file=sys.stderr, flush=True)
    write_jsonl(generate_events(StreamSpec(n_events=events, n_users=users, n_numeric=numeric, n_categorical=2,
                                           duration_s=duration_s, seed=1)), path)
    return path


def worker_passthrough(input_file: str, overrides: list[str]) -> dict:
    from jobs.pipeline import build_passthrough, create_environment
    from jobs.preparation import resolve_slice
    settings = resolve_slice(load_settings(overrides=overrides), [input_file])
    env = create_environment(settings)
    build_passthrough(env, settings, [input_file])
    started = time.perf_counter()
    env.execute("bench-passthrough")
    return {"seconds": time.perf_counter() - started}


def worker_java_passthrough(input_file: str, overrides: list[str]) -> dict:
    """The platform floor: the job's file source straight into a file sink, no Python operator."""
    from pyflink.common import Configuration, Encoder, WatermarkStrategy
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.connectors.file_system import FileSink, FileSource, RollingPolicy, StreamFormat
    settings = load_settings(overrides=overrides)
    conf = Configuration()
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("execution.checkpointing.interval", f"{settings.job.checkpoint_interval_ms} ms")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(settings.job.parallelism)
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), input_file).build()
    out = settings.output_dir() / "lines"
    sink = FileSink.for_row_format(str(out), Encoder.simple_string_encoder()) \
        .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy()).build()
    env.from_source(source, WatermarkStrategy.no_watermarks(), "lines").sink_to(sink)
    started = time.perf_counter()
    env.execute("bench-java-passthrough")
    seconds = time.perf_counter() - started
    written = sum(len(f.read_bytes().splitlines()) for f in out.rglob("[!.]*") if f.is_file())
    return {"seconds": seconds, "events": written}


def worker_full(input_file: str, overrides: list[str]) -> dict:
    from jobs.run_summary import read_snapshots
    from jobs.runner import run
    settings = load_settings(overrides=["source.kind=file", f"source.path={input_file}", *overrides])
    summary = run(settings)
    updates = [s["metrics"]["update_seconds"] for s in read_snapshots(settings.output_dir()) if s["update"] == "window"]
    return {"seconds": summary["elapsed_s"], "predictions": summary["predictions"], "update_seconds": updates,
            "slice_ms": summary["batching_slice_ms"]}


def worker_library(input_file: str, overrides: list[str]) -> dict:
    from udfs.offline.library_mode import run_library
    settings = load_settings(overrides=overrides)
    lines = Path(input_file).read_text().splitlines()
    started = time.perf_counter()
    result = run_library(settings, lines)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "predictions": len(result.predictions)}


# This script's worker subcommands (``_NAME INPUT OVERRIDES_JSON``), in the order they run; river comes after.
WORKERS = {"passthrough": worker_passthrough, "java_passthrough": worker_java_passthrough,
           "full": worker_full, "library": worker_library}


# Per model kind; the MLP as the issue sizes it (hidden [64], 1 epoch), the others as configured.
TRAINING_KINDS = {"logistic": [], "mlp": ["model.kind=mlp", "model.hidden_units=[64]", "model.epochs=1"],
                  "ensemble": ["model.kind=ensemble"], "ftrl": ["model.kind=ftrl"],
                  "fm": ["model.kind=fm", "model.learning_rate=0.3", "model.batch_size=64"]}


def with_ids(buckets: np.ndarray, settings: Settings, rng: np.random.Generator) -> np.ndarray:
    """``buckets`` and, for a kind that takes ids (fm), a user and an item column in their ranges."""
    ids, offset = settings.model.id_buckets, settings.features.hash_buckets
    if not ids:
        return buckets
    return np.hstack([buckets, offset + rng.integers(0, ids, size=(len(buckets), 1)),
                      offset + ids + rng.integers(0, ids, size=(len(buckets), 1))])


def training_scaling(sizes: list[int], n_numeric: int) -> list[dict]:
    """Seconds for one window update at each size (same features as the job), per model kind, on the device
    ``model.device=auto`` picks (the CPU where no GPU is visible)."""
    from udfs.features.feature_batch import FeatureBatch
    from udfs.features.user_features import UserFeatureExtractor
    from udfs.learning.devices import training_device
    from udfs.learning.window_trainer import WindowTrainer
    features = [f"features.numeric={json.dumps(numeric_feature_names(n_numeric))}"]
    results = []
    for kind, overrides in TRAINING_KINDS.items():
        settings = load_settings(overrides=features + overrides)
        names = UserFeatureExtractor.from_settings(settings).dense_names
        device = training_device(kind, settings.model.device)
        rng = np.random.default_rng(0)
        for size in sizes:
            rows = FeatureBatch(
                event_ids=[str(i) for i in range(size)], user_ids=["u"] * size,
                event_times=np.zeros(size, dtype=np.int64), labels=(rng.random(size) < 0.3).astype(float),
                dense=rng.normal(size=(size, len(names))),
                buckets=with_ids(rng.integers(0, settings.features.hash_buckets, size=(size, 3)), settings, rng),
            )
            trainer = WindowTrainer(settings, names)
            state = trainer.initial_state()
            started, cpu_started = time.perf_counter(), time.process_time()
            trainer.close_window(state, 0, 300_000, [trainer.close_slot(state, 0, rows).scored])
            results.append({"kind": kind, "device": device, "epochs": settings.model.epochs, "window_events": size,
                            "seconds": time.perf_counter() - started,
                            # CPU time of this process: the figure to compare on a machine others share
                            "cpu_seconds": time.process_time() - cpu_started})
            print(f"  training {kind} ({settings.model.epochs} epochs, {device}): {size:>9} events per window -> "
                  f"{results[-1]['seconds']:.2f} s ({results[-1]['cpu_seconds']:.2f} CPU-s)", file=sys.stderr)
    return results


def slot_costs(a: argparse.Namespace, features: list[str]) -> dict:
    """Per-slot cost at the bench's event rate: scoring and concept checks of every slot, and the
    fast-mode updates, on an hour of the bench's stream with an abrupt concept drift half way
    (library mode: the trainer's own udfs/ code, without Flink's overhead around it)."""
    from udfs.offline.library_mode import run_library
    rate = a.events / a.duration_s
    spec = StreamSpec(n_events=int(rate * 3600), n_users=a.users, n_numeric=a.numeric, n_categorical=2,
                      duration_s=3600.0, seed=1, concept_drift_at_s=1800.0)
    settings = load_settings(overrides=features)
    print(f"timing slots: {spec.n_events} events over an hour ({rate:.0f} events/s), drift at 30 min ...",
          file=sys.stderr, flush=True)
    result = run_library(settings, [json.dumps(e) for e in generate_events(spec)])
    checks = [c.check_seconds for c in result.slot_costs]
    updates = [c.train_seconds for c in result.slot_costs if c.train_seconds is not None]
    percentiles = lambda xs: {"p50": float(np.percentile(xs, 50)), "p99": float(np.percentile(xs, 99))} \
        if xs else None  # noqa: E731
    return {"events_per_s": rate, "slot_ms": settings.window.slot_ms, "slots": len(checks),
            "events_per_slot": rate * settings.window.slot_ms / 1000, "check_seconds": percentiles(checks),
            "slot_updates": len(updates), "update_seconds": percentiles(updates)}


def user_scaling(a: argparse.Namespace, users: list[int], features: list[str], tmp: Path) -> dict:
    """The full job on streams of equal length with more and more users."""
    runs = []
    for n in users:
        input_file = _generate(tmp / f"users-{n}.jsonl", a.scaling_events, n, a.numeric, a.duration_s)
        cmd = _worker("full", input_file, a.parallelism, tmp / f"users-{n}", features)
        row = _measure(f"full with {n} users", cmd, a.scaling_events)
        del row["update_seconds"]
        runs.append({"users": n, **row})
    return {"events": a.scaling_events, "runs": runs,
            "cost_per_event_ratio": runs[0]["events_per_s"] / runs[-1]["events_per_s"]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_"):  # a worker subcommand
        worker = WORKERS[argv[0][1:]]
        print(json.dumps(worker(argv[1], json.loads(argv[2]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--numeric", type=int, default=17, help="numeric features (plus 2 categorical and 1 bool)")
    p.add_argument("--duration-s", type=float, default=3 * 3600.0)
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--train-sizes", default="10000,100000,1000000")
    p.add_argument("--scaling-users", default="1000,10000,100000",
                   help="user counts for the full job's user scaling; '' = skip")
    p.add_argument("--scaling-events", type=int, help="events per user-scaling run (default: --events)")
    p.add_argument("--json", type=Path, default=Path("bench.json"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every contender, e.g. job.python_execution_mode=process")
    p.add_argument("--kafka-rate", default="auto", help="events/s offered in Kafka mode; auto = half the highest "
                                                         "rate the job keeps up with, found by --kafka-probes runs "
                                                         "from 1,000 events/s on; 0 = skip Kafka mode")
    p.add_argument("--kafka-probes", type=int, default=4, help="runs of the search for the highest sustainable rate")
    p.add_argument("--kafka-probe-seconds", type=float, default=20.0, help="measured seconds per probe")
    p.add_argument("--kafka-seconds", type=float, default=300.0,
                   help="measured seconds in Kafka mode (default: a window, so that a window's close counts)")
    a = p.parse_args(argv)
    a.scaling_events = a.scaling_events or a.events
    scaling_users = [int(n) for n in a.scaling_users.split(",") if n.strip()]

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        input_file = _generate(tmp / "events.jsonl", a.events, a.users, a.numeric, a.duration_s)
        numeric = numeric_feature_names(a.numeric)
        features = [f"features.numeric={json.dumps(numeric)}", *a.set]
        figures: dict = {"events": a.events, "users": a.users, "parallelism": a.parallelism}
        river_cmd = [str(river_python()), str(REPO / "scripts" / "river_baseline.py"), str(input_file),
                     "--numeric", ",".join(numeric)]
        for name in WORKERS:
            figures[name] = _measure(name, _worker(name, input_file, a.parallelism, tmp / name, features), a.events)
        figures["river"] = _measure("river", river_cmd, a.events)
        updates = figures["full"].pop("update_seconds")
        figures["training_seconds_per_window"] = {"p50": float(np.percentile(updates, 50)),
                                                  "p99": float(np.percentile(updates, 99))}
        for name in RATIO_DENOMINATORS:
            figures[f"full/{name}"] = figures["full"]["events_per_s"] / figures[name]["events_per_s"]
        figures["full/river_commands"] = figures["river"]["command_seconds"] / figures["full"]["command_seconds"]
        figures["training_scaling"] = training_scaling([int(s) for s in a.train_sizes.split(",")], a.numeric)
        figures["slot_costs"] = slot_costs(a, features)
        if scaling_users:
            figures["user_scaling"] = user_scaling(a, scaling_users, features, tmp)
        if a.kafka_rate == "auto":
            print(f"searching the highest kafka rate the job keeps up with ({a.kafka_probes} runs) ...",
                  file=sys.stderr, flush=True)
            highest, probes = max_sustainable_rate(KAFKA_SEARCH_START, a.kafka_probes, a.kafka_probe_seconds,
                                                   a.parallelism, features, tmp / "kafka-search")
            figures["kafka_search"] = {"max_sustainable_rate": highest, "probes": probes}
            rate = highest / 2
        else:
            rate = float(a.kafka_rate)
        if rate > 0:
            print(f"running kafka mode at {rate:.0f} events/s ...", file=sys.stderr, flush=True)
            figures["kafka"] = measure_latency(rate, a.kafka_seconds, a.parallelism, features, tmp / "kafka")

    for name in (*WORKERS, "river"):
        f = figures[name]
        print(f"{name:16} {f['events_per_s']:>10.0f} events/s  ({f['seconds']:.1f} s, "
              f"peak RSS {f['peak_rss_mib']:.0f} MiB)")
    print(f"full job batches: {figures['full']['slice_ms'] / 1000:g}-s event-time slices, "
          f"{a.users} users in {load_settings(overrides=a.set).batching.shards} shards")
    print("   ".join(f"full/{name} {figures[f'full/{name}']:.3g}" for name in RATIO_DENOMINATORS))
    print(f"whole commands, start-up included: full {figures['full']['command_seconds']:.1f} s, river "
          f"{figures['river']['command_seconds']:.1f} s, full/river {figures['full/river_commands']:.3g}")
    full = figures["full"]
    if "jvm_threads" in full:
        print(f"full job's JVM: {full['jvm_cpu_s']:.1f} CPU-s ({full['jvm_cpu_s'] / a.events * 1e6:.0f} us per event); "
              "per thread name (a task thread is named after its operator chain, cut at 15 characters; in "
              "thread mode it runs the chain's Python too), 1% and more:")
        for group in (g for g in full["jvm_threads"] if g["share"] >= 0.01):
            print(f"  {group['share']:6.1%}  {group['cpu_s']:6.1f} CPU-s  {group['threads']} thread(s)  {group['name']}")
    t = figures["training_seconds_per_window"]
    print(f"training per window: p50 {t['p50']:.3f} s, p99 {t['p99']:.3f} s")
    for row in figures["training_scaling"]:
        print(f"window of {row['window_events']:>9} events trains in {row['seconds']:.2f} s ({row['kind']}, "
              f"{row['cpu_seconds']:.2f} CPU-s)")
    c = figures["slot_costs"]
    update = c["update_seconds"] or {"p50": float("nan"), "p99": float("nan")}
    print(f"per {c['slot_ms'] / 1000:g}-s slot at {c['events_per_s']:.0f} events/s ({c['events_per_slot']:.0f} events): "
          f"checks p50 {c['check_seconds']['p50'] * 1000:.1f} ms, p99 {c['check_seconds']['p99'] * 1000:.1f} ms "
          f"({c['slots']} slots); fast-mode update p50 {update['p50'] * 1000:.1f} ms, "
          f"p99 {update['p99'] * 1000:.1f} ms ({c['slot_updates']} updates)")
    if "user_scaling" in figures:
        u = figures["user_scaling"]
        for row in u["runs"]:
            print(f"full job, {row['users']:>7} users: {row['events_per_s']:>8.0f} events/s, "
                  f"peak RSS {row['peak_rss_mib']:.0f} MiB")
        print(f"cost per event, {u['runs'][-1]['users']} users / {u['runs'][0]['users']} users: "
              f"{u['cost_per_event_ratio']:.2f}")
    if "kafka_search" in figures:
        search = figures["kafka_search"]
        tried = ", ".join(f"{r['offered_rate']:.0f} {'kept up' if keeps_up(r) else 'fell behind'}"
                          for r in search["probes"])
        print(f"kafka: highest rate kept up with {search['max_sustainable_rate']:.0f} events/s ({tried})")
    if "kafka" in figures:
        k = figures["kafka"]
        print(f"kafka at {k['offered_rate']:.0f} events/s: produce-to-prediction p50 {k['p50_ms']:.0f} ms, "
              f"p99 {k['p99_ms']:.0f} ms, max {k['max_ms']:.0f} ms ({k['received']}/{k['measured_events']} "
              f"measured events; {', '.join(k['settings'])})")
    a.json.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
