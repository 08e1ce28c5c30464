"""K learners of one kind at different learning rates, mixed by their recent error (``model.kind=ensemble``).

Before the members train on a window, each scores it: rows it has never trained on. Its
exponentially decayed logloss ``L_k`` over such windows sets its weight ``w_k ~ exp(-eta L_k)``
(the exponentially weighted average forecaster, Cesa-Bianchi & Lugosi, "Prediction, Learning,
and Games", 2006, ch. 2). When the stream drifts, the fast members' losses fall first and the
mix follows them within a window or two; on a stationary stream the slow, precise members win.

>>> import numpy as np
>>> from udfs.learning.logistic import LogisticLearner
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(500, 2)); y = (x[:, 0] > 0).astype(float)
>>> ensemble = EnsembleLearner([LogisticLearner.initial(2), LogisticLearner.initial(2)], (0.0001, 0.1), eta=20.0,
...                            loss_decay=0.5)
>>> for seed in range(3): ensemble.fit_design(x, y, TrainParams(seed=seed))
>>> [round(float(w), 1) for w in ensemble.weights()]  # the member that learns fastest earns the weight
[0.1, 0.9]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from udfs.learning.learner import Learner, TrainParams
from udfs.learning.metrics import log_loss


@dataclass
class EnsembleLearner:
    members: list[Learner]
    learning_rates: tuple[float, ...]
    eta: float
    loss_decay: float
    losses: np.ndarray | None = None  # decayed logloss per member on windows it had not trained on
    kind: str = "ensemble"

    def weights(self) -> np.ndarray:
        if self.losses is None:
            return np.full(len(self.members), 1.0 / len(self.members))
        scores = np.exp(-self.eta * (self.losses - self.losses.min()))
        return scores / scores.sum()

    def predict_design(self, x: np.ndarray) -> np.ndarray:
        return np.sum([w * m.predict_design(x) for w, m in zip(self.weights(), self.members)], axis=0)

    def fit_design(self, x: np.ndarray, y: np.ndarray, params: TrainParams) -> None:
        """Weighs every member on the window first (it has not trained on it), then trains each at its rate."""
        window = np.array([log_loss(y, m.predict_design(x)) for m in self.members])
        decay = self.loss_decay if self.losses is not None else 0.0
        self.losses = decay * (self.losses if self.losses is not None else 0.0) + (1 - decay) * window
        for k, (member, rate) in enumerate(zip(self.members, self.learning_rates)):
            member.fit_design(x, y, replace(params, learning_rate=rate, seed=params.seed + k))

    def reset_optimizer(self) -> None:
        for member in self.members:
            member.reset_optimizer()

    def corrupt(self) -> None:
        for member in self.members:
            member.corrupt()

    def window_metrics(self) -> dict[str, float]:
        return {f"ensemble_weight_{k}": float(w) for k, w in enumerate(self.weights())}

    def parameters(self) -> dict[str, Any]:
        return {"kind": self.kind, "learning_rates": list(self.learning_rates), "eta": self.eta,
                "loss_decay": self.loss_decay, "weights": self.weights().tolist(),
                "losses": None if self.losses is None else self.losses.tolist(),
                "members": [m.parameters() for m in self.members]}

    @classmethod
    def from_parameters(cls, params: dict[str, Any], decode: Callable[[dict[str, Any]], Learner]) -> EnsembleLearner:
        return cls(members=[decode(p) for p in params["members"]], learning_rates=tuple(params["learning_rates"]),
                   eta=float(params["eta"]), loss_decay=float(params["loss_decay"]),
                   losses=None if params["losses"] is None else np.asarray(params["losses"], dtype=float))
