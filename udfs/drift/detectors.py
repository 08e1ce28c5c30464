"""Two-sample Kolmogorov-Smirnov drift checks with a multiple-testing correction.

Each tested quantity (a raw feature, or the model's per-example loss) keeps a reference
sample, filled from the first ``reference_windows`` windows it sees. Every later window is
tested against it; the p-values of one window form one family, corrected together so that
the chance of any false alarm in a stationary window stays at or below ``alpha``. A detection
replaces that reference with the drifted window: the new normal, so that one shift raises one
alarm instead of one per window from then on.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> det = KSDriftDetector(alpha=0.05, reference_windows=1, min_samples=50)
>>> det.check({"x": rng.normal(size=500)})
[]
>>> [d.name for d in det.check({"x": rng.normal(2.0, 1.0, size=500)})]
['x']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np

from udfs.drift.ks_test import Alternative, ks_2samp

Correction = Literal["bonferroni", "holm", "benjamini-hochberg"]


@dataclass(frozen=True)
class Detection:
    name: str
    statistic: float
    p_value: float


def reject(p_values: list[float], alpha: float, correction: Correction) -> list[bool]:
    """Which hypotheses to reject under the correction (family of all given p-values)."""
    m = len(p_values)
    order = np.argsort(p_values)
    rejected = [False] * m
    if correction == "bonferroni":
        return [p <= alpha / m for p in p_values]
    if correction == "holm":
        for rank, i in enumerate(order):
            if p_values[i] > alpha / (m - rank):
                break
            rejected[i] = True
        return rejected
    passing = [rank for rank, i in enumerate(order) if p_values[i] <= alpha * (rank + 1) / m]
    for rank in range(max(passing) + 1 if passing else 0):
        rejected[order[rank]] = True
    return rejected


@dataclass
class KSDriftDetector:
    """Keeps reference samples and tests each window's samples against them.

    ``alternatives`` maps a name to "greater" for one-sided checks (a loss that got worse is
    drift; a loss that got better is learning, not drift).
    """

    alpha: float = 0.05
    correction: Correction = "holm"
    reference_windows: int = 2
    reference_size: int = 5_000
    min_samples: int = 100
    min_statistic: float = 0.0
    seed: int = 0
    alternatives: dict[str, Alternative] = field(default_factory=dict)
    references: dict[str, np.ndarray] = field(default_factory=dict)
    reference_fill: dict[str, int] = field(default_factory=dict)

    def check(self, samples: dict[str, np.ndarray],
              other_tests: dict[str, tuple[float, float]] | None = None) -> list[Detection]:
        """Test this window's samples (NaN ignored); learn references still being filled.

        ``other_tests`` (name -> statistic, p-value, e.g. :class:`ErrorRateCheck`) join the same
        corrected family, so adding a check does not raise the false-alarm rate.
        """
        tested: list[tuple[str, float, float, np.ndarray | None]] = [
            (name, statistic, p_value, None) for name, (statistic, p_value) in (other_tests or {}).items()]
        for name, values in samples.items():
            values = values[np.isfinite(values)]
            if self.reference_fill.get(name, 0) < self.reference_windows:
                self._extend_reference(name, values)
            elif len(values) >= self.min_samples:
                statistic, p_value = ks_2samp(values, self.references[name], self.alternatives.get(name, "two-sided"))
                tested.append((name, statistic, p_value, values))
        if not tested:
            return []
        flags = reject([p for _, _, p, _ in tested], self.alpha, self.correction)
        detections = []
        for (name, statistic, p_value, values), flagged in zip(tested, flags):
            if flagged and values is None:
                detections.append(Detection(name, statistic, p_value))
            elif flagged and statistic >= self.min_statistic:
                detections.append(Detection(name, statistic, p_value))
                self.references.pop(name)
                self.reference_fill[name] = 0
                self._extend_reference(name, values)
        return detections

    def _extend_reference(self, name: str, values: np.ndarray) -> None:
        merged = np.concatenate([self.references.get(name, np.empty(0)), values])
        if len(merged) > self.reference_size:
            rng = np.random.default_rng(self.seed + len(merged))
            merged = rng.choice(merged, size=self.reference_size, replace=False)
        self.references[name] = merged
        self.reference_fill[name] = self.reference_fill.get(name, 0) + 1


@dataclass
class ErrorRateCheck:
    """Is this window's error rate above the reference windows'? One-sided two-proportion z-test.

    The loss KS test sees any change in the loss distribution; this one sees the plainer signal
    that more predictions are wrong. Its reference is the pooled error count of the first
    ``reference_windows`` windows, replaced by the drifted window after a detection.

    >>> check = ErrorRateCheck(reference_windows=1, min_samples=50)
    >>> check.test(np.array([0] * 80 + [1] * 20)) is None  # fills the reference (20% wrong)
    True
    >>> increase, p_value = check.test(np.array([0] * 55 + [1] * 45))  # 45% wrong
    >>> round(increase, 2), p_value < 1e-3
    (0.25, True)
    """

    reference_windows: int = 2
    min_samples: int = 100
    min_increase: float = 0.0
    errors: int = 0
    total: int = 0
    filled: int = 0

    def test(self, wrong: np.ndarray) -> tuple[float, float] | None:
        """(increase in error rate, p-value), or None while the reference fills or too few samples."""
        if self.filled < self.reference_windows:
            self.errors, self.total, self.filled = self.errors + int(wrong.sum()), self.total + len(wrong), self.filled + 1
            return None
        if len(wrong) < self.min_samples or self.total == 0:
            return None
        now, before = float(wrong.mean()), self.errors / self.total
        pooled = (wrong.sum() + self.errors) / (len(wrong) + self.total)
        se = np.sqrt(pooled * (1 - pooled) * (1 / len(wrong) + 1 / self.total))
        if now - before < self.min_increase or se == 0:
            return now - before, 1.0
        return now - before, NormalDist().cdf(-(now - before) / se)

    def restart(self, wrong: np.ndarray) -> None:
        """After a detection the drifted window is the new reference."""
        self.errors, self.total, self.filled = int(wrong.sum()), len(wrong), 1


@dataclass
class LossBand:
    """Where the serving model's per-example loss lies while the stream is calm: fast mode ends
    when slots are back inside it.

    An exponentially weighted mean of the calm slots' mean loss and of their per-example variance
    (``weight`` per slot, so it follows a model that keeps learning). A slot is within the band if
    its mean loss is at most ``z`` standard errors above the band's mean.

    >>> band = LossBand(weight=0.5)
    >>> band.update(np.array([0.2, 0.4, 0.3, 0.3]))
    >>> band.within(np.array([0.3, 0.35, 0.25, 0.3]), z=2.0), band.within(np.array([2.0, 1.5, 2.5, 1.0]), z=2.0)
    (True, False)
    """

    weight: float = 0.05
    mean: float | None = None
    variance: float = 0.0

    def update(self, losses: np.ndarray) -> None:
        if not len(losses):
            return
        if self.mean is None:
            self.mean, self.variance = float(losses.mean()), float(losses.var())
            return
        w = self.weight
        self.mean = (1 - w) * self.mean + w * float(losses.mean())
        self.variance = (1 - w) * self.variance + w * float(losses.var())

    def within(self, losses: np.ndarray, z: float) -> bool:
        if self.mean is None or not len(losses):
            return True
        return bool(float(losses.mean()) <= self.mean + z * np.sqrt(self.variance / len(losses)))
