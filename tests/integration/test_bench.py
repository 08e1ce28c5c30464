"""scripts/bench.py runs all contenders, River, user scaling and Kafka mode, and writes sane figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import REPO


def test_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # The first run also creates River's venv under .cache (about a minute).
    proc = subprocess.run([sys.executable, "scripts/bench.py", "--events", "6000", "--users", "2000", "--numeric", "4",
                           "--train-sizes", "1000,10000", "--scaling-users", "1000,2000", "--scaling-events", "3000",
                           "--kafka-rate", "200", "--kafka-seconds", "15", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    for name in ("passthrough", "java_passthrough", "full", "library", "river"):
        assert figures[name]["events_per_s"] > 0 and figures[name]["peak_rss_mib"] > 50, figures[name]
    assert figures["full"]["predictions"] == figures["library"]["predictions"] == 6000
    assert figures["java_passthrough"]["events"] == figures["river"]["events"] == 6000
    for name in ("passthrough", "java_passthrough", "library", "river"):
        assert figures[f"full/{name}"] == figures["full"]["events_per_s"] / figures[name]["events_per_s"], name
        assert f"full/{name} " in proc.stdout
    full = figures["full"]
    assert full["command_seconds"] > full["seconds"], "the whole command includes the job's start-up"
    assert figures["full/river_commands"] == figures["river"]["command_seconds"] / full["command_seconds"]
    assert "whole commands, start-up included" in proc.stdout
    # The JVM's CPU per task thread: the named chains are there, at their parallelism (the bench's 2).
    threads = {t["name"]: t for t in full["jvm_threads"]}
    assert threads["trainer (1/1)#0"]["cpu_s"] > 0 and threads["user-features -"]["threads"] >= 2, threads
    assert sum(t["cpu_s"] for t in threads.values()) <= full["jvm_cpu_s"] * 1.01, "threads within the JVM's CPU"
    assert "per thread name" in proc.stdout
    assert 0 < figures["training_seconds_per_window"]["p50"] <= figures["training_seconds_per_window"]["p99"]
    assert [(r["kind"], r["window_events"]) for r in figures["training_scaling"]] == [
        (kind, size) for kind in ("logistic", "mlp", "ensemble", "ftrl", "fm") for size in (1000, 10000)]
    assert all(r["seconds"] > 0 and r["device"] == "cpu" for r in figures["training_scaling"])
    slots = figures["slot_costs"]
    assert slots["slots"] > 0 and 0 < slots["check_seconds"]["p50"] <= slots["check_seconds"]["p99"], slots
    assert "checks p50" in proc.stdout and "fast-mode update p50" in proc.stdout
    slot_s = slots["slot_ms"] / 1000
    assert slots["check_seconds"]["p99"] < slot_s / 10, "a slot's checks must cost well under the slot's length"
    assert slots["update_seconds"] is None or slots["update_seconds"]["p99"] < slot_s / 10, slots
    scaling = figures["user_scaling"]
    assert [(r["users"], r["predictions"]) for r in scaling["runs"]] == [(1000, 3000), (2000, 3000)]
    assert all(r["events_per_s"] > 0 and r["peak_rss_mib"] > 50 for r in scaling["runs"]), scaling
    assert scaling["cost_per_event_ratio"] == scaling["runs"][0]["events_per_s"] / scaling["runs"][1]["events_per_s"]
    assert "cost per event, 2000 users / 1000 users" in proc.stdout
    kafka = figures["kafka"]
    assert kafka["received"] == kafka["measured_events"] > 1000, kafka
    assert 0 < kafka["p50_ms"] <= kafka["p99_ms"] <= kafka["max_ms"]
    assert "produce-to-prediction p50" in proc.stdout
