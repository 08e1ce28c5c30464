"""A model = the feature scaler + a learner of the configured kind (``model.kind``), built from settings
or from a snapshot's parameters. The trainer, the scorer and the pyfunc model only use this.

>>> import numpy as np
>>> model = Model.initial(ModelSpec(kind="ensemble", learning_rates=(0.01, 0.1)), n_dense=2, hash_buckets=3)
>>> model.learner.kind, [m.kind for m in model.learner.members]
('ensemble', ['logistic', 'logistic'])
>>> copy = Model.from_parameters(model.parameters())
>>> bool(np.array_equal(copy.predict_proba(np.ones((4, 2)), np.zeros((4, 1), dtype=int)), np.full(4, 0.5)))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from udfs.learning.ensemble import EnsembleLearner
from udfs.learning.fm import FmLearner
from udfs.learning.ftrl import FtrlLearner
from udfs.learning.learner import Learner, TrainParams
from udfs.learning.logistic import LogisticLearner
from udfs.learning.scaler import Scaler

if TYPE_CHECKING:
    from conf.settings import ModelSettings


@dataclass(frozen=True)
class ModelSpec:
    """The ``model.*`` settings that shape a learner (training settings go to :class:`TrainParams`)."""

    kind: str = "logistic"
    hidden_units: tuple[int, ...] = (64,)
    dropout: float = 0.0
    device: str = "cpu"
    member: str = "logistic"
    learning_rates: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1)
    eta: float = 20.0
    loss_decay: float = 0.5
    ftrl: tuple[float, float, float, float] = (0.5, 1.0, 0.5, 0.0)  # alpha, beta, l1, l2
    factors: int = 4
    init_std: float = 0.1
    id_buckets: int = 0  # per id field, in the design (only factorization machines use ids)
    seed: int = 0

    @classmethod
    def from_settings(cls, m: ModelSettings) -> ModelSpec:
        e, f = m.ensemble, m.ftrl
        return cls(kind=m.kind, hidden_units=m.hidden_units, dropout=m.dropout, device=m.device, member=e.member,
                   learning_rates=e.learning_rates, eta=e.eta, loss_decay=e.loss_decay,
                   ftrl=(f.alpha, f.beta, f.l1, f.l2), factors=m.fm.factors, init_std=m.fm.init_std,
                   id_buckets=m.id_buckets, seed=m.seed)

    def new_learner(self, n_inputs: int, kind: str | None = None, seed: int | None = None) -> Learner:
        """An untrained learner of ``kind`` (default: the configured one) on ``n_inputs`` design columns."""
        kind, seed = kind or self.kind, self.seed if seed is None else seed
        if kind == "logistic":
            return LogisticLearner.initial(n_inputs)
        if kind == "mlp":
            from udfs.learning.mlp import MlpLearner  # torch loads only for the kinds that use it

            return MlpLearner.initial(n_inputs, self.hidden_units, self.dropout, seed, self.device)
        if kind == "ftrl":
            return FtrlLearner.initial(n_inputs, *self.ftrl)
        if kind == "fm":
            return FmLearner.initial(n_inputs, self.factors, self.init_std, seed)
        members = [self.new_learner(n_inputs, self.member, seed + k) for k in range(len(self.learning_rates))]
        return EnsembleLearner(members, self.learning_rates, self.eta, self.loss_decay)


def learner_from_parameters(params: dict[str, Any], device: str = "cpu") -> Learner:
    """The learner a snapshot describes; snapshots without a ``kind`` are logistic (written before kinds)."""
    kind = params.get("kind", "logistic")
    if kind == "logistic":
        return LogisticLearner.from_parameters(params)
    if kind == "mlp":
        from udfs.learning.mlp import MlpLearner

        return MlpLearner.from_parameters(params, device)
    if kind == "ftrl":
        return FtrlLearner.from_parameters(params)
    if kind == "fm":
        return FmLearner.from_parameters(params)
    return EnsembleLearner.from_parameters(params, lambda member: learner_from_parameters(member, device))


@dataclass
class Model:
    scaler: Scaler
    learner: Learner

    @classmethod
    def initial(cls, spec: ModelSpec, n_dense: int, hash_buckets: int) -> Model:
        scaler = Scaler.initial(n_dense, hash_buckets, spec.id_buckets)
        return cls(scaler, spec.new_learner(scaler.n_inputs))

    def predict_proba(self, dense: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        return self.learner.predict_design(self.scaler.design(dense, buckets))

    def update_scaler(self, dense: np.ndarray, decay: float, reset: bool = False) -> None:
        self.scaler.update(dense, decay, reset)

    def fit(self, dense: np.ndarray, buckets: np.ndarray, labels: np.ndarray, params: TrainParams) -> None:
        self.learner.fit_design(self.scaler.design(dense, buckets), labels, params)

    def parameters(self) -> dict[str, Any]:
        """JSON-ready: the scaler's fields next to the learner's (``kind`` among them)."""
        return {**self.scaler.parameters(), **self.learner.parameters()}

    @classmethod
    def from_parameters(cls, params: dict[str, Any], device: str = "cpu") -> Model:
        return cls(Scaler.from_parameters(params), learner_from_parameters(params, device))
