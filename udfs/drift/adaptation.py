"""What the trainer does when the world or the model goes wrong: adaptation, gate, rollback.

Three decisions per window, each recorded as a dict ``{"kind": ..., "reason": ..., numbers}``
in the snapshot (and logged to MLflow as ``decision_<kind>``):

- **adaptation** on concept drift (``adaptation.policies``): ``lr_boost`` resets the optimizer
  and multiplies the learning rate for a few windows; ``reset_weights`` starts the learner over
  (old weights encode the old concept); ``retrain_window`` trains the drifted window with more
  epochs, so the next window is already scored by a model of the new concept;
- **gate**: a candidate serves only if, on held-out rows of its own window, its logloss is not
  worse than the serving model's by more than ``gate_tolerance``;
- **rollback**: if one of the recent served snapshots beats the serving one on this window by
  more than ``rollback_tolerance`` (relative), serve it again and train on from it. After concept
  drift every old snapshot is as bad as the serving one, so drift does not trigger a rollback.

>>> import numpy as np
>>> y = np.array([1.0, 0.0, 1.0, 0.0])
>>> gate_decision(candidate_probs=np.array([.9, .1, .8, .2]), serving_probs=np.array([.5] * 4), y=y,
...               tolerance=0.05)["kind"]
'gate_passed'
>>> gate_decision(candidate_probs=np.array([.1, .9, .2, .8]), serving_probs=np.array([.5] * 4), y=y,
...               tolerance=0.05)["kind"]
'gate_blocked'
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from udfs.learning.metrics import per_example_log_loss


def held_out(event_id: str, fraction: float) -> bool:
    """Deterministic holdout by event id: the same rows on every run and after every restore."""
    return zlib.crc32(event_id.encode()) % 10_000 < fraction * 10_000


def gate_decision(candidate_probs: np.ndarray, serving_probs: np.ndarray, y: np.ndarray,
                  tolerance: float) -> dict[str, Any]:
    """Blocks a candidate that is worse than the serving model on the held-out rows by more than
    ``tolerance`` and by more than twice the standard error of the paired loss difference, so that
    the noise of a small held-out slice does not block a healthy candidate.

    >>> y = np.array([1, 0] * 40)
    >>> gate_decision(np.where(y == 1, 0.1, 0.9), np.where(y == 1, 0.8, 0.2), y, tolerance=0.05)["kind"]
    'gate_blocked'
    >>> gate_decision(np.where(y == 1, 0.8, 0.2), np.where(y == 1, 0.8, 0.2), y, tolerance=0.05)["kind"]
    'gate_passed'
    """
    candidate_losses, serving_losses = per_example_log_loss(y, candidate_probs), per_example_log_loss(y, serving_probs)
    candidate, serving = float(candidate_losses.mean()), float(serving_losses.mean())
    difference = candidate_losses - serving_losses
    noise = 2.0 * float(difference.std(ddof=1) / np.sqrt(len(y))) if len(y) > 1 else 0.0
    margin = max(tolerance, noise)
    passed = candidate <= serving + margin
    return {"kind": "gate_passed" if passed else "gate_blocked",
            "reason": f"holdout logloss {candidate:.4f} vs serving {serving:.4f} (margin {margin:.4f}: "
                      f"the larger of tolerance {tolerance} and twice the standard error)",
            "candidate_logloss": candidate, "serving_logloss": serving, "holdout_rows": int(len(y))}


def rollback_target(serving_logloss: float, recent_logloss: dict[int, float],
                    tolerance: float) -> tuple[int, dict[str, Any]] | None:
    """The recent snapshot to go back to, if one beats the serving model on this window by the margin.

    >>> rollback_target(1.2, {3: 0.40, 4: 0.45}, tolerance=0.25)[0]
    3
    >>> rollback_target(0.48, {3: 0.40, 4: 0.45}, tolerance=0.25) is None
    True
    """
    if not recent_logloss:
        return None
    version = min(recent_logloss, key=recent_logloss.__getitem__)
    best = recent_logloss[version]
    if serving_logloss <= best * (1 + tolerance):
        return None
    return version, {"kind": "rollback", "to_version": version,
                     "reason": f"serving logloss {serving_logloss:.4f} on this window vs {best:.4f} "
                               f"for version {version} (tolerance {tolerance:.0%})",
                     "serving_logloss": serving_logloss, "restored_logloss": best}
