"""A factorization machine for binary labels (``model.kind=fm``): Rendle, "Factorization Machines",
ICDM 2010, in numpy, trained on the logloss with AdaGrad in mini-batches like the other kinds.

    logit(x) = b + <w, x> + sum_{i<j} <v_i, v_j> x_i x_j
             = b + <w, x> + 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]   (linear in the nonzeros)

Its inputs are the design matrix with hashed one-hot ``user_id`` and ``item_id`` columns
(udfs/learning/scaler.py, ``model.fm.id_buckets``): ``<v_user, v_item>`` is a matrix
factorisation, ``<v_user, v_feature>`` lets a user weigh a dense feature its own way. The design
is then a sparse matrix; everything here is ``@`` and ``.T @``, so dense arrays work too.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.choice([-1.0, 1.0], size=(4000, 2))
>>> y = (x[:, 0] * x[:, 1] > 0).astype(float)  # a pure interaction: no weight of one column predicts it
>>> learner = FmLearner.initial(n_inputs=2, factors=2, init_std=0.1, seed=0)
>>> for seed in range(5): learner.fit_design(x, y, TrainParams(learning_rate=0.05, batch_size=64, seed=seed))
>>> float(np.mean((learner.predict_design(x) > 0.5) == y))
1.0
>>> copy = FmLearner.from_parameters(learner.parameters())
>>> bool(np.array_equal(copy.predict_design(x), learner.predict_design(x)))
True
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from udfs.learning.learner import TrainParams
from udfs.learning.logistic import sigmoid


@dataclass
class FmLearner:
    bias: float
    weights: np.ndarray
    factors: np.ndarray  # (n_inputs, k): the latent vector v_i of each design column
    optimizer_state: dict[str, Any] = field(default_factory=dict)
    kind: str = "fm"

    @classmethod
    def initial(cls, n_inputs: int, factors: int, init_std: float, seed: int) -> FmLearner:
        """Small random factors (all-zero ones would get no gradient), zero linear terms."""
        v = np.random.default_rng(seed).normal(0.0, init_std, size=(n_inputs, factors))
        return cls(bias=0.0, weights=np.zeros(n_inputs), factors=v)

    def predict_design(self, x: Any) -> np.ndarray:
        """Sparse (or dense) products over the whole matrix: one pass, no per-row gathers."""
        s = x @ self.factors
        squared = x.power(2) if sparse.issparse(x) else x * x
        pairs = 0.5 * (np.einsum("rk,rk->r", s, s) - squared @ np.einsum("ik,ik->i", self.factors, self.factors))
        return sigmoid(self.bias + x @ self.weights + pairs)

    def _logits(self, columns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Logits of a mini-batch given as its rows' nonzero ``columns`` and ``values`` (padded with
        value 0), with ``s = x @ V`` and the gathered factors ``V[columns]`` (the gradient reuses both)."""
        v = self.factors[columns]  # (rows, nonzeros, k)
        s = np.einsum("rn,rnk->rk", values, v)
        squares = np.einsum("ik,ik->i", self.factors, self.factors)[columns]
        pairs = 0.5 * (np.einsum("rk,rk->r", s, s) - np.einsum("rn,rn->r", values * values, squares))
        return self.bias + np.einsum("rn,rn->r", values, self.weights[columns]) + pairs, s, v

    def fit_design(self, x: Any, y: np.ndarray, params: TrainParams) -> None:
        """Shuffled mini-batches of the mean logloss gradient, L2 (``model.l2``) on weights and factors."""
        rng = np.random.default_rng(params.seed)
        columns, values = _padded(x)
        n_inputs, k = self.factors.shape
        for _ in range(params.epochs):
            order = rng.permutation(len(values))
            for start in range(0, len(order), params.batch_size):
                idx = order[start:start + params.batch_size]
                cols, vals = columns[idx], values[idx]
                logits, s, v = self._logits(cols, vals)
                err = (sigmoid(logits) - y[idx]) / len(idx)
                # d logit / d v_if = x_i s_f - v_if x_i^2, summed into each column's row of V
                ex = err[:, None] * vals
                per_entry = (ex[:, :, None] * (s[:, None, :] - v * vals[:, :, None])).reshape(-1, k)
                present = np.zeros(n_inputs, dtype=bool)  # np.unique would sort: slower at these sizes
                present[cols] = True
                touched = np.flatnonzero(present)
                entry = (np.cumsum(present) - 1)[cols.ravel()]  # each term's row among ``touched``
                slots = (entry[:, None] * k + np.arange(k)).ravel()  # (column, factor) of each term
                grad_v = np.bincount(slots, per_entry.ravel(), len(touched) * k).reshape(-1, k)
                grad_w = np.bincount(entry, ex.ravel(), len(touched))
                self._step(float(err.sum()), touched, grad_w + params.l2 * self.weights[touched],
                           grad_v + params.l2 * self.factors[touched], params)

    def _step(self, grad_b: float, touched: np.ndarray, grad_w: np.ndarray, grad_v: np.ndarray,
              params: TrainParams) -> None:
        """AdaGrad (Duchi, Hazan & Singer, JMLR 2011), whatever ``model.optimizer`` says, on the
        columns of the batch only (``touched``; L2 too, lazily): a user's or item's factors move
        only in the batches where it occurs, and a column's step shrinks with its own squared
        gradients (Adam's moments would keep moving every id's row long after it left)."""
        s = self.optimizer_state
        if not s:
            s.update(b=0.0, w=np.zeros_like(self.weights), v=np.zeros_like(self.factors))
        lr = params.step_size
        s["b"] += grad_b * grad_b
        self.bias -= lr * grad_b / (np.sqrt(s["b"]) + 1e-8)
        s["w"][touched] += grad_w * grad_w
        self.weights[touched] -= lr * grad_w / (np.sqrt(s["w"][touched]) + 1e-8)
        s["v"][touched] += grad_v * grad_v
        self.factors[touched] -= lr * grad_v / (np.sqrt(s["v"][touched]) + 1e-8)

    def reset_optimizer(self) -> None:
        self.optimizer_state = {}

    def corrupt(self) -> None:
        """Linear terms turned over and tripled; the factors (whose products no sign flip turns) dropped."""
        self.bias, self.weights, self.factors = -3.0 * self.bias, -3.0 * self.weights, np.zeros_like(self.factors)

    def window_metrics(self) -> dict[str, float]:
        return {}

    def parameters(self) -> dict[str, Any]:
        """The factors as base64 float64 bytes: exact, and about half the size of JSON numbers."""
        return {"kind": self.kind, "bias": self.bias, "weights": self.weights.tolist(),
                "factors_shape": list(self.factors.shape),
                "factors": base64.b64encode(np.ascontiguousarray(self.factors, dtype="<f8").tobytes()).decode()}

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> FmLearner:
        v = np.frombuffer(base64.b64decode(params["factors"]), dtype="<f8").reshape(params["factors_shape"]).copy()
        return cls(bias=float(params["bias"]), weights=np.asarray(params["weights"], dtype=float), factors=v)


def _padded(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nonzero columns and values, padded to the longest row (column 0, value 0): batches
    are then plain numpy gathers, with no sparse-matrix object built per mini-batch."""
    csr = sparse.csr_matrix(x)
    counts = np.diff(csr.indptr)
    rows = np.repeat(np.arange(csr.shape[0]), counts)
    slots = np.arange(len(csr.indices)) - csr.indptr[rows]
    columns = np.zeros((csr.shape[0], int(counts.max(initial=0))), dtype=np.int64)
    values = np.zeros(columns.shape)
    columns[rows, slots], values[rows, slots] = csr.indices, csr.data
    return columns, values
