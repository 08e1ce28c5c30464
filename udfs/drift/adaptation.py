"""What the trainer does when the world or the model goes wrong: one decision table, so that drift
reaction, rollback, the gate and fast mode never undo each other.

A loss that got worse has two explanations: the world changed (concept drift: every model of the
old concept is as bad, and the learner must move on) or the last update was bad (a recent snapshot
is still good, and should serve again). The table settles which, before anything acts, and every
comparison of two models is paired, on the same rows, rows that neither model trained on.

======================  ==================================================  =============================
moment                  condition (first match wins)                         decision
======================  ==================================================  =============================
slot, a concept check   a recent snapshot, its loss still within the calm    ``rollback`` (a bad update:
fires                   band, beats the serving one on this slot's rows      no drift reaction)
                        otherwise                                            concept drift: ``fast_mode_on``
                                                                             (fast mode on) and the policies
                                                                             ``lr_boost``, ``reset_weights``,
                                                                             ``retrain_window``; the drift
                                                                             floor moves up to the learner
after a drift           ``calm_slots`` calm slots in a row                   ``fast_mode_off`` (fast mode
                                                                             on) or ``drift_recovered``:
                                                                             the drift floor is lifted
fast-mode slot          the learner trained on this slot is blocked by the   (the serving model stays)
                        gate on the slot's held-out rows
                        otherwise                                            the newest slot's model serves
window close            a drift recovered in this window and the snapshot    ``rollback``, rule
                        from before it is not worse (gate) than the serving  ``recovered`` (a false
                        one                                                  alarm's reset undone)
                        the snapshot that would win predates the drift       ``rollback_vetoed``, rule
                        floor and no newer one beats the serving model       ``concept_drift``
                        fast mode on and a snapshot would win the rollback   ``rollback_vetoed``, rule
                                                                             ``fast_mode``
                        a recent snapshot newer than the floor beats the     ``rollback``; the candidate is
                        serving one                                          ``candidate_held``
                        the candidate against the serving model              ``gate_passed`` /
                                                                             ``gate_blocked`` /
                                                                             ``gate_skipped``
======================  ==================================================  =============================

- The **drift floor** is the number of the last candidate trained before a concept drift that has
  not recovered yet: no snapshot at or below it serves again (a model of the old concept). The drift
  has recovered after ``calm_slots`` slots in a row within the calm loss band (with fast mode on,
  when fast mode ends). A false alarm on a stationary stream recovers within minutes, and the
  snapshot from before it may then undo its reset, compared on the same rows.
- **The same rows**: at a slot, its labeled rows (no model has trained on them yet); at a window
  close, its held-out rows, from the slot where a concept drift was found on if one was (the rows
  before it are of the old concept). Rollback and gate compare on exactly these rows; with fewer than
  ``gate_min_rows`` of them neither compares.
- **Margins**: a rollback needs the serving model's loss above the best snapshot's by
  ``rollback_tolerance`` (relative), a gate block needs the candidate's above the serving model's by
  ``gate_tolerance``; both also by more than twice the standard error of the paired differences, so
  that the noise of a small slice decides nothing.

Every decision is a dict ``{"kind": ..., "reason": ..., figures}`` in the snapshot (and ``decision_<kind>``
in MLflow); the rollback family names the ``rule`` that won.

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
from dataclasses import dataclass
from typing import Any

import numpy as np

from udfs.learning.metrics import per_example_log_loss


def held_out(event_id: str, fraction: float) -> bool:
    """Deterministic holdout by event id: the same rows on every run and after every restore."""
    return zlib.crc32(event_id.encode()) % 10_000 < fraction * 10_000


@dataclass(frozen=True)
class Paired:
    """Two models' mean losses on the same rows, and the noise of their difference (twice its standard error)."""

    first: float
    second: float
    noise: float

    @classmethod
    def of(cls, first_losses: np.ndarray, second_losses: np.ndarray) -> Paired:
        difference = first_losses - second_losses
        n = len(difference)
        noise = 2.0 * float(difference.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        return cls(float(first_losses.mean()), float(second_losses.mean()), noise)


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
    paired = Paired.of(per_example_log_loss(y, candidate_probs), per_example_log_loss(y, serving_probs))
    candidate, serving = paired.first, paired.second
    margin = max(tolerance, paired.noise)
    passed = candidate <= serving + margin
    return {"kind": "gate_passed" if passed else "gate_blocked",
            "reason": f"holdout logloss {candidate:.4f} vs serving {serving:.4f} (margin {margin:.4f}: "
                      f"the larger of tolerance {tolerance} and twice the standard error)",
            "candidate_logloss": candidate, "serving_logloss": serving, "margin": margin, "holdout_rows": int(len(y))}


def rollback_decision(serving_losses: np.ndarray, recent_losses: dict[int, np.ndarray], tolerance: float,
                      drift_floor: int, fast_mode: bool) -> dict[str, Any] | None:
    """The rollback rows of the decision table: per-example losses of the serving model and of each
    recent snapshot (by version) on the same rows. None when no snapshot beats the serving one.

    A snapshot beats the serving model when the serving loss is above its loss by ``tolerance``
    (relative) and by twice the standard error of the paired differences. It is restored only if it
    is newer than ``drift_floor`` (0: no unrecovered drift) and fast mode is off; otherwise the
    decision says which rule won (``concept_drift`` before ``fast_mode``).

    >>> bad, good = np.array([2.0, 1.8, 2.2, 1.9] * 10), np.array([0.3, 0.4, 0.2, 0.3] * 10)
    >>> rollback_decision(bad, {3: good, 4: good + 0.1}, 0.25, drift_floor=0, fast_mode=False)["to_version"]
    3
    >>> vetoed = rollback_decision(bad, {3: good, 5: bad}, 0.25, drift_floor=4, fast_mode=False)
    >>> vetoed["kind"], vetoed["rule"], vetoed["would_restore"]
    ('rollback_vetoed', 'concept_drift', 3)
    >>> rollback_decision(bad, {3: good}, 0.25, drift_floor=0, fast_mode=True)["rule"]
    'fast_mode'
    >>> rollback_decision(bad, {3: good}, 0.25, drift_floor=4, fast_mode=True)["rule"]
    'concept_drift'
    >>> rollback_decision(good, {3: bad}, 0.25, drift_floor=0, fast_mode=False) is None
    True
    """
    compared = {version: Paired.of(serving_losses, losses) for version, losses in recent_losses.items()}
    beating = {v: p for v, p in compared.items()
               if p.first > p.second * (1 + tolerance) and p.first - p.second > p.noise}
    if not beating:
        return None
    newer = {v: p for v, p in beating.items() if v > drift_floor}
    eligible = {} if fast_mode else newer
    pool = eligible or newer or beating
    chosen = min(pool, key=lambda v: pool[v].second)
    paired = beating[chosen]
    figures = {"serving_logloss": paired.first, "restored_logloss": paired.second, "noise": paired.noise,
               "rows": int(len(serving_losses)), "drift_floor": drift_floor,
               "compared": {str(v): p.second for v, p in sorted(compared.items())}}
    comparison = (f"serving logloss {paired.first:.4f} vs {paired.second:.4f} for version {chosen} on the same "
                  f"{len(serving_losses)} rows (tolerance {tolerance:.0%}, noise {paired.noise:.4f})")
    if eligible:
        return {"kind": "rollback", "rule": "rollback", "to_version": chosen, "reason": comparison, **figures}
    if newer:
        return {"kind": "rollback_vetoed", "rule": "fast_mode", "would_restore": chosen,
                "reason": f"{comparison}; fast mode is on: the model trained on the newest slot serves", **figures}
    return {"kind": "rollback_vetoed", "rule": "concept_drift", "would_restore": chosen,
            "reason": f"{comparison}; version {chosen} predates the concept drift found after version "
                      f"{drift_floor}: a model of the old concept", **figures}
