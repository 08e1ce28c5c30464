"""Logistic regression with its own feature scaler, trained one mini-batch window at a time.

The scaler travels with the weights so that a snapshot scores exactly as it was trained,
wherever it is loaded (the Flink predictor, the MLflow pyfunc model, a notebook).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> dense = rng.normal(size=(2000, 2)); buckets = np.zeros((2000, 0), dtype=np.int64)
>>> y = (dense[:, 0] + 0.5 * rng.normal(size=2000) > 0).astype(float)
>>> model = LogisticModel.initial(n_dense=2, hash_buckets=4)
>>> model.update_scaler(dense, decay=0.9)
>>> for _ in range(5): model.fit(dense, buckets, y, TrainParams(learning_rate=0.1))
>>> float(np.mean((model.predict_proba(dense, buckets) > 0.5) == y)) > 0.85
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

_EPS = 1e-7


@dataclass(frozen=True)
class TrainParams:
    optimizer: str = "adam"
    learning_rate: float = 0.05
    epochs: int = 1
    batch_size: int = 256
    l2: float = 1e-4
    seed: int = 0


@dataclass
class LogisticModel:
    """Weights over [standardised dense features | one-hot hashed categorical buckets]."""

    weights: np.ndarray
    bias: float
    scaler_mean: np.ndarray
    scaler_var: np.ndarray
    hash_buckets: int
    scaler_fitted: bool = False
    optimizer_state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def initial(cls, n_dense: int, hash_buckets: int) -> LogisticModel:
        return cls(
            weights=np.zeros(n_dense + hash_buckets),
            bias=0.0,
            scaler_mean=np.zeros(n_dense),
            scaler_var=np.ones(n_dense),
            hash_buckets=hash_buckets,
        )

    @property
    def n_dense(self) -> int:
        return len(self.scaler_mean)

    def design(self, dense: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        """Standardised dense columns (missing -> mean) next to one-hot buckets (-1 = none)."""
        return np.hstack([self.standardise(dense), self.one_hot(buckets)])

    def standardise(self, dense: np.ndarray) -> np.ndarray:
        z = (dense - self.scaler_mean) / np.sqrt(self.scaler_var + _EPS)
        return np.where(np.isfinite(z), z, 0.0)

    def one_hot(self, buckets: np.ndarray) -> np.ndarray:
        onehot = np.zeros((len(buckets), self.hash_buckets))
        present = buckets >= 0
        np.add.at(onehot, (np.nonzero(present)[0], buckets[present]), 1.0)
        return onehot

    def predict_proba(self, dense: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        return self.predict_design(self.design(dense, buckets))

    def predict_design(self, design: np.ndarray) -> np.ndarray:
        return _sigmoid(design @ self.weights + self.bias)

    def update_scaler(self, dense: np.ndarray, decay: float, reset: bool = False) -> None:
        """Exponentially weighted mean/variance of the dense columns, ignoring missing values."""
        with np.errstate(invalid="ignore"):
            seen = np.isfinite(dense).any(axis=0)
            mean = np.where(seen, np.nanmean(np.where(seen, dense, 0.0), axis=0), self.scaler_mean)
            var = np.where(seen, np.nanvar(np.where(seen, dense, 0.0), axis=0), self.scaler_var)
        if not self.scaler_fitted or reset:
            self.scaler_mean, self.scaler_var, self.scaler_fitted = mean, var, True
            return
        shift = (mean - self.scaler_mean) ** 2
        self.scaler_var = decay * self.scaler_var + (1 - decay) * var + decay * (1 - decay) * shift
        self.scaler_mean = decay * self.scaler_mean + (1 - decay) * mean

    def fit(self, dense: np.ndarray, buckets: np.ndarray, labels: np.ndarray, params: TrainParams) -> None:
        """``params.epochs`` passes of shuffled mini-batch SGD/Adam with L2 on the weights."""
        x = self.design(dense, buckets)
        rng = np.random.default_rng(params.seed)
        for _ in range(params.epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), params.batch_size):
                idx = order[start:start + params.batch_size]
                err = self.predict_design(x[idx]) - labels[idx]
                grad_w = x[idx].T @ err / len(idx) + params.l2 * self.weights
                grad_b = float(err.mean())
                self._step(grad_w, grad_b, params)

    def reset_optimizer(self) -> None:
        self.optimizer_state = {}

    def _step(self, grad_w: np.ndarray, grad_b: float, params: TrainParams) -> None:
        if params.optimizer == "sgd":
            self.weights -= params.learning_rate * grad_w
            self.bias -= params.learning_rate * grad_b
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
        delta = params.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
        self.weights -= delta[:-1]
        self.bias -= float(delta[-1])

    def parameters(self) -> dict[str, Any]:
        """JSON-ready parameters: everything needed to score, nothing about training."""
        return {
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "scaler_mean": self.scaler_mean.tolist(),
            "scaler_var": self.scaler_var.tolist(),
            "hash_buckets": self.hash_buckets,
        }

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> LogisticModel:
        return cls(
            weights=np.asarray(params["weights"], dtype=float),
            bias=float(params["bias"]),
            scaler_mean=np.asarray(params["scaler_mean"], dtype=float),
            scaler_var=np.asarray(params["scaler_var"], dtype=float),
            hash_buckets=int(params["hash_buckets"]),
            scaler_fitted=True,
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))
