"""The three learners on small hand-made streams: what each can learn, and that state and snapshots
carry everything (optimizer moments included) so that training goes on identically after a restore."""

from __future__ import annotations

import json
import pickle
import threading

import mlflow
import numpy as np
import pandas as pd
import pytest

from conf.settings import load_settings
from udfs.features.feature_batch import FeatureBatch
from udfs.features.user_features import id_bucket_columns
from udfs.learning.ensemble import EnsembleLearner
from udfs.learning.ftrl import FtrlLearner
from udfs.learning.learner import TrainParams
from udfs.learning.logistic import LogisticLearner
from udfs.learning.metrics import log_loss
from udfs.learning.mlp import MlpLearner
from udfs.learning.model import Model, ModelSpec
from udfs.learning.window_trainer import WindowTrainer
from udfs.tracking.pyfunc_model import bucket_columns, save_snapshot_model

KINDS = ["logistic", "mlp", "ensemble", "ftrl", "fm"]
ID_BUCKETS = 8  # fm: per id field


def xor(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(float)


def test_mlp_learns_a_concept_no_line_separates_and_logistic_cannot():
    x, y = xor(3000, 0)
    mlp, logistic = MlpLearner.initial(2, (16,), 0.0, seed=0), LogisticLearner.initial(2)
    for window in range(10):
        params = TrainParams(learning_rate=0.01, epochs=2, batch_size=64, seed=window)
        mlp.fit_design(x, y, params)
        logistic.fit_design(x, y, params)
    test_x, test_y = xor(1000, 1)
    assert log_loss(test_y, mlp.predict_design(test_x)) < 0.3
    assert log_loss(test_y, logistic.predict_design(test_x)) > 0.6


def test_mlp_training_is_reproducible_and_goes_on_identically_after_pickling():
    x, y = xor(500, 2)
    params = TrainParams(learning_rate=0.01, batch_size=32, seed=3)
    a, b = MlpLearner.initial(2, (8, 4), 0.2, seed=1), MlpLearner.initial(2, (8, 4), 0.2, seed=1)
    a.fit_design(x, y, params)
    b.fit_design(x, y, params)
    restored = pickle.loads(pickle.dumps(a))  # how Flink keeps it in state
    assert restored.optimizer is not None and restored.optimizer.state_dict()["state"], "Adam moments lost"
    for learner in (a, b, restored):
        learner.fit_design(x, y, TrainParams(learning_rate=0.01, batch_size=32, seed=4))
    np.testing.assert_array_equal(a.predict_design(x), b.predict_design(x))
    np.testing.assert_array_equal(restored.predict_design(x), a.predict_design(x))


def test_mlp_training_does_not_depend_on_other_threads_building_networks():
    """Thread mode runs every operator in one interpreter: a predictor decoding snapshots while the
    trainer trains must not change what the trainer learns (it did when dropout drew from torch's
    global generator)."""
    x, y = xor(2000, 5)

    def trained() -> np.ndarray:
        learner = MlpLearner.initial(2, (32, 16), 0.2, seed=0)
        learner.fit_design(x, y, TrainParams(learning_rate=0.01, epochs=2, batch_size=32, seed=5))
        return learner.predict_design(x)

    alone = trained()
    done = threading.Event()

    def build_networks() -> None:
        while not done.is_set():
            MlpLearner.from_parameters(MlpLearner.initial(2, (32, 16), 0.2, seed=1).parameters())

    builder = threading.Thread(target=build_networks)
    builder.start()
    try:
        beside = [trained() for _ in range(5)]
    finally:
        done.set()
        builder.join()
    for result in beside:
        np.testing.assert_array_equal(result, alone)


def test_ensemble_moves_its_weight_to_the_fast_member_after_an_abrupt_flip():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 2))
    y = (x[:, 0] > 0).astype(float)
    ensemble = EnsembleLearner([LogisticLearner.initial(2), LogisticLearner.initial(2)], (0.001, 0.1), eta=20.0,
                               loss_decay=0.5)
    for seed in range(6):
        ensemble.fit_design(x, y, TrainParams(epochs=3, seed=seed))
    flipped = 1 - y
    for seed in range(6, 12):
        ensemble.fit_design(x, flipped, TrainParams(epochs=3, seed=seed))
    assert ensemble.weights()[1] > 0.9
    assert ensemble.window_metrics() == {"ensemble_weight_0": pytest.approx(ensemble.weights()[0]),
                                         "ensemble_weight_1": pytest.approx(ensemble.weights()[1])}
    single_fast = [m.predict_design(x) for m in ensemble.members][1]
    assert log_loss(flipped, ensemble.predict_design(x)) <= log_loss(flipped, single_fast) * 1.05


def ids(n: int) -> tuple[list[str], list[str | None]]:
    """Users and items of ``n`` rows, a few rows without an item."""
    rng = np.random.default_rng(8)
    return [f"u{u}" for u in rng.integers(0, 30, n)], [None if i < 0 else f"i{i}" for i in rng.integers(-1, 20, n)]


def trained(kind: str) -> tuple[Model, np.ndarray, np.ndarray]:
    """A model of ``kind`` after one window; an fm's buckets end with the user and item columns."""
    rng = np.random.default_rng(7)
    dense, buckets = rng.normal(size=(400, 3)), rng.integers(-1, 4, size=(400, 2))
    y = ((dense[:, 0] * dense[:, 1] > 0) | (buckets[:, 0] == 2)).astype(float)
    id_buckets = ID_BUCKETS if kind == "fm" else 0
    if id_buckets:
        buckets = np.hstack([buckets, id_bucket_columns(*ids(len(buckets)), 4, id_buckets)])
    model = Model.initial(ModelSpec(kind=kind, hidden_units=(8,), learning_rates=(0.01, 0.1), id_buckets=id_buckets),
                          3, 4)
    model.update_scaler(dense, decay=0.9)
    model.fit(dense, buckets, y, TrainParams(seed=1))
    return model, dense, buckets


@pytest.mark.parametrize("kind", KINDS)
def test_snapshot_parameters_are_json_carry_the_kind_and_score_identically(kind):
    model, dense, buckets = trained(kind)
    params = json.loads(json.dumps(model.parameters()))
    assert params["kind"] == kind
    assert len(json.dumps(params)) < 20_000, "snapshots should stay small"
    np.testing.assert_array_equal(Model.from_parameters(params).predict_proba(dense, buckets),
                                  model.predict_proba(dense, buckets))


@pytest.mark.parametrize("kind", KINDS)
def test_pyfunc_model_scores_a_dataframe_exactly_as_the_snapshot(kind, tmp_path):
    model, dense, buckets = trained(kind)
    names = ["a", "b", "c"]
    save_snapshot_model({"version": 1, "dense_names": names, "parameters": model.parameters()}, tmp_path / "model")
    frame = pd.DataFrame(dense, columns=names)
    design = model.scaler.design(dense, buckets)
    frame[bucket_columns(4)] = (design.toarray() if kind == "fm" else design)[:, 3:7]
    if kind == "fm":  # the hashed ids, not their one-hots: the DataFrame names who and what
        frame["user_id"], frame["item_id"] = ids(len(frame))
    scores = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(frame)
    np.testing.assert_array_equal(np.asarray(scores), model.predict_proba(dense, buckets))


@pytest.mark.parametrize("kind", KINDS)
def test_window_trainer_snapshots_the_kind_and_the_ensemble_logs_its_weights(kind):
    rate = ["model.learning_rate=0.3"] if kind == "fm" else []  # AdaGrad's base rate (README, Model kinds)
    settings = load_settings(overrides=[f"model.kind={kind}", "model.hidden_units=[8]", 'features.numeric=["a", "b"]',
                                        *rate])
    names = ["a", "b"]
    rng = np.random.default_rng(0)
    n = 600
    dense = rng.normal(size=(n, 2))
    rows = FeatureBatch(event_ids=[f"e{i}" for i in range(n)], user_ids=["u"] * n,
                        event_times=np.arange(n, dtype=np.int64), labels=(dense[:, 0] > 0).astype(float),
                        dense=dense, buckets=np.full((n, 3), -1))
    trainer = WindowTrainer(settings, names)
    state = trainer.initial_state()
    snapshots = [trainer.close_window(state, w * 300_000, (w + 1) * 300_000,
                                      [trainer.close_slot(state, w * 300_000, rows).scored]).snapshot for w in range(3)]
    assert {s["parameters"]["kind"] for s in snapshots} == {kind}
    assert snapshots[-1]["metrics"]["logloss"] < 0.5
    weights = {k: v for k, v in snapshots[-1]["metrics"].items() if k.startswith("ensemble_weight_")}
    if kind == "ensemble":
        assert len(weights) == 4 and sum(weights.values()) == pytest.approx(1.0)
        assert snapshots[-1]["parameters"]["weights"] == pytest.approx(list(weights.values()))
    else:
        assert weights == {}
    if kind == "ftrl":  # the share of exact zeros goes to MLflow with the window's metrics
        assert 0 < snapshots[-1]["metrics"]["zero_weight_share"] < 1


def test_ftrl_zeroes_the_weights_of_noise_columns_and_goes_on_identically_after_pickling():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 10))
    y = (rng.random(3000) < 1 / (1 + np.exp(-(x[:, 0] - x[:, 1])))).astype(float)
    a = FtrlLearner.initial(10, alpha=0.5, beta=1.0, l1=1.0, l2=0.0)
    for window in range(5):
        a.fit_design(x, y, TrainParams(seed=window))
    assert np.all(a.weights()[:2] != 0) and np.all(a.weights()[2:] == 0.0)
    assert a.window_metrics() == {"zero_weight_share": 0.8}
    restored = pickle.loads(pickle.dumps(a))  # the accumulators travel with it in Flink state
    for learner in (a, restored):
        learner.fit_design(x, y, TrainParams(seed=9))
    np.testing.assert_array_equal(restored.predict_design(x), a.predict_design(x))


def test_fm_learns_user_item_affinities_through_hashed_ids_that_logistic_cannot():
    """Clicks only where a user's taste (+1/-1) matches an item's: no weight of an id predicts it."""
    rng = np.random.default_rng(4)
    n, users, items = 6000, 40, 30
    user, item = rng.integers(0, users, n), rng.integers(0, items, n)
    taste, kind = rng.choice([-1, 1], users), rng.choice([-1, 1], items)
    y = (rng.random(n) < np.where(taste[user] == kind[item], 0.9, 0.1)).astype(float)
    buckets = id_bucket_columns([f"u{u}" for u in user], [f"i{i}" for i in item], 1, 1024)  # few collisions
    dense = rng.normal(size=(n, 1))
    fm, logistic = (Model.initial(ModelSpec(kind=k, id_buckets=1024), 1, 1) for k in ("fm", "logistic"))
    for window in range(5):
        part = slice(window * 1000, (window + 1) * 1000)
        for model, rate in ((fm, 0.3), (logistic, 0.05)):
            model.fit(dense[part], buckets[part], y[part], TrainParams(learning_rate=rate, batch_size=64, seed=window))
    test = slice(5000, n)
    assert log_loss(y[test], fm.predict_proba(dense[test], buckets[test])) < 0.45
    assert log_loss(y[test], logistic.predict_proba(dense[test], buckets[test])) > 0.65
