"""The reference streams drift where they say, and only in the way they say."""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

from udfs.sim.reference_streams import REFERENCE_STREAMS, drift_times_ms, generate

N = 12_000


def arrays(name: str, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    events = list(generate(REFERENCE_STREAMS[name], n_events=N, seed=seed))
    numeric = REFERENCE_STREAMS[name].numeric
    x = np.array([[e["features"][f] for f in numeric] for e in events])
    return x, np.array([e["label"] for e in events]), np.array([e["event_time"] for e in events])


def test_streams_are_reproducible_and_in_event_time_order():
    for name, stream in REFERENCE_STREAMS.items():
        first = list(generate(stream, n_events=500, seed=9))
        assert first == list(generate(stream, n_events=500, seed=9)), name
        times = [e["event_time"] for e in first]
        assert times == sorted(times), name


def test_sine1_reverses_its_concept_at_the_drift_points_and_features_stay_put():
    x, y, t = arrays("sine1")
    first, second = drift_times_ms(REFERENCE_STREAMS["sine1"])
    below = (x[:, 1] <= np.sin(x[:, 0])).astype(int)
    assert (y[t < first] == below[t < first]).all()
    assert (y[(t >= first) & (t < second)] == 1 - below[(t >= first) & (t < second)]).all()
    for col in range(x.shape[1]):
        assert ks_2samp(x[t < first, col], x[t >= first, col]).pvalue > 0.01


def test_sea_thresholds_change_labels_only():
    x, y, t = arrays("sea")
    drifts = drift_times_ms(REFERENCE_STREAMS["sea"])
    agree = [np.mean(y[(t >= lo) & (t < hi)] == (x[(t >= lo) & (t < hi), 0] + x[(t >= lo) & (t < hi), 1] <= theta))
             for lo, hi, theta in zip([0] + drifts, drifts + [2**63 - 1], (8, 9, 7, 9.5))]
    assert all(0.85 < a < 0.95 for a in agree), agree  # 10% label noise around each threshold
    assert ks_2samp(x[t < drifts[0], 0], x[t >= drifts[-1], 0]).pvalue > 0.01


def test_sine_shift_moves_the_inputs_not_the_concept():
    x, y, t = arrays("sine_shift")
    (shift,) = drift_times_ms(REFERENCE_STREAMS["sine_shift"])
    assert x[t < shift, 0].max() <= 1.5 and x[t >= shift, 0].min() >= 3.0
    truth = (x[:, 1] <= np.sin(x[:, 0])).astype(int)
    assert 0.85 < np.mean(y[t < shift] == truth[t < shift]) < 0.95
    assert 0.85 < np.mean(y[t >= shift] == truth[t >= shift]) < 0.95


def test_hyperplane_is_stationary_first_then_rotates():
    x, y, t = arrays("hyperplane")
    (start,) = drift_times_ms(REFERENCE_STREAMS["hyperplane"])
    early = t < start
    fit = np.linalg.lstsq(np.c_[x[early], np.ones(early.sum())], y[early], rcond=None)[0]
    late = t >= t[int(0.8 * N)]
    agree = lambda mask: np.mean((np.c_[x[mask], np.ones(mask.sum())] @ fit >= 0.5) == y[mask])  # noqa: E731
    assert agree(early) > agree(late) + 0.05


def test_stagger_concepts_recur():
    events = list(generate(REFERENCE_STREAMS["stagger"], n_events=N, seed=4))
    concept_a = [e["label"] == int(e["features"]["size"] == "small" and e["features"]["color"] == "red")
                 for e in events]
    blocks = np.array_split(np.array(concept_a), 6)
    assert [b.mean() == 1.0 for b in blocks] == [True, False, False, True, False, False]
