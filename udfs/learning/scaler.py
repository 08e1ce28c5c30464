"""The design matrix every learner sees: standardised dense features next to one-hot hashed buckets.

The scaler travels with the learner's parameters so that a snapshot scores exactly as it was
trained, wherever it is loaded (the Flink predictor, the MLflow pyfunc model, a notebook).

With ``id_buckets`` (factorization machines, ``model.fm.id_buckets``) the buckets also hold a
user and an item column, hashed into their own ranges after the categorical buckets
(udfs/features/user_features.py, ``id_bucket_columns``). Those one-hots are thousands of
columns wide, so the design is then a sparse CSR matrix: a million-row window stays a few
hundred MB instead of tens of GB. The learner that takes ids (udfs/learning/fm.py) reads either
kind of matrix.

>>> import numpy as np
>>> scaler = Scaler.initial(n_dense=1, hash_buckets=3)
>>> scaler.update(np.array([[0.0], [2.0], [np.nan]]), decay=0.5)
>>> scaler.design(np.array([[1.0], [np.nan]]), np.array([[2], [-1]])).tolist()
[[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
>>> wide = Scaler.initial(n_dense=1, hash_buckets=3, id_buckets=2)  # buckets 3-4: users, 5-6: items
>>> wide.design(np.array([[0.0]]), np.array([[2, 4, 5]])).toarray().tolist()
[[0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

_EPS = 1e-7


@dataclass
class Scaler:
    mean: np.ndarray
    var: np.ndarray
    hash_buckets: int
    fitted: bool = False
    id_buckets: int = 0  # per id field (user, item); 0: no id columns, a dense design

    @classmethod
    def initial(cls, n_dense: int, hash_buckets: int, id_buckets: int = 0) -> Scaler:
        return cls(mean=np.zeros(n_dense), var=np.ones(n_dense), hash_buckets=hash_buckets, id_buckets=id_buckets)

    @property
    def n_dense(self) -> int:
        return len(self.mean)

    @property
    def n_onehot(self) -> int:
        return self.hash_buckets + 2 * self.id_buckets

    @property
    def n_inputs(self) -> int:
        return self.n_dense + self.n_onehot

    def design(self, dense: np.ndarray, buckets: np.ndarray) -> np.ndarray | sparse.csr_matrix:
        """Standardised dense columns (missing -> mean) next to one-hot buckets (-1 = none)."""
        present = buckets >= 0
        return self.design_from_entries(dense, np.nonzero(present)[0], buckets[present], np.ones(int(present.sum())))

    def design_from_entries(self, dense: np.ndarray, rows: np.ndarray, columns: np.ndarray, values: np.ndarray
                            ) -> np.ndarray | sparse.csr_matrix:
        """The design with one-hot part ``values`` at (``rows``, ``columns``), repeats summed: the one
        path for bucket indices (the job) and for one-hot columns (the pyfunc model)."""
        shape = (len(dense), self.n_onehot)
        if not self.id_buckets:
            onehot = np.zeros(shape)
            np.add.at(onehot, (rows, columns), values)
            return np.hstack([self.standardise(dense), onehot])
        onehot = sparse.coo_matrix((values, (rows, columns)), shape=shape).tocsr()
        return sparse.hstack([sparse.csr_matrix(self.standardise(dense)), onehot], format="csr")

    def standardise(self, dense: np.ndarray) -> np.ndarray:
        z = (dense - self.mean) / np.sqrt(self.var + _EPS)
        return np.where(np.isfinite(z), z, 0.0)

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
        return {"scaler_mean": self.mean.tolist(), "scaler_var": self.var.tolist(), "hash_buckets": self.hash_buckets,
                "id_buckets": self.id_buckets}

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> Scaler:
        """Snapshots from before id columns have no ``id_buckets``: none."""
        return cls(mean=np.asarray(params["scaler_mean"], dtype=float), var=np.asarray(params["scaler_var"], dtype=float),
                   hash_buckets=int(params["hash_buckets"]), fitted=True, id_buckets=int(params.get("id_buckets", 0)))
