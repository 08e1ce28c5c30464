"""scripts/bench.py runs all contenders, Kafka mode included, and writes sane figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import REPO


def test_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "scripts/bench.py", "--events", "6000", "--users", "500", "--numeric", "4",
                           "--train-sizes", "1000,10000", "--kafka-rate", "200", "--kafka-seconds", "15",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    for name in ("passthrough", "full", "library"):
        assert figures[name]["events_per_s"] > 0 and figures[name]["peak_rss_mib"] > 50, figures[name]
    assert figures["full"]["predictions"] == figures["library"]["predictions"] == 6000
    assert figures["full/passthrough"] == figures["full"]["events_per_s"] / figures["passthrough"]["events_per_s"]
    assert 0 < figures["training_seconds_per_window"]["p50"] <= figures["training_seconds_per_window"]["p99"]
    assert [r["window_events"] for r in figures["training_scaling"]] == [1000, 10000]
    kafka = figures["kafka"]
    assert kafka["received"] == kafka["measured_events"] > 1000, kafka
    assert 0 < kafka["p50_ms"] <= kafka["p99_ms"] <= kafka["max_ms"]
    assert "full/passthrough" in proc.stdout and "produce-to-prediction p50" in proc.stdout
