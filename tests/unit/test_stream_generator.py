"""The generator's promises: reproducible, well-formed, bounded disorder, a learnable signal,
and drift/shift that change exactly what they claim to change."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from udfs.sim.stream_generator import (
    CovariateShift,
    StreamSpec,
    categorical_feature_names,
    generate_events,
    numeric_feature_names,
    write_jsonl,
)

SPEC = StreamSpec(n_events=20_000, n_users=400, duration_s=3600.0, seed=3)
CUT_S = 1800.0
CUT_MS = SPEC.start_ms + int(CUT_S * 1000)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

Event = dict[str, Any]


def epoch_ms(event_time: int | str) -> int:
    if isinstance(event_time, int):
        return event_time
    return round(datetime.fromisoformat(event_time).timestamp() * 1000)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return list(generate_events(SPEC))


def test_same_spec_gives_identical_events_and_another_seed_does_not(events: list[Event]) -> None:
    assert list(generate_events(SPEC)) == events
    assert list(generate_events(replace(SPEC, seed=4)))[:100] != events[:100]


def test_event_ids_are_unique(events: list[Event]) -> None:
    assert len({e["event_id"] for e in events}) == SPEC.n_events


def test_times_lie_in_range_and_disorder_is_bounded(events: list[Event]) -> None:
    t = np.array([epoch_ms(e["event_time"]) for e in events])
    assert SPEC.start_ms <= t.min() and t.max() <= SPEC.start_ms + SPEC.duration_s * 1000
    assert np.all(t >= np.maximum.accumulate(t) - SPEC.max_out_of_order_ms)
    assert np.mean(np.diff(t) < 0) > 0.01, "expected some out-of-order events"
    in_order = np.array([epoch_ms(e["event_time"]) for e in generate_events(replace(SPEC, max_out_of_order_ms=0))])
    assert np.all(np.diff(in_order) >= 0)


def test_schema_and_types(events: list[Event]) -> None:
    numeric, categorical = numeric_feature_names(6), categorical_feature_names(2)
    for e in events:
        assert set(e) == {"event_id", "user_id", "item_id", "event_time", "features", "label"}
        assert isinstance(e["event_id"], str) and isinstance(e["user_id"], str)
        assert e["item_id"] is None or re.fullmatch(r"i\d{5}", e["item_id"])
        assert type(e["event_time"]) is int or ISO.match(e["event_time"])
        assert list(e["features"]) == numeric + categorical + ["is_returning"]
        assert all(type(e["features"][k]) is float and math.isfinite(e["features"][k]) for k in numeric)
        assert all(isinstance(e["features"][k], str) for k in categorical)
        assert type(e["features"]["is_returning"]) is bool
        assert e["label"] in (0, 1, None) and type(e["label"]) in (int, type(None))
    n = len(events)
    assert abs(sum(e["label"] is not None for e in events) / n - SPEC.labeled_fraction) < 0.02
    assert abs(sum(isinstance(e["event_time"], str) for e in events) / n - SPEC.iso_time_fraction) < 0.02
    assert abs(sum(e["item_id"] is None for e in events) / n - 0.1) < 0.02


def test_numeric_marginals_are_realistic(events: list[Event]) -> None:
    column = {k: np.array([e["features"][k] for e in events]) for k in numeric_feature_names(6)}
    assert column["amount"].min() > 0 and np.mean(column["amount"]) > 1.2 * np.median(column["amount"])  # skewed
    assert 0 <= column["discount_pct"].min() and column["discount_pct"].max() <= 100
    assert 0 <= column["scroll_depth"].min() and column["scroll_depth"].max() <= 1
    assert np.all(column["pages_viewed"] == np.round(column["pages_viewed"])) and column["pages_viewed"].min() >= 1
    gaussian = np.array([e["features"]["num_7"] for e in generate_events(replace(SPEC, n_events=2_000, n_numeric=8))])
    assert abs(gaussian.mean()) < 0.2 and 0.8 < gaussian.std() < 1.2


def test_feature_names() -> None:
    assert numeric_feature_names(8) == ["amount", "dwell_seconds", "price", "discount_pct", "pages_viewed",
                                        "scroll_depth", "num_6", "num_7"]
    assert categorical_feature_names(4) == ["device", "country", "cat_2", "cat_3"]
    wide = next(generate_events(replace(SPEC, n_categorical=4)))
    assert re.fullmatch(r"cat_3_v\d+", wide["features"]["cat_3"])


def test_base_rate_and_user_skew(events: list[Event]) -> None:
    labels = [e["label"] for e in events if e["label"] is not None]
    assert abs(np.mean(labels) - SPEC.base_rate) < 0.03
    per_user = np.bincount(np.unique([e["user_id"] for e in events], return_inverse=True)[1])
    assert per_user.max() > 10 * np.median(per_user), "a few users should be far more active than most"


def test_a_logistic_regression_with_user_history_beats_the_base_rate_by_30_percent(events: list[Event]) -> None:
    x, y = _history_design(sorted(events, key=lambda e: epoch_ms(e["event_time"])))
    train = int(0.6 * len(y))
    mean, sd = x[:train].mean(axis=0), x[:train].std(axis=0) + 1e-9
    x = (x - mean) / sd
    w = np.zeros(x.shape[1] + 1)
    xb = np.column_stack([x, np.ones(len(y))])
    for _ in range(600):
        w -= 0.5 * xb[:train].T @ (_sigmoid(xb[:train] @ w) - y[:train]) / train
    model = _logloss(_sigmoid(xb[train:] @ w), y[train:])
    base = _logloss(np.full(len(y) - train, y[:train].mean()), y[train:])
    print(f"logloss {model:.4f} vs base rate {base:.4f}: ratio {model / base:.3f}")
    assert model <= 0.7 * base


def _history_design(events: list[Event]) -> tuple[np.ndarray, np.ndarray]:
    """Labeled events as rows: raw numerics, one-hot categoricals, is_returning, and the user's
    smoothed positive rate (as a logit) and event count from *earlier* labeled events only."""
    numeric, categorical = numeric_feature_names(SPEC.n_numeric), categorical_feature_names(SPEC.n_categorical)
    vocab = {name: sorted({e["features"][name] for e in events}) for name in categorical}
    positives: dict[str, int] = {}
    seen: dict[str, int] = {}
    rows, labels = [], []
    for e in events:
        if e["label"] is None:
            continue
        f, user = e["features"], e["user_id"]
        rate = (positives.get(user, 0) + 2 * SPEC.base_rate) / (seen.get(user, 0) + 2)
        rows.append([f[k] for k in numeric] + [float(f[k] == v) for k in categorical for v in vocab[k]]
                    + [float(f["is_returning"]), math.log(rate / (1 - rate)), math.log1p(seen.get(user, 0))])
        labels.append(e["label"])
        positives[user] = positives.get(user, 0) + e["label"]
        seen[user] = seen.get(user, 0) + 1
    return np.array(rows), np.array(labels, dtype=float)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _logloss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_signal_zero_is_pure_noise() -> None:
    noise = list(generate_events(replace(SPEC, signal=0.0)))
    x, y = _history_design(sorted(noise, key=lambda e: epoch_ms(e["event_time"])))
    assert abs(y.mean() - SPEC.base_rate) < 0.03
    assert all(abs(np.corrcoef(x[:, j], y)[0, 1]) < 0.05 for j in range(x.shape[1]) if x[:, j].std() > 0)


def _split(events: list[Event]) -> tuple[list[Event], list[Event]]:
    before = [e for e in events if epoch_ms(e["event_time"]) < CUT_MS]
    return before, [e for e in events if epoch_ms(e["event_time"]) >= CUT_MS]


def test_concept_drift_changes_labels_but_not_a_single_feature(events: list[Event]) -> None:
    drifted = list(generate_events(replace(SPEC, concept_drift_at_s=CUT_S)))
    assert [{k: v for k, v in e.items() if k != "label"} for e in drifted] == \
           [{k: v for k, v in e.items() if k != "label"} for e in events]
    (plain_before, plain_after), (drift_before, drift_after) = _split(events), _split(drifted)
    assert [e["label"] for e in plain_before] == [e["label"] for e in drift_before]
    pairs = [(a["label"], b["label"]) for a, b in zip(plain_after, drift_after) if a["label"] is not None]
    assert np.mean([a != b for a, b in pairs]) > 0.3
    assert abs(np.mean([b for _, b in pairs]) - SPEC.base_rate) < 0.05


def test_covariate_shift_moves_only_the_named_feature_and_only_after_at_s(events: list[Event]) -> None:
    shifted = list(generate_events(replace(SPEC, covariate_shifts=(CovariateShift("amount", CUT_S, 1.0),))))

    def without_amount(e: Event) -> Event:
        return {**e, "features": {k: v for k, v in e["features"].items() if k != "amount"}, "label": None}

    assert [without_amount(e) for e in shifted] == [without_amount(e) for e in events]
    (plain_before, plain_after), (shift_before, shift_after) = _split(events), _split(shifted)
    assert plain_before == shift_before
    global_sd = np.std([e["features"]["amount"] for e in events])
    moved = np.array([b["features"]["amount"] - a["features"]["amount"] for a, b in zip(plain_after, shift_after)])
    np.testing.assert_allclose(moved, global_sd, atol=0.006)
    assert any(a["label"] != b["label"] for a, b in zip(plain_after, shift_after)), "labels follow the shifted values"


def test_spec_rejects_a_shift_of_an_unknown_feature() -> None:
    with pytest.raises(ValueError, match="unknown numeric feature"):
        StreamSpec(covariate_shifts=(CovariateShift("device", 10.0, 1.0),))


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    sample = list(generate_events(replace(SPEC, n_events=200)))
    path = tmp_path / "nested" / "events.jsonl"
    assert write_jsonl(sample, path) == 200
    assert [json.loads(line) for line in path.read_text().splitlines()] == sample


def test_cli_writes_a_readable_file(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "generate_stream.py"
    out = tmp_path / "out" / "events.jsonl"
    proc = subprocess.run([sys.executable, str(script), "--out", str(out), "--events", "500", "--users", "50",
                           "--seed", "5", "--concept-drift-at-s", "3600", "--covariate-shift", "amount:100:1",
                           "--covariate-shift", "price:200:-0.5"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote 500 events to {out}"
    assert proc.stderr.count("events (") == 10
    lines = out.read_text().splitlines()
    assert len(lines) == 500 and all(set(json.loads(line)) >= {"event_id", "features"} for line in lines)
    bad = subprocess.run([sys.executable, str(script), "--out", str(out), "--covariate-shift", "amount:oops"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "FEATURE:AT_S:DELTA_STD" in bad.stderr
