"""The design matrix every learner sees: standardised dense features next to one-hot hashed buckets.

The scaler travels with the learner's parameters so that a snapshot scores exactly as it was
trained, wherever it is loaded (the Flink predictor, the MLflow pyfunc model, a notebook).

>>> import numpy as np
>>> scaler = Scaler.initial(n_dense=1, hash_buckets=3)
>>> scaler.update(np.array([[0.0], [2.0], [np.nan]]), decay=0.5)
>>> scaler.design(np.array([[1.0], [np.nan]]), np.array([[2], [-1]])).tolist()
[[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_EPS = 1e-7


@dataclass
class Scaler:
    mean: np.ndarray
    var: np.ndarray
    hash_buckets: int
    fitted: bool = False

    @classmethod
    def initial(cls, n_dense: int, hash_buckets: int) -> Scaler:
        return cls(mean=np.zeros(n_dense), var=np.ones(n_dense), hash_buckets=hash_buckets)

    @property
    def n_dense(self) -> int:
        return len(self.mean)

    @property
    def n_inputs(self) -> int:
        return self.n_dense + self.hash_buckets

    def design(self, dense: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        """Standardised dense columns (missing -> mean) next to one-hot buckets (-1 = none)."""
        return np.hstack([self.standardise(dense), self.one_hot(buckets)])

    def standardise(self, dense: np.ndarray) -> np.ndarray:
        z = (dense - self.mean) / np.sqrt(self.var + _EPS)
        return np.where(np.isfinite(z), z, 0.0)

    def one_hot(self, buckets: np.ndarray) -> np.ndarray:
        onehot = np.zeros((len(buckets), self.hash_buckets))
        present = buckets >= 0
        np.add.at(onehot, (np.nonzero(present)[0], buckets[present]), 1.0)
        return onehot

    def update(self, dense: np.ndarray, decay: float, reset: bool = False) -> None:
        """Exponentially weighted mean/variance of the dense columns, ignoring missing values."""
        with np.errstate(invalid="ignore"):
            seen = np.isfinite(dense).any(axis=0)
            mean = np.where(seen, np.nanmean(np.where(seen, dense, 0.0), axis=0), self.mean)
            var = np.where(seen, np.nanvar(np.where(seen, dense, 0.0), axis=0), self.var)
        if not self.fitted or reset:
            self.mean, self.var, self.fitted = mean, var, True
            return
        shift = (mean - self.mean) ** 2
        self.var = decay * self.var + (1 - decay) * var + decay * (1 - decay) * shift
        self.mean = decay * self.mean + (1 - decay) * mean

    def parameters(self) -> dict[str, Any]:
        return {"scaler_mean": self.mean.tolist(), "scaler_var": self.var.tolist(), "hash_buckets": self.hash_buckets}

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> Scaler:
        return cls(mean=np.asarray(params["scaler_mean"], dtype=float), var=np.asarray(params["scaler_var"], dtype=float),
                   hash_buckets=int(params["hash_buckets"]), fitted=True)
