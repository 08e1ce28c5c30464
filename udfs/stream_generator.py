"""Reproducible streams of user interactions with known structure, drift and shift.

Users differ in activity (lognormal), in a latent propensity that makes their history
predictive, and in their own feature means (so per-user z-scores carry signal). Labels come
from a hidden logistic model. Feature draws and label draws use separate random streams, so
a concept drift changes labels without changing a single feature value, and a covariate
shift moves one feature without touching the others.

>>> events = list(generate_events(StreamSpec(n_events=1000, n_users=50, seed=1)))
>>> len(events), len({e["event_id"] for e in events})
(1000, 1000)
>>> sorted(events[0]["features"])[:3]
['amount', 'country', 'device']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

_NAMED_NUMERIC = ("amount", "dwell_seconds", "price", "discount_pct", "pages_viewed", "scroll_depth")
_NAMED_CATEGORICAL = {"device": ["ios", "android", "web", "tablet"],
                      "country": ["us", "de", "fr", "gb", "in", "br", "jp", "es", "it", "nl", "pl", "se"]}


@dataclass(frozen=True)
class CovariateShift:
    feature: str          # numeric feature name
    at_s: float           # seconds after stream start
    delta_std: float      # shift of the feature's mean, in units of its global std


@dataclass(frozen=True)
class StreamSpec:
    n_events: int = 100_000
    n_users: int = 2_000
    n_items: int = 500
    duration_s: float = 3 * 3600.0
    start_ms: int = 1_767_225_600_000          # 2026-01-01T00:00:00Z
    seed: int = 7
    n_numeric: int = 6
    n_categorical: int = 2                      # plus the bool feature "is_returning"
    labeled_fraction: float = 0.8
    base_rate: float = 0.3
    signal: float = 1.0
    max_out_of_order_ms: int = 2_000
    iso_time_fraction: float = 0.1
    concept_drift_at_s: float | None = None
    covariate_shifts: tuple[CovariateShift, ...] = ()


def numeric_feature_names(n_numeric: int) -> list[str]:
    return [_NAMED_NUMERIC[i] if i < len(_NAMED_NUMERIC) else f"num_{i}" for i in range(n_numeric)]


def categorical_feature_names(n_categorical: int) -> list[str]:
    named = list(_NAMED_CATEGORICAL)
    return [named[i] if i < len(named) else f"cat_{i}" for i in range(n_categorical)]


def window_of(event_time_ms: int, window_ms: int) -> int:
    return event_time_ms - event_time_ms % window_ms


def _categories(name: str, rng: np.random.Generator) -> list[str]:
    return _NAMED_CATEGORICAL.get(name) or [f"{name}_v{j}" for j in range(int(rng.integers(8, 21)))]


def _numeric_values(j: int, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Realistic marginals from a standard-normal latent ``base`` (user offset + noise)."""
    kind = j % len(_NAMED_NUMERIC)
    if kind == 0:
        return np.round(np.exp(3.0 + 0.8 * base), 2)           # amount: lognormal
    if kind == 1:
        return np.round(np.exp(3.5 + 0.6 * base), 1)           # dwell seconds
    if kind == 2:
        return np.round(np.exp(2.5 + 0.7 * base), 2)           # price
    if kind == 3:
        return np.clip(np.round(20 + 15 * base), 0, 100)       # discount %
    if kind == 4:
        return np.maximum(np.round(4 + 2.5 * base), 1)         # pages viewed (integer)
    return np.clip(0.5 + 0.2 * base, 0, 1)                     # scroll depth


def generate_events(spec: StreamSpec) -> Iterator[dict[str, Any]]:
    """The events, lazily, in emission order (event time with bounded jitter)."""
    n, u = spec.n_events, spec.n_users
    feat_rng = np.random.default_rng([spec.seed, 1])
    label_rng = np.random.default_rng([spec.seed, 2])
    num_names = numeric_feature_names(spec.n_numeric)
    cat_names = categorical_feature_names(spec.n_categorical)
    cat_values = {name: _categories(name, feat_rng) for name in cat_names}

    activity = feat_rng.lognormal(0.0, 1.2, u)
    propensity = feat_rng.normal(0.0, 1.0, u)
    user_offsets = feat_rng.normal(0.0, 0.8, (u, spec.n_numeric))
    user_pref = {name: feat_rng.integers(0, len(vals), u) for name, vals in cat_values.items()}
    favourites = feat_rng.integers(0, spec.n_items, (u, 5))

    times = np.sort(feat_rng.uniform(0, spec.duration_s * 1000.0, n)).astype(np.int64) + spec.start_ms
    users = feat_rng.choice(u, size=n, p=activity / activity.sum())
    noise = feat_rng.normal(0.0, 0.6, (n, spec.n_numeric))
    latent = user_offsets[users] + noise
    for shift in spec.covariate_shifts:
        j = num_names.index(shift.feature)
        after = times >= spec.start_ms + shift.at_s * 1000.0
        latent[after, j] += shift.delta_std * latent[:, j].std()
    numeric = np.column_stack([_numeric_values(j, latent[:, j], feat_rng) for j in range(spec.n_numeric)])
    cats = {}
    for name, vals in cat_values.items():
        own = feat_rng.random(n) < 0.7
        cats[name] = np.where(own, user_pref[name][users], feat_rng.integers(0, len(vals), n))
    returning = feat_rng.random(n) < 0.6
    item_pick = feat_rng.integers(0, 5, n)
    item_fav = feat_rng.random(n) < 0.6
    items = np.where(item_fav, favourites[users, item_pick], feat_rng.integers(0, spec.n_items, n))
    no_item = feat_rng.random(n) < 0.1
    labeled = feat_rng.random(n) < spec.labeled_fraction
    iso = feat_rng.random(n) < spec.iso_time_fraction
    jitter = feat_rng.integers(0, spec.max_out_of_order_ms + 1, n)

    logit = _hidden_logit(spec, times, latent, noise, cats, cat_values, returning, propensity[users])
    labels = (label_rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)

    # Emission order: sort by time + jitter; an event is never emitted after one more than
    # max_out_of_order_ms newer than itself.
    order = np.argsort(times + jitter, kind="stable")
    for i in order:
        features: dict[str, Any] = {name: float(numeric[i, j]) for j, name in enumerate(num_names)}
        features.update({name: cat_values[name][cats[name][i]] for name in cat_names})
        features["is_returning"] = bool(returning[i])
        t = int(times[i])
        yield {
            "event_id": f"e{spec.seed}-{i:09d}",
            "user_id": f"u{users[i]:06d}",
            "item_id": None if no_item[i] else f"i{items[i]:05d}",
            "event_time": _iso(t) if iso[i] else t,
            "features": features,
            "label": int(labels[i]) if labeled[i] else None,
        }


def _hidden_logit(spec: StreamSpec, times: np.ndarray, latent: np.ndarray, noise: np.ndarray,
                  cats: dict[str, np.ndarray], cat_values: dict[str, list[str]], returning: np.ndarray,
                  propensity: np.ndarray) -> np.ndarray:
    """Label logit: global feature effects + deviation from the user's own habits + propensity."""
    def concept(seed_part: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        r = np.random.default_rng([spec.seed, 3, seed_part])
        w = r.normal(0.0, 1.0, spec.n_numeric)
        w_dev = r.normal(0.0, 1.0, spec.n_numeric)
        effects = {name: r.normal(0.0, 0.8, len(vals)) for name, vals in cat_values.items()}
        return w, w_dev, effects

    z = (latent - latent.mean(axis=0)) / latent.std(axis=0)
    dev = noise / 0.6

    def score(part: int) -> np.ndarray:
        w, w_dev, effects = concept(part)
        s = z @ w * 0.8 + dev @ w_dev * 0.8 + 0.5 * returning
        for name, idx in cats.items():
            s = s + effects[name][idx]
        return s

    def logit(part: int) -> np.ndarray:
        raw = spec.signal * score(part) + 1.2 * propensity
        return raw + _intercept(raw, spec.base_rate)

    result = logit(0)
    if spec.concept_drift_at_s is not None:
        after = times >= spec.start_ms + spec.concept_drift_at_s * 1000.0
        result = np.where(after, logit(1), result)
    return result


def _intercept(raw: np.ndarray, base_rate: float) -> float:
    """Bisection for the intercept that makes the mean probability equal ``base_rate``."""
    lo, hi = -20.0, 20.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(raw + mid)))) < base_rate else (lo, mid)
    return (lo + hi) / 2


def _iso(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_jsonl(events: Iterable[dict[str, Any]], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w") as f:
        for event in events:
            f.write(json.dumps(event) + "\n")
            count += 1
    return count
