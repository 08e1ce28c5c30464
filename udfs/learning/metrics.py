"""Prequential quality metrics of one window: each event is scored before it trains the model.

>>> import numpy as np
>>> y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
>>> round(log_loss(y, p), 4), accuracy(y, p), roc_auc(y, p)
(0.4723, 0.75, 0.75)
>>> roc_auc(np.array([1, 1]), np.array([0.2, 0.9])) is None
True
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def per_example_log_loss(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, _EPS, 1 - _EPS)
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(per_example_log_loss(labels, probs).mean())


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    return float(np.mean((probs >= 0.5) == (labels == 1)))


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    """Rank-based AUC (ties count half); None when only one class is present."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = average_ranks(probs)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the average of their ranks (scipy's ``rankdata``).

    Here in numpy so that the predictor's workers, which score with these modules, do not import
    scipy (about a second of each worker's start-up).

    >>> average_ranks(np.array([0.5, 0.1, 0.5, 0.9])).tolist()
    [2.5, 1.0, 2.5, 4.0]
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks
