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
        return sigmoid(self._logits(x, _squared(x), x @ self.factors))

    def _logits(self, x: Any, x2: Any, s: np.ndarray) -> np.ndarray:
        """``s = x @ V``, ``x2`` the squared entries of ``x``."""
        pairs = 0.5 * (np.einsum("ij,ij->i", s, s) - x2 @ np.einsum("ij,ij->i", self.factors, self.factors))
        return self.bias + x @ self.weights + pairs

    def fit_design(self, x: Any, y: np.ndarray, params: TrainParams) -> None:
        """Shuffled mini-batches of the mean logloss gradient, L2 (``model.l2``) on weights and factors."""
        rng = np.random.default_rng(params.seed)
        x2 = _squared(x)
        for _ in range(params.epochs):
            order = rng.permutation(x.shape[0])
            for start in range(0, len(order), params.batch_size):
                idx = order[start:start + params.batch_size]
                xb, x2b = x[idx], x2[idx]
                s = xb @ self.factors
                err = (sigmoid(self._logits(xb, x2b, s)) - y[idx]) / len(idx)
                xt = xb.T
                grad_v = xt @ (err[:, None] * s) - self.factors * (x2b.T @ err)[:, None] + params.l2 * self.factors
                self._step(float(err.sum()), xt @ err + params.l2 * self.weights, grad_v, params)

    def _step(self, grad_b: float, grad_w: np.ndarray, grad_v: np.ndarray, params: TrainParams) -> None:
        """AdaGrad (Duchi, Hazan & Singer, JMLR 2011), whatever ``model.optimizer`` says: a column's
        step shrinks with its own squared gradients, and a user's or item's factors move only in the
        batches where it occurs (Adam's moments would keep moving every id's row long after it left)."""
        grads = (np.array([grad_b]), grad_w, grad_v)
        s = self.optimizer_state
        if not s:
            s["g2"] = [np.zeros_like(g) for g in grads]
        deltas = []
        for g2, g in zip(s["g2"], grads):
            g2 += g * g
            deltas.append(params.step_size * g / (np.sqrt(g2) + 1e-8))
        self.bias -= float(deltas[0][0])
        self.weights -= deltas[1]
        self.factors -= deltas[2]

    def reset_optimizer(self) -> None:
        self.optimizer_state = {}

    def corrupt(self) -> None:
        """Linear terms turned over and tripled; the factors (whose products no sign flip turns) dropped."""
        self.bias, self.weights, self.factors = -3.0 * self.bias, -3.0 * self.weights, np.zeros_like(self.factors)

    def window_metrics(self) -> dict[str, float]:
        return {}

    def parameters(self) -> dict[str, Any]:
        """The factors as base64 float64 bytes: exact, and a third of the size of JSON numbers."""
        return {"kind": self.kind, "bias": self.bias, "weights": self.weights.tolist(),
                "factors_shape": list(self.factors.shape),
                "factors": base64.b64encode(np.ascontiguousarray(self.factors, dtype="<f8").tobytes()).decode()}

    @classmethod
    def from_parameters(cls, params: dict[str, Any]) -> FmLearner:
        v = np.frombuffer(base64.b64decode(params["factors"]), dtype="<f8").reshape(params["factors_shape"]).copy()
        return cls(bias=float(params["bias"]), weights=np.asarray(params["weights"], dtype=float), factors=v)


def _squared(x: Any) -> Any:
    return x.power(2) if sparse.issparse(x) else x * x
