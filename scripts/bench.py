"""Benchmark: the full job against a passthrough job and against library mode, on one input.

    python scripts/bench.py [--events 300000] [--users 10000] [--numeric 17] [--parallelism 2] [--json bench.json]
                            [--kafka-rate auto|N|0] [--kafka-seconds 60]

Each contender runs in its own process on the same generated file:
1. passthrough: the job's source, parsing and prediction sink, one trivial keyed Python operator;
2. full: the whole job (features, prediction, windowed training, drift checks, MLflow logging);
3. library: the same udfs (features, model, windows, drift, scoring) in a plain Python loop.
It prints events/s, the ratios full/passthrough and full/library, per-window training time
(p50/p99), peak resident memory of each contender's process tree, and how training time grows
with window size. Kafka mode (on unless ``--kafka-rate 0``) then runs the full job between
Kafka topics at a fixed offered rate (``auto``: half the full job's measured events/s) and prints
the produce-to-prediction latency p50/p99 (scripts/kafka_latency.py).
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
from pathlib import Path

import numpy as np

# Run as a plain script from anywhere: make the project's packages importable.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from conf.settings import load_settings  # noqa: E402
from scripts.kafka_latency import measure_latency  # noqa: E402
from udfs.stream_generator import StreamSpec, generate_events, numeric_feature_names, write_jsonl  # noqa: E402


def _tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants (the JVM and Python workers), from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], rss[pid] = int(fields[1]), int(fields[21]) * resource.getpagesize()
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


def _run_child(args: list[str]) -> tuple[dict, float]:
    """Runs this script's worker subcommand; returns its JSON result and the process tree's peak RSS (MiB)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, __file__, *args], stdout=out, stderr=err, text=True, cwd=REPO)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_mib(proc.pid))
            time.sleep(0.5)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step {args[0]} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    return json.loads(stdout.strip().splitlines()[-1]), peak


def _overrides(parallelism: int, out: Path, extra: list[str]) -> list[str]:
    return [f"job.parallelism={parallelism}", f"output.path={out}", *extra]


def worker_passthrough(input_file: str, overrides: list[str]) -> dict:
    from jobs.pipeline import build_passthrough, create_environment
    settings = load_settings(overrides=overrides)
    env = create_environment(settings)
    build_passthrough(env, settings, [input_file])
    started = time.perf_counter()
    env.execute("bench-passthrough")
    return {"seconds": time.perf_counter() - started}


def worker_full(input_file: str, overrides: list[str]) -> dict:
    from jobs.online_learning import run
    from jobs.run_summary import read_snapshots
    settings = load_settings(overrides=["source.kind=file", f"source.path={input_file}", *overrides])
    summary = run(settings)
    updates = [s["metrics"]["update_seconds"] for s in read_snapshots(settings.output_dir())]
    return {"seconds": summary["elapsed_s"], "predictions": summary["predictions"], "update_seconds": updates}


def worker_library(input_file: str, overrides: list[str]) -> dict:
    from udfs.library_mode import run_library
    settings = load_settings(overrides=overrides)
    lines = Path(input_file).read_text().splitlines()
    started = time.perf_counter()
    result = run_library(settings, lines)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "predictions": len(result.predictions)}


def training_scaling(sizes: list[int], n_numeric: int) -> list[dict]:
    """Seconds for one window update at each size (same features as the job)."""
    from udfs.user_features import FeatureRow, UserFeatureExtractor
    from udfs.window_trainer import WindowTrainer
    settings = load_settings(overrides=[f"features.numeric={json.dumps(numeric_feature_names(n_numeric))}"])
    names = UserFeatureExtractor.from_settings(settings).dense_names
    rng = np.random.default_rng(0)
    results = []
    for size in sizes:
        dense = rng.normal(size=(size, len(names)))
        labels = (rng.random(size) < 0.3).astype(int)
        buckets = rng.integers(0, settings.features.hash_buckets, size=(size, 3))
        rows = [FeatureRow(str(i), "u", 0, int(labels[i]), tuple(dense[i]), tuple(buckets[i])) for i in range(size)]
        trainer = WindowTrainer(settings, names)
        state = trainer.initial_state()
        started = time.perf_counter()
        trainer.close_window(state, 0, 300_000, rows)
        results.append({"window_events": size, "seconds": time.perf_counter() - started})
        print(f"  training: {size:>9} events per window -> {results[-1]['seconds']:.2f} s", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_"):  # worker subcommands: NAME INPUT OVERRIDES_JSON
        worker = {"_passthrough": worker_passthrough, "_full": worker_full, "_library": worker_library}[argv[0]]
        print(json.dumps(worker(argv[1], json.loads(argv[2]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--numeric", type=int, default=17, help="numeric features (plus 2 categorical and 1 bool)")
    p.add_argument("--duration-s", type=float, default=3 * 3600.0)
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--train-sizes", default="10000,100000,1000000")
    p.add_argument("--json", type=Path, default=Path("bench.json"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every contender, e.g. job.python_execution_mode=thread")
    p.add_argument("--kafka-rate", default="auto", help="events/s offered in Kafka mode; auto = half the full "
                                                         "job's measured throughput; 0 = skip Kafka mode")
    p.add_argument("--kafka-seconds", type=float, default=60.0, help="measured seconds in Kafka mode")
    a = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        input_file = tmp / "events.jsonl"
        spec = StreamSpec(n_events=a.events, n_users=a.users, n_numeric=a.numeric, n_categorical=2,
                          duration_s=a.duration_s, seed=1)
        print(f"generating {a.events} events, {a.users} users, {a.numeric + 3} features ...", file=sys.stderr)
        write_jsonl(generate_events(spec), input_file)
        features = [f"features.numeric={json.dumps(numeric_feature_names(a.numeric))}", *a.set]
        figures: dict = {"events": a.events, "users": a.users, "parallelism": a.parallelism}
        for name in ("passthrough", "full", "library"):
            print(f"running {name} ...", file=sys.stderr, flush=True)
            overrides = _overrides(a.parallelism, tmp / name, features)
            result, peak = _run_child([f"_{name}", str(input_file), json.dumps(overrides)])
            figures[name] = {**result, "events_per_s": a.events / result["seconds"], "peak_rss_mib": peak}
        updates = figures["full"].pop("update_seconds")
        figures["training_seconds_per_window"] = {"p50": float(np.percentile(updates, 50)),
                                                  "p99": float(np.percentile(updates, 99))}
        figures["full/passthrough"] = figures["full"]["events_per_s"] / figures["passthrough"]["events_per_s"]
        figures["full/library"] = figures["full"]["events_per_s"] / figures["library"]["events_per_s"]
        figures["training_scaling"] = training_scaling([int(s) for s in a.train_sizes.split(",")], a.numeric)
        rate = figures["full"]["events_per_s"] / 2 if a.kafka_rate == "auto" else float(a.kafka_rate)
        if rate > 0:
            print(f"running kafka mode at {rate:.0f} events/s ...", file=sys.stderr, flush=True)
            figures["kafka"] = measure_latency(rate, a.kafka_seconds, a.parallelism, features, tmp / "kafka")

    for name in ("passthrough", "full", "library"):
        f = figures[name]
        print(f"{name:12} {f['events_per_s']:>10.0f} events/s  ({f['seconds']:.1f} s, peak RSS {f['peak_rss_mib']:.0f} MiB)")
    print(f"full/passthrough {figures['full/passthrough']:.2f}   full/library {figures['full/library']:.2f}")
    t = figures["training_seconds_per_window"]
    print(f"training per window: p50 {t['p50']:.3f} s, p99 {t['p99']:.3f} s")
    for row in figures["training_scaling"]:
        print(f"window of {row['window_events']:>9} events trains in {row['seconds']:.2f} s")
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
