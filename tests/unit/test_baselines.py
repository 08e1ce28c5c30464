"""The baselines learn what they should, on the project's own features."""

from __future__ import annotations

import json

from conf.settings import load_settings
from udfs.features.user_features import UserFeatureExtractor
from udfs.offline.baselines import OnlineSGD, StaticBaseline, feature_rows, per_window
from udfs.sim.reference_streams import REFERENCE_STREAMS, generate, job_overrides

STREAM = REFERENCE_STREAMS["sine1"]


def rows_and_settings():
    settings = load_settings(overrides=job_overrides(STREAM))
    lines = [json.dumps(e) for e in generate(STREAM, n_events=9_000, seed=2)]
    return feature_rows(settings, lines), settings, len(UserFeatureExtractor.from_settings(settings).dense_names)


def test_static_model_is_good_before_the_drift_and_bad_after_it():
    rows, settings, n_dense = rows_and_settings()
    windows = per_window(rows, StaticBaseline(settings, n_dense, train_windows=4).score(rows), settings.window.size_ms)
    losses = [w["logloss"] for w in windows.values()]
    third = len(losses) // 3
    assert max(losses[:third - 5]) < 0.45 and min(losses[third + 1:2 * third - 1]) > 1.0


def test_per_event_learner_recovers_by_the_second_window_after_the_drift():
    rows, settings, n_dense = rows_and_settings()
    windows = per_window(rows, OnlineSGD(n_dense, settings.features.hash_buckets).score(rows), settings.window.size_ms)
    losses = [w["logloss"] for w in windows.values()]
    third = len(losses) // 3
    assert losses[third] > 1.0 and losses[third + 2] < 0.35 and losses[2 * third + 2] < 0.35, losses


def test_per_window_counts_each_scored_row_once():
    rows, settings, n_dense = rows_and_settings()
    probs = OnlineSGD(n_dense, settings.features.hash_buckets).score(rows)
    windows = per_window(rows, probs, settings.window.size_ms)
    assert sum(w["examples"] for w in windows.values()) == len(probs) == sum(r.label is not None for r in rows)
