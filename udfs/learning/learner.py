"""What every model kind implements, so that the trainer, the scorer and the pyfunc model never
branch on the kind: learners see design matrices (udfs/learning/scaler.py), train a window at a time, and
turn into JSON-ready parameters that score exactly as they do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class TrainParams:
    optimizer: str = "adam"
    learning_rate: float = 0.05
    epochs: int = 1
    batch_size: int = 256
    l2: float = 1e-4
    seed: int = 0
    learning_rate_boost: float = 1.0  # after concept drift (adaptation.learning_rate_boost)

    @property
    def step_size(self) -> float:
        return self.learning_rate * self.learning_rate_boost


class Learner(Protocol):
    kind: str

    def predict_design(self, x: np.ndarray) -> np.ndarray:
        """Positive-class probability per row of a design matrix, in one vectorised pass."""

    def fit_design(self, x: np.ndarray, y: np.ndarray, params: TrainParams) -> None:
        """``params.epochs`` shuffled passes of mini-batches over one window's training rows."""

    def reset_optimizer(self) -> None:
        """Forget optimizer moments (adaptation's ``lr_boost``)."""

    def corrupt(self) -> None:
        """Make the learner confidently wrong (tests of the gate and rollback)."""

    def window_metrics(self) -> dict[str, float]:
        """Figures of the last update worth logging per window (empty for most kinds)."""

    def parameters(self) -> dict[str, Any]:
        """JSON-ready, with ``kind``: everything needed to score, nothing about training."""
