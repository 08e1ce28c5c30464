import subprocess
import sys
from pathlib import Path

import numpy as np

from udfs.events import parse_time
from udfs.stream_generator import CovariateShift, StreamSpec, generate_events

SPEC = StreamSpec(n_events=5_000, n_users=200, duration_s=3600.0, seed=3)


def times(events):
    return [parse_time(e["event_time"]) for e in events]


def test_deterministic_unique_and_in_range():
    a, b = list(generate_events(SPEC)), list(generate_events(SPEC))
    assert a == b
    assert len({e["event_id"] for e in a}) == SPEC.n_events
    t = times(a)
    assert SPEC.start_ms <= min(t) and max(t) <= SPEC.start_ms + SPEC.duration_s * 1000
    assert any(isinstance(e["event_time"], str) for e in a) and any(isinstance(e["event_time"], int) for e in a)


def test_out_of_orderness_is_bounded():
    t = np.array(times(generate_events(SPEC)))
    assert np.all(t >= np.maximum.accumulate(t) - SPEC.max_out_of_order_ms)
    assert np.any(np.diff(t) < 0)


def test_labels_and_base_rate():
    labels = [e["label"] for e in generate_events(SPEC)]
    labeled = [y for y in labels if y is not None]
    assert set(labeled) == {0, 1}
    assert abs(len(labeled) / len(labels) - SPEC.labeled_fraction) < 0.03
    assert abs(np.mean(labeled) - SPEC.base_rate) < 0.05


def test_concept_drift_changes_labels_not_features():
    drifted = list(generate_events(StreamSpec(**{**SPEC.__dict__, "concept_drift_at_s": 1800.0})))
    plain = list(generate_events(SPEC))
    assert [e["features"] for e in drifted] == [e["features"] for e in plain]
    cut = SPEC.start_ms + 1_800_000
    before = [(a["label"], b["label"]) for a, b in zip(plain, drifted) if parse_time(a["event_time"]) < cut]
    after = [(a["label"], b["label"]) for a, b in zip(plain, drifted) if parse_time(a["event_time"]) >= cut]
    assert all(x == y for x, y in before)
    assert np.mean([x != y for x, y in after if x is not None]) > 0.15


def test_covariate_shift_moves_only_the_named_feature_after_the_shift():
    shifted = list(generate_events(StreamSpec(**{**SPEC.__dict__, "covariate_shifts": (CovariateShift("price", 1800.0, 1.0),)})))
    plain = list(generate_events(SPEC))
    cut = SPEC.start_ms + 1_800_000
    for a, b in zip(plain, shifted):
        same = {k: v for k, v in a["features"].items() if k != "price"}
        assert same == {k: v for k, v in b["features"].items() if k != "price"}
        if parse_time(a["event_time"]) < cut:
            assert a["features"]["price"] == b["features"]["price"]
    after = [(a["features"]["price"], b["features"]["price"]) for a, b in zip(plain, shifted)
             if parse_time(a["event_time"]) >= cut]
    assert np.median([y for _, y in after]) > 1.5 * np.median([x for x, _ in after])


def test_cli_writes_a_readable_file(tmp_path: Path):
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "e.jsonl"
    proc = subprocess.run([sys.executable, str(repo / "scripts/generate_stream.py"), "--out", str(out),
                           "--events", "300", "--covariate-shift", "amount:100:1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 300 events" in proc.stdout
    assert len(out.read_text().splitlines()) == 300
