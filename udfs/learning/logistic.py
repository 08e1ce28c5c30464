"""Logistic regression on the design matrix, trained one mini-batch window at a time (``model.kind=logistic``).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(2000, 2))
>>> y = (x[:, 0] + 0.5 * rng.normal(size=2000) > 0).astype(float)
>>> learner = LogisticLearner.initial(n_inputs=2)
>>> for _ in range(5): learner.fit_design(x, y, TrainParams(learning_rate=0.1))
>>> float(np.mean((learner.predict_design(x) > 0.5) == y)) > 0.85
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from udfs.learning.learner import TrainParams


@dataclass
class LogisticLearner:
    weights: np.ndarray
    bias: float
    optimizer_state: dict[str, Any] = field(default_factory=dict)
    kind: str = "logistic"

    @classmethod
    def initial(cls, n_inputs: int) -> LogisticLearner:
        return cls(weights=np.zeros(n_inputs), bias=0.0)

    def predict_design(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(x @ self.weights + self.bias)

    def fit_design(self, x: np.ndarray, y: np.ndarray, params: TrainParams) -> None:
        """Shuffled mini-batch SGD/Adam with L2 on the weights."""
        rng = np.random.default_rng(params.seed)
        for _ in range(params.epochs):
            order = rng.permutation(x.shape[0])
            for start in range(0, len(order), params.batch_size):
                idx = order[start:start + params.batch_size]
                err = self.predict_design(x[idx]) - y[idx]
                grad_w = x[idx].T @ err / len(idx) + params.l2 * self.weights
                self._step(grad_w, float(err.mean()), params)

    def reset_optimizer(self) -> None:
        self.optimizer_state = {}

    def corrupt(self) -> None:
        self.weights = -3.0 * self.weights

    def window_metrics(self) -> dict[str, float]:
        return {}

    def _step(self, grad_w: np.ndarray, grad_b: float, params: TrainParams) -> None:
        lr = params.step_size
        if params.optimizer == "sgd":
            self.weights -= lr * grad_w
            self.bias -= lr * grad_b
            return
        s = self.optimizer_state
        if not s:
            s.update(t=0, m=np.zeros(len(self.weights) + 1), v=np.zeros(len(self.weights) + 1))
        g = np.append(grad_w, grad_b)
        s["t"] += 1
        s["m"] = 0.9 * s["m"] + 0.1 * g
        s["v"] = 0.999 * s["v"] + 0.001 * g * g
        m_hat = s["m"] / (1 - 0.9 ** s["t"])
        v_hat = s["v"] / (1 - 0.999 ** s["t"])
        delta = lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        self.weights -= delta[:-1]
        self.bias -= float(delta[-1])

    def parameters(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": self.weights.tolist(), "bias": self.bias}

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> LogisticLearner:
        return cls(weights=np.asarray(params["weights"], dtype=float), bias=float(params["bias"]))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))
