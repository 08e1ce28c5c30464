import numpy as np
import pytest

from udfs.drift.detectors import KSDriftDetector, reject
from udfs.learning.learner import TrainParams
from udfs.learning.metrics import accuracy, log_loss, roc_auc
from udfs.learning.model import Model, ModelSpec


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = rng.random(300)
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a, ya in zip(p, y) if ya for b, yb in zip(p, y) if not yb]
    assert roc_auc(y, p) == pytest.approx(np.mean(pairs))
    assert roc_auc(np.ones(3), p[:3]) is None


def test_log_loss_of_perfect_and_coin():
    assert log_loss(np.array([1, 0]), np.array([1.0, 0.0])) < 1e-5
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))
    assert accuracy(np.array([1, 0]), np.array([0.7, 0.2])) == 1.0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_model_learns_a_linear_concept_with_categoricals(optimizer):
    rng = np.random.default_rng(0)
    n = 4000
    dense = rng.normal(5.0, 3.0, size=(n, 3))
    buckets = rng.integers(0, 4, size=(n, 1))
    logit = 1.5 * (dense[:, 0] - 5) / 3 - 1.0 * (dense[:, 1] - 5) / 3 + np.where(buckets[:, 0] == 2, 1.5, -0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    model = Model.initial(ModelSpec(), n_dense=3, hash_buckets=4)
    model.update_scaler(dense, decay=0.9)
    for epoch in range(10):
        model.fit(dense, buckets, y, TrainParams(optimizer=optimizer, learning_rate=0.05, epochs=1, seed=epoch))
    base = log_loss(y, np.full(n, y.mean()))
    assert log_loss(y, model.predict_proba(dense, buckets)) < 0.8 * base
    assert model.learner.weights[0] > 0 > model.learner.weights[1]


def test_parameters_round_trip_scores_identically():
    rng = np.random.default_rng(2)
    model = Model.initial(ModelSpec(), 2, 3)
    dense = rng.normal(size=(50, 2))
    model.update_scaler(dense, 0.9)
    model.fit(dense, np.zeros((50, 0), dtype=int), (dense[:, 0] > 0).astype(float), TrainParams())
    copy = Model.from_parameters(model.parameters())
    np.testing.assert_array_equal(copy.predict_proba(dense, np.full((50, 1), 1)),
                                  model.predict_proba(dense, np.full((50, 1), 1)))


def test_scaler_tracks_a_moving_mean_and_ignores_missing():
    model = Model.initial(ModelSpec(), 1, 0)
    model.update_scaler(np.array([[0.0], [2.0], [np.nan]]), decay=0.5)
    assert model.scaler.mean[0] == pytest.approx(1.0)
    model.update_scaler(np.array([[3.0], [5.0]]), decay=0.5)
    assert model.scaler.mean[0] == pytest.approx(2.5)


@pytest.mark.parametrize("correction", ["bonferroni", "holm", "benjamini-hochberg"])
def test_corrections_reject_only_small_p_values(correction):
    flags = reject([0.001, 0.2, 0.04, 0.9], alpha=0.05, correction=correction)
    assert flags[0] and not flags[1] and not flags[3]


def test_holm_and_bh_are_less_conservative_than_bonferroni():
    p = [0.01, 0.02, 0.03, 0.04]
    assert sum(reject(p, 0.05, "bonferroni")) <= sum(reject(p, 0.05, "holm")) <= sum(reject(p, 0.05, "benjamini-hochberg"))
    assert reject(p, 0.05, "benjamini-hochberg") == [True] * 4


def test_detector_false_alarm_rate_is_near_alpha_on_iid_windows():
    rng = np.random.default_rng(3)
    det = KSDriftDetector(alpha=0.05, reference_windows=2, min_samples=50, min_statistic=0.0)
    alarms = sum(bool(det.check({"a": rng.normal(size=400), "b": rng.exponential(size=400)})) for _ in range(202))
    assert alarms / 200 <= 0.08


def test_detector_finds_shift_once_then_adopts_new_reference():
    rng = np.random.default_rng(4)
    det = KSDriftDetector(alpha=0.05, reference_windows=1, min_samples=50, min_statistic=0.1)
    det.check({"a": rng.normal(size=500)})
    found = [det.check({"a": rng.normal(1.0, 1.0, size=500)}) for _ in range(4)]
    assert [len(f) for f in found] == [1, 0, 0, 0]
    assert found[0][0].name == "a" and found[0][0].p_value < 1e-6


def test_one_sided_check_ignores_improvement():
    rng = np.random.default_rng(5)
    det = KSDriftDetector(reference_windows=1, min_samples=50, alternatives={"loss": "greater"})
    det.check({"loss": rng.exponential(1.0, 500)})
    assert det.check({"loss": rng.exponential(0.5, 500)}) == []
    assert [d.name for d in det.check({"loss": rng.exponential(2.0, 500)})] == ["loss"]
