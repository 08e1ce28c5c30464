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
from typing import Literal

import numpy as np
from scipy.stats import ks_2samp

Correction = Literal["bonferroni", "holm", "benjamini-hochberg"]
Alternative = Literal["two-sided", "greater"]


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

    def check(self, samples: dict[str, np.ndarray]) -> list[Detection]:
        """Test this window's samples (NaN ignored); learn references still being filled."""
        tested: list[tuple[str, float, float, np.ndarray]] = []
        for name, values in samples.items():
            values = values[np.isfinite(values)]
            if self.reference_fill.get(name, 0) < self.reference_windows:
                self._extend_reference(name, values)
            elif len(values) >= self.min_samples:
                statistic, p_value = self._ks(name, values)
                tested.append((name, statistic, p_value, values))
        if not tested:
            return []
        flags = reject([p for _, _, p, _ in tested], self.alpha, self.correction)
        detections = []
        for (name, statistic, p_value, values), flagged in zip(tested, flags):
            if flagged and statistic >= self.min_statistic:
                detections.append(Detection(name, statistic, p_value))
                self.references.pop(name)
                self.reference_fill[name] = 0
                self._extend_reference(name, values)
        return detections

    def _ks(self, name: str, values: np.ndarray) -> tuple[float, float]:
        alternative = self.alternatives.get(name, "two-sided")
        # scipy's 'less' means: the first sample's CDF lies below, i.e. its values are larger.
        reference = self.references[name]
        # The exact p-value is slow and may not converge for large samples; asymptotic is accurate there.
        method = "exact" if len(values) * len(reference) <= 10_000 else "asymp"
        result = ks_2samp(values, reference, alternative="less" if alternative == "greater" else "two-sided",
                          method=method)
        return float(result.statistic), float(result.pvalue)

    def _extend_reference(self, name: str, values: np.ndarray) -> None:
        merged = np.concatenate([self.references.get(name, np.empty(0)), values])
        if len(merged) > self.reference_size:
            rng = np.random.default_rng(self.seed + len(merged))
            merged = rng.choice(merged, size=self.reference_size, replace=False)
        self.references[name] = merged
        self.reference_fill[name] = self.reference_fill.get(name, 0) + 1
