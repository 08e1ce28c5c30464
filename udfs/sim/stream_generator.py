"""Reproducible streams of user interactions with a known structure, for demos, tests and benchmarks.

A stream is only useful for judging an online learner if we know what there is to learn, so
every event is drawn from an explicit hidden world:

* users differ in activity (lognormal: a few very active, most rare), in a latent propensity
  (so a user's past positive rate predicts the next label), in their own feature means (so
  "unusual for this user" carries signal), in their usual device/country and favourite items;
* labels are Bernoulli draws from a hidden logistic model of the emitted feature values;
* a concept drift swaps that model at a given time, a covariate shift moves one feature's
  values at a given time. Features, labels and the hidden model use separate random streams,
  so a drift changes labels without changing one feature value and a shift changes nothing
  but the shifted feature (and the labels that depend on it).

Events come in event-time order with bounded jitter, like a real source: no event is emitted
after another event more than ``max_out_of_order_ms`` newer than itself.

>>> spec = StreamSpec(n_events=1_000, n_users=50, seed=1)
>>> events = list(generate_events(spec))
>>> len(events), len({e["event_id"] for e in events})
(1000, 1000)
>>> sorted(events[0])
['event_id', 'event_time', 'features', 'item_id', 'label', 'user_id']
>>> list(events[0]["features"])[-4:]
['scroll_depth', 'device', 'country', 'is_returning']
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Within-user and between-user spread of every numeric feature's latent Gaussian (total std 1).
_USER_SD = 0.8
_NOISE_SD = 0.6


@dataclass(frozen=True)
class _NumericKind:
    """How a latent Gaussian becomes a realistic value."""

    value: Callable[[np.ndarray], np.ndarray]   # latent -> raw value
    domain: Callable[[np.ndarray], np.ndarray]  # clip/round any raw value (also a shifted one) into range


def _rounded(decimals: int, low: float = -math.inf, high: float = math.inf) -> Callable[[np.ndarray], np.ndarray]:
    return lambda v: np.clip(np.round(v, decimals), low, high)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))     # no overflow warnings for large |x|


_NAMED_NUMERIC: dict[str, _NumericKind] = {
    "amount": _NumericKind(lambda x: np.exp(3.2 + 0.9 * x), _rounded(2, 0.01)),
    "dwell_seconds": _NumericKind(lambda x: np.exp(3.4 + 0.7 * x), _rounded(1, 0.1)),
    "price": _NumericKind(lambda x: np.exp(3.0 + 0.8 * x), _rounded(2, 0.01)),
    "discount_pct": _NumericKind(lambda x: 100 * _sigmoid(1.2 * x - 1.5), _rounded(1, 0.0, 100.0)),
    "pages_viewed": _NumericKind(lambda x: np.exp(1.3 + 0.6 * x), _rounded(0, 1.0)),
    "scroll_depth": _NumericKind(lambda x: _sigmoid(1.1 * x + 0.4), _rounded(3, 0.0, 1.0)),
}
_GAUSSIAN = _NumericKind(lambda x: x, _rounded(4))

# Categorical values with their popularity (skewed, like real traffic).
_NAMED_CATEGORICAL: dict[str, tuple[list[str], list[float]]] = {
    "device": (["ios", "android", "web", "tablet", "smart_tv"], [0.38, 0.34, 0.2, 0.06, 0.02]),
    "country": (["us", "in", "br", "de", "gb", "fr", "jp", "mx", "es", "it", "nl", "se"],
                [0.3, 0.16, 0.1, 0.08, 0.07, 0.06, 0.05, 0.05, 0.04, 0.04, 0.03, 0.02]),
}
_LOYALTY = {"device": 0.85, "country": 0.97}    # chance an event uses the user's own value
_DEFAULT_LOYALTY = 0.6
_FAVOURITES = 4                                  # favourite items per user
_FAVOURITE_SHARE = 0.6                           # events on a favourite (others: any item)
_NO_ITEM_SHARE = 0.1                             # events without an item (searches, logins)
_DAY_S = 86_400.0

# Hidden model scale at signal=1: roughly the std of each part of the logit.
_NUMERIC_EFFECT = 2.4
_DEVIATION_EFFECT = 0.8
_CATEGORY_EFFECT = 0.7
_RETURNING_EFFECT = 0.3
_PROPENSITY_SD = 1.8
_Z_CLIP = 4.0                                    # heavy tails must not decide labels alone


@dataclass(frozen=True)
class CovariateShift:
    """From ``at_s`` on, ``feature`` is shifted by ``delta_std`` of its global std, for all users."""

    feature: str          # numeric feature name
    at_s: float           # seconds after stream start
    delta_std: float      # shift of the feature's mean, in units of its global std


@dataclass(frozen=True)
class StreamSpec:
    """Everything that determines a stream: the same spec always gives the same events."""

    n_events: int = 100_000
    n_users: int = 2_000
    n_items: int = 500
    duration_s: float = 3 * 3600.0
    start_ms: int = 1_767_225_600_000          # 2026-01-01T00:00:00Z
    seed: int = 7
    n_numeric: int = 6                          # numeric feature count
    n_categorical: int = 2                      # categorical (string) feature count; plus one bool feature
    labeled_fraction: float = 0.8               # others get label None
    base_rate: float = 0.3                      # approx positive rate
    signal: float = 1.0                         # scales the hidden model's weights (0 = pure noise)
    max_out_of_order_ms: int = 2_000            # emission order jitter, bounded
    iso_time_fraction: float = 0.1              # fraction of events whose event_time is an ISO string
    concept_drift_at_s: float | None = None     # abrupt change of the hidden label model (features unchanged)
    covariate_shifts: tuple[CovariateShift, ...] = ()

    def __post_init__(self) -> None:
        """Fail at construction, not at the first ``next()`` of a lazy generator."""
        checks = {
            "n_events >= 0": self.n_events >= 0,
            "n_users >= 1": self.n_users >= 1,
            "n_items >= 1": self.n_items >= 1,
            "duration_s > 0": self.duration_s > 0,
            "n_numeric >= 0": self.n_numeric >= 0,
            "n_categorical >= 0": self.n_categorical >= 0,
            "0 <= labeled_fraction <= 1": 0 <= self.labeled_fraction <= 1,
            "0 < base_rate < 1": 0 < self.base_rate < 1,
            "max_out_of_order_ms >= 0": self.max_out_of_order_ms >= 0,
            "0 <= iso_time_fraction <= 1": 0 <= self.iso_time_fraction <= 1,
        }
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid StreamSpec: need {', '.join(failed)}")
        names = numeric_feature_names(self.n_numeric)
        unknown = [s.feature for s in self.covariate_shifts if s.feature not in names]
        if unknown:
            raise ValueError(f"covariate shift of unknown numeric feature(s) {unknown}; numeric features: {names}")


def numeric_feature_names(n_numeric: int) -> list[str]:
    """``amount, dwell_seconds, price, discount_pct, pages_viewed, scroll_depth``, then ``num_6``, ``num_7``..."""
    named = list(_NAMED_NUMERIC)
    return [named[j] if j < len(named) else f"num_{j}" for j in range(n_numeric)]


def categorical_feature_names(n_categorical: int) -> list[str]:
    """``device, country``, then ``cat_2``, ``cat_3``... (the bool ``is_returning`` comes on top)."""
    named = list(_NAMED_CATEGORICAL)
    return [named[j] if j < len(named) else f"cat_{j}" for j in range(n_categorical)]


def generate_events(spec: StreamSpec) -> Iterator[dict[str, Any]]:
    """The events of ``spec``, lazily, in emission order (event time with bounded jitter).

    All randomness is drawn up front as numpy arrays (fast); the dicts are built one by one.
    """
    if spec.n_events == 0:
        return
    world = np.random.default_rng([spec.seed, 0])     # users, categories, hidden models
    draws = np.random.default_rng([spec.seed, 1])     # per-event features, times, masks
    coins = np.random.default_rng([spec.seed, 2])     # label coin flips only
    n, n_users = spec.n_events, spec.n_users
    num_names = numeric_feature_names(spec.n_numeric)
    kinds = [_NAMED_NUMERIC.get(name, _GAUSSIAN) for name in num_names]
    categories = {name: _categories(name, world) for name in categorical_feature_names(spec.n_categorical)}

    activity = world.lognormal(0.0, 1.3, n_users)
    propensity = world.normal(0.0, _PROPENSITY_SD, n_users)
    user_latent_mean = world.normal(0.0, _USER_SD, (n_users, spec.n_numeric))
    user_category = {name: world.choice(len(vocab), n_users, p=p) for name, (vocab, p) in categories.items()}
    favourites = world.integers(0, spec.n_items, (n_users, _FAVOURITES))
    returning_chance = activity / (activity + 1.0)
    first_concept = _Concept.draw(world, spec.n_numeric, categories)
    concepts = (first_concept, first_concept.drifted(world, categories))

    offset_ms = _arrival_offsets_ms(spec, draws)
    users = draws.choice(n_users, n, p=activity / activity.sum())
    values = _to_values(kinds, user_latent_mean[users] + draws.normal(0.0, _NOISE_SD, (n, spec.n_numeric)))
    category = {
        name: np.where(draws.random(n) < _LOYALTY.get(name, _DEFAULT_LOYALTY),
                       user_category[name][users], draws.choice(len(vocab), n, p=p))
        for name, (vocab, p) in categories.items()
    }
    returning = draws.random(n) < returning_chance[users]
    items = np.where(draws.random(n) < _FAVOURITE_SHARE,
                     favourites[users, draws.integers(0, _FAVOURITES, n)], draws.integers(0, spec.n_items, n))
    no_item = draws.random(n) < _NO_ITEM_SHARE
    labeled = draws.random(n) < spec.labeled_fraction
    iso = draws.random(n) < spec.iso_time_fraction
    delay_ms = spec.max_out_of_order_ms * draws.random(n) ** 3     # mostly on time, a few late

    user_mean, user_sd = _user_moments(kinds, user_latent_mean)
    model = _HiddenModel(values, user_mean[users], user_sd[users], category, returning, propensity[users],
                         spec.signal, spec.base_rate, concepts)
    for shift in spec.covariate_shifts:
        j = num_names.index(shift.feature)
        after = offset_ms >= shift.at_s * 1000.0
        values[after, j] = kinds[j].domain(values[after, j] + shift.delta_std * model.sd[j])
    drift_ms = math.inf if spec.concept_drift_at_s is None else spec.concept_drift_at_s * 1000.0
    labels = coins.random(n) < model.probability(values, offset_ms >= drift_ms)

    # Emission order: by time + a delay of at most max_out_of_order_ms, so an event can only be
    # overtaken by events at most that much newer than itself.
    order = np.argsort(offset_ms + delay_ms, kind="stable")
    times = spec.start_ms + offset_ms[order]
    event_times: list[int | str] = times.tolist()
    iso_at = np.flatnonzero(iso[order])
    for k, text in zip(iso_at.tolist(), np.datetime_as_string(times[iso_at].astype("datetime64[ms]"), unit="ms")):
        event_times[k] = f"{text}Z"
    columns = {name: values[order, j].tolist() for j, name in enumerate(num_names)}
    columns |= {name: np.asarray(vocab)[category[name][order]].tolist() for name, (vocab, _) in categories.items()}
    columns["is_returning"] = returning[order].tolist()
    names = list(columns)
    rows = zip(order.tolist(), users[order].tolist(), items[order].tolist(), no_item[order].tolist(),
               event_times, labels[order].tolist(), labeled[order].tolist(), *columns.values())
    for index, user, item, itemless, event_time, label, has_label, *features in rows:
        yield {
            "event_id": f"e{spec.seed}-{index:09d}",
            "user_id": f"u{user:06d}",
            "item_id": None if itemless else f"i{item:05d}",
            "event_time": event_time,
            "features": dict(zip(names, features)),
            "label": int(label) if has_label else None,
        }


def _to_values(kinds: list[_NumericKind], latent: np.ndarray) -> np.ndarray:
    """Realistic feature values (one column per kind) from standard latents."""
    values = np.empty_like(latent)
    for j, kind in enumerate(kinds):
        values[:, j] = kind.domain(kind.value(latent[:, j]))
    return values


def _categories(name: str, world: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Values and popularity of a categorical feature; unnamed ones get 8-20 Zipf-like values."""
    if name in _NAMED_CATEGORICAL:
        values, p = _NAMED_CATEGORICAL[name]
        return values, np.asarray(p) / sum(p)
    size = int(world.integers(8, 21))
    popularity = 1.0 / np.arange(1, size + 1) ** 0.9
    return [f"{name}_v{k}" for k in range(size)], popularity / popularity.sum()


def _arrival_offsets_ms(spec: StreamSpec, draws: np.random.Generator) -> np.ndarray:
    """Sorted arrival times (ms after start) of a Poisson process with a gentle daily cycle.

    Sorted uniforms pushed through the inverse of the cumulative rate: n Poisson arrivals
    conditioned on their count.
    """
    grid_s = np.linspace(0.0, spec.duration_s, 1025)
    start_s = (spec.start_ms / 1000.0) % _DAY_S
    rate = 1.0 + 0.25 * np.sin(2 * np.pi * (start_s + grid_s) / _DAY_S - np.pi / 2)   # lowest at midnight UTC
    cumulative = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * np.diff(grid_s))])
    arrivals_s = np.interp(np.sort(draws.random(spec.n_events)) * cumulative[-1], cumulative, grid_s)
    return np.floor(arrivals_s * 1000.0).astype(np.int64)


@dataclass(frozen=True)
class _Concept:
    """One hidden label model: weights on standardized values, on per-user deviations, on categories."""

    numeric: np.ndarray
    deviation: np.ndarray
    category: dict[str, np.ndarray]
    returning: float

    @staticmethod
    def draw(world: np.random.Generator, n_numeric: int,
             categories: dict[str, tuple[list[str], np.ndarray]]) -> _Concept:
        """Weights normalised to fixed norms, so every seed gets an equally strong signal."""
        return _Concept(_scaled(world.normal(size=n_numeric), _NUMERIC_EFFECT),
                        _scaled(world.normal(size=n_numeric), _DEVIATION_EFFECT),
                        _category_effects(world, categories), _RETURNING_EFFECT)

    def drifted(self, world: np.random.Generator, categories: dict[str, tuple[list[str], np.ndarray]]) -> _Concept:
        """A substantially different model: numeric effects reversed, category effects re-drawn.

        Users keep their propensity: people do not change, what predicts the label does.
        """
        return _Concept(-self.numeric, -self.deviation, _category_effects(world, categories), -self.returning)


def _scaled(w: np.ndarray, norm: float) -> np.ndarray:
    return w * (norm / np.linalg.norm(w)) if w.size else w


def _category_effects(world: np.random.Generator,
                      categories: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, np.ndarray]:
    """Per value effects, centred and scaled under the values' popularity (same strength every seed)."""
    effects = {}
    for name, (_, popularity) in categories.items():
        e = world.normal(size=len(popularity))
        e -= popularity @ e
        effects[name] = e * (_CATEGORY_EFFECT / math.sqrt(popularity @ e**2))
    return effects


class _HiddenModel:
    """The label probability as a function of the emitted feature values (shifted or not).

    Numeric values enter as clipped z-scores, both against the whole stream and against the
    event's own user (how unusual is this amount *for this user*). The global constants come
    from the unshifted stream, so a covariate shift feeds the same function different inputs;
    each concept's intercept puts its positive rate on the unshifted stream at ``base_rate``.
    """

    def __init__(self, values: np.ndarray, user_mean: np.ndarray, user_sd: np.ndarray,
                 category: dict[str, np.ndarray], returning: np.ndarray, propensity: np.ndarray,
                 signal: float, base_rate: float, concepts: tuple[_Concept, _Concept]) -> None:
        """Per event: ``user_mean``/``user_sd`` of its user's values, ``propensity`` of its user."""
        self.user_mean, self.user_sd = user_mean, user_sd
        self.category, self.returning, self.propensity = category, returning, propensity
        self.signal, self.concepts = signal, concepts
        self.mean, self.sd = values.mean(axis=0), values.std(axis=0) + 1e-12
        self.intercepts = [_intercept(self._raw_logit(values, c), base_rate) for c in concepts]

    def probability(self, values: np.ndarray, drifted: np.ndarray) -> np.ndarray:
        """Per event: the first concept's probability, or the drifted one's where ``drifted``."""
        before, after = (_sigmoid(self._raw_logit(values, c) + b) for c, b in zip(self.concepts, self.intercepts))
        return np.where(drifted, after, before)

    def _raw_logit(self, values: np.ndarray, concept: _Concept) -> np.ndarray:
        score = np.clip((values - self.mean) / self.sd, -_Z_CLIP, _Z_CLIP) @ concept.numeric
        score += np.clip((values - self.user_mean) / self.user_sd, -_Z_CLIP, _Z_CLIP) @ concept.deviation
        for name, index in self.category.items():
            score += concept.category[name][index]
        score += concept.returning * self.returning
        return self.signal * (score + self.propensity)


def _user_moments(kinds: list[_NumericKind], user_latent_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and std of each user's feature values (Gauss-Hermite quadrature over the noise)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    samples = np.stack([_to_values(kinds, user_latent_mean + _NOISE_SD * node) for node in nodes])
    mean = np.tensordot(weights, samples, axes=1)
    sd = np.sqrt(np.tensordot(weights, (samples - mean) ** 2, axes=1))
    return mean, np.maximum(sd, 1e-3 * sd.mean(axis=0) + 1e-12)   # some users always view 1 page


def _intercept(raw_logit: np.ndarray, base_rate: float) -> float:
    """The intercept whose mean probability is ``base_rate`` (bisection: the mean is monotone in it)."""
    low, high = -30.0, 30.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _sigmoid(raw_logit + mid).mean() < base_rate else (low, mid)
    return (low + high) / 2


def write_jsonl(events: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write one JSON object per line (creating parent folders); returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
            count += 1
    return count
