"""Parquet in: the job on a Parquet history gives the predictions the same events give as JSONL, and a
bad row is a dead letter with its reason."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from conf.settings import FeatureSettings, load_settings
from tests.integration.conftest import outputs, run_job, write_parquet
from udfs.offline.library_mode import run_library
from udfs.sim.stream_generator import StreamSpec, generate_events

SPEC = StreamSpec(n_events=8_000, n_users=400, duration_s=2 * 3600.0, seed=23)


def test_parquet_input_gives_the_predictions_of_the_same_events_in_jsonl(tmp_path: Path) -> None:
    events = list(generate_events(SPEC))
    bad = [{**events[100], "event_id": "no-user", "user_id": None},
           {**events[200], "event_id": "nan", "features": {**events[200]["features"], "amount": math.nan}}]
    events[3000:3000] = bad
    write_parquet(tmp_path / "events.parquet", events)
    jsonl = [json.dumps(e) for e in events]
    # The generator's columns, in its order (a Parquet struct lists its fields by name).
    features = FeatureSettings()
    out = tmp_path / "out"
    proc = run_job(tmp_path / "events.parquet", out, f"features.numeric={json.dumps(features.numeric)}",
                   f"features.categorical={json.dumps(features.categorical)}", "mlflow.enabled=false")
    assert "converting 1 Parquet file(s) to JSONL" in proc.stdout and f"{len(events)} rows -> 00000-events.jsonl" in proc.stdout

    expected = {p["event_id"]: p for p in map(json.loads, run_library(load_settings(), jsonl).predictions)}
    committed = outputs(out, "predictions")
    assert Counter(p["event_id"] for p in committed) == Counter(list(expected)) and len(expected) == SPEC.n_events
    for p in committed:
        want = expected[p["event_id"]]
        assert p["model_version"] == want["model_version"] and abs(p["score"] - want["score"]) < 1e-9, (p, want)
    assert sorted((d["reason"], json.loads(d["raw"])["event_id"]) for d in outputs(out, "dead_letters")) == [
        ("missing_field", "no-user"), ("non_finite_feature", "nan")]
