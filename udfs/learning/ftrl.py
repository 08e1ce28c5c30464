"""FTRL-Proximal logistic regression (``model.kind=ftrl``): McMahan et al., "Ad Click Prediction: a
View from the Trenches", KDD 2013, Algorithm 1, with a mini-batch's mean gradient as one step.

Each coordinate keeps ``z`` (its gradients minus the proximal shifts) and ``n`` (its squared
gradients): its learning rate is ``alpha / (beta + sqrt(n))``, so rare columns (a hash bucket,
an id) take large steps and frequent ones small steps, and its weight is exactly zero while
``|z| <= l1``. The weights are a closed form of ``(z, n)``; the bias is a coordinate without L1.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(4000, 6))
>>> y = (x[:, 0] - x[:, 1] + 0.5 * rng.normal(size=4000) > 0).astype(float)  # 4 columns of noise
>>> learner = FtrlLearner.initial(6, alpha=0.5, beta=1.0, l1=1.0, l2=0.0)
>>> for seed in range(3): learner.fit_design(x, y, TrainParams(batch_size=256, seed=seed))
>>> learner.weights()[:2].round(1).tolist(), int(np.sum(learner.weights() == 0.0))  # the noise: exactly 0
([1.4, -1.4], 4)
>>> copy = FtrlLearner.from_parameters(learner.parameters())
>>> bool(np.array_equal(copy.predict_design(x), learner.predict_design(x)))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from udfs.learning.learner import TrainParams
from udfs.learning.logistic import sigmoid


@dataclass
class FtrlLearner:
    z: np.ndarray  # per coordinate, the bias last
    n: np.ndarray
    w: np.ndarray  # the weights (bias last) that (z, n) give, kept so that a snapshot scores exactly
    alpha: float
    beta: float
    l1: float
    l2: float
    kind: str = "ftrl"

    @classmethod
    def initial(cls, n_inputs: int, alpha: float, beta: float, l1: float, l2: float) -> FtrlLearner:
        return cls(np.zeros(n_inputs + 1), np.zeros(n_inputs + 1), np.zeros(n_inputs + 1), alpha, beta, l1, l2)

    def _coefficients(self, alpha: float | None = None) -> np.ndarray:
        """Weights and bias from ``(z, n)``: 0 where ``|z| <= l1`` (never for the bias)."""
        alpha = self.alpha if alpha is None else alpha
        l1 = np.full(len(self.z), self.l1)
        l1[-1] = 0.0
        shrunk = np.sign(self.z) * np.maximum(np.abs(self.z) - l1, 0.0)
        return -shrunk / ((self.beta + np.sqrt(self.n)) / alpha + self.l2)

    def weights(self) -> np.ndarray:
        return self.w[:-1]

    def predict_design(self, x: Any) -> np.ndarray:
        return sigmoid(x @ self.w[:-1] + self.w[-1])

    def fit_design(self, x: Any, y: np.ndarray, params: TrainParams) -> None:
        """Shuffled mini-batches; the step size is ``alpha`` (times an adaptation boost), not
        ``model.learning_rate``."""
        alpha = self.alpha * params.learning_rate_boost
        rng = np.random.default_rng(params.seed)
        for _ in range(params.epochs):
            order = rng.permutation(x.shape[0])
            for start in range(0, len(order), params.batch_size):
                idx = order[start:start + params.batch_size]
                w = self._coefficients(alpha)
                err = sigmoid(x[idx] @ w[:-1] + w[-1]) - y[idx]
                g = np.append(x[idx].T @ err, err.sum()) / len(idx)
                sigma = (np.sqrt(self.n + g * g) - np.sqrt(self.n)) / alpha
                self.z += g - sigma * w
                self.n += g * g
        self.w = self._coefficients()

    def reset_optimizer(self) -> None:
        """Forget the squared gradients (learning rates back to their start), keeping the weights."""
        self.z, self.n = _state_of(self.w, self.alpha, self.beta, self.l1, self.l2)

    def corrupt(self) -> None:
        self.w = -3.0 * self.w
        self.z, self.n = _state_of(self.w, self.alpha, self.beta, self.l1, self.l2)

    def window_metrics(self) -> dict[str, float]:
        return {"zero_weight_share": float(np.mean(self.weights() == 0.0))}

    def parameters(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": self.w[:-1].tolist(), "bias": float(self.w[-1]), "alpha": self.alpha,
                "beta": self.beta, "l1": self.l1, "l2": self.l2}

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> FtrlLearner:
        """Scores as the snapshot did; training goes on from its weights with fresh learning rates."""
        w = np.append(np.asarray(params["weights"], dtype=float), float(params["bias"]))
        alpha, beta, l1, l2 = (float(params[k]) for k in ("alpha", "beta", "l1", "l2"))
        return cls(*_state_of(w, alpha, beta, l1, l2), w, alpha, beta, l1, l2)


def _state_of(w: np.ndarray, alpha: float, beta: float, l1: float, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """``(z, n)`` with ``n = 0`` whose weights are ``w``: the inverse of the closed form at ``n = 0``."""
    l1s = np.full(len(w), l1)
    l1s[-1] = 0.0
    z = -w * (beta / alpha + l2) - np.sign(w) * l1s
    return z, np.zeros(len(w))
