"""Reference drifting streams with known drift points, from their published definitions.

Each stream emits the job's event schema (``event_id``, ``user_id``, ``event_time``,
``features``, ``label``) over ``duration_s`` of event time, and says where its drifts are, so
that evaluation can measure detection delay and recovery. Definitions:

- ``sea``: SEA concepts (Street & Kim, KDD 2001). ``x0, x1, x2 ~ U[0, 10]``, label
  ``x0 + x1 <= theta`` (``x2`` is irrelevant), thresholds 8, 9, 7, 9.5 in four equal blocks,
  10% label noise. Abrupt concept drift; the feature distributions never change.
- ``sine1``: SINE1 (Gama, Medas, Castillo & Rodrigues, SBIA 2004). ``x0, x1 ~ U[0, 1]``, label
  ``x1 <= sin(x0)`` before the change and reversed after it; here reversed at each third of the
  stream. The strongest abrupt concept drift; feature distributions never change.
- ``hyperplane``: rotating hyperplane (Hulten, Spencer & Domingos, KDD 2001). ``d = 10`` features
  ``~ U[0, 1]``, label ``sum(w_i x_i) >= w_0 = sum(w_i) / 2``; after each example the first
  ``k = 5`` weights move by ``t = 0.002`` each, the direction of each flipping with probability
  10% (as in MOA's HyperplaneGenerator); 5% label noise. Gradual drift everywhere; the first quarter is stationary.
- ``sine_shift``: covariate shift through a fixed non-linear concept, after the SINE problem
  (Gama et al., SBIA 2004): label ``x1 <= sin(x0)``, 10% label noise. ``x0`` is drawn from
  ``U[0, 1.5]`` before the shift and from ``U[3, 4.5]`` after it (``x1 ~ U[-1, 1]`` throughout):
  the concept holds, but a linear model of the old region has the wrong slope in the new one.
- ``stagger``: STAGGER concepts (Schlimmer & Granger, Machine Learning 1986), recurring.
  ``size`` in small/medium/large, ``color`` in red/green/blue, ``shape`` in
  square/circular/triangular; concepts A ``size = small and color = red``, B ``color = green or
  shape = circular``, C ``size = medium or large``, in the order A, B, C, A, B, C; plus a
  numeric ``x0 ~ U[0, 1]`` that carries no signal.
- ``rbf``: random RBF (Bifet, Holmes, Pfahringer, Kirkby & Gavalda, KDD 2009, as MOA's
  RandomRBFGenerator): 50 centroids with centres ``~ U[0, 1]^d``, a class each ``~ U{0, 1}``,
  a standard deviation ``~ U[0, 1)`` and a weight ``~ U[0, 1)``. An example picks a centroid with
  probability proportional to its weight and lies in a uniformly random direction from its centre
  at a distance ``~ N(0, 1) x`` its standard deviation; its label is the centroid's class. Here
  ``d = 10``, as MOA's default. Stationary and not linear: no line separates the classes.
- ``sparse_linear``: a stationary logistic model of ``d = 50`` features ``~ N(0, 1)`` of which
  only the first 10 carry weight (``|w_i| ~ U[0.5, 1.5]``, random signs), label
  ``~ Bernoulli(sigmoid(w . x))``: 40 noise columns for an L1 learner to drop.
- ``latent_clicks``: clicks from hidden user and item factors, the generating model of logistic
  matrix factorisation (Johnson, "Logistic Matrix Factorization for Implicit Feedback Data",
  2014) with side features as in factorization machines (Rendle, ICDM 2010): 100 users and 50
  items drawn uniformly per event, factors ``p_u, q_i ~ N(0, I_4)``, biases
  ``b_u, b_i ~ N(0, 0.5^2)``, three dense features ``x ~ N(0, 1)``, and
  ``P(click) = sigmoid(-0.5 + b_u + b_i + p_u . q_i + 0.8 x0 - 0.5 x1 + 0.3 x2)``. Stationary;
  most of the signal is in the user-item interaction (standard deviation 2), which no per-event
  feature carries. Few enough ids that 30,000 events (4 hours) show each user 300 times: with
  500 users no learner of hashed ids had seen enough of each by window 10 to beat logistic
  regression's per-user positive rate by much.

Abrupt flips, ``<generator>_flips`` (fast: the new concept takes over within 40 s) and
``<generator>_flips_slow`` (within 4 minutes): two published concepts of a generator alternate,
A to B and back, six times, the transition a sigmoid of width 40 s or 240 s as in MOA's
ConceptDriftStream (the chance that an example follows the new concept is
``1 / (1 + exp(-4 (t - t0) / width))``, ``t0`` the middle of the transition). The transitions start
10 s, 150 s or 270 s into a 5-minute window (start, middle and end of a window, each once in both
directions), 35 minutes apart, the first in window 7. The concept pairs:

- ``sea``: SEA concepts 3 and 4 (thresholds 7 and 9.5), 10% label noise;
- ``sine``: SINE1 and reversed SINE1;
- ``stagger``: STAGGER concepts A and B;
- ``agrawal``: Agrawal et al. (IEEE TKDE 1993) classification functions 7 and 8, as in MOA's
  AgrawalGenerator: label 0 (group A) if ``2/3 (salary + commission) - loan / 5 - 20000 > 0``,
  resp. ``2/3 (salary + commission) - 5000 elevel - 20000 > 0``. ``salary ~ U[20k, 150k]``,
  ``commission`` 0 from a salary of 75k on, else ``~ U[10k, 75k]``, ``age ~ U{20..80}``,
  ``elevel ~ U{0..4}``, ``car ~ U{1..20}``, ``zipcode ~ U{0..8}``, ``hvalue ~ (9 - zipcode)
  100000 U[0.5, 1.5]``, ``hyears ~ U{1..30}``, ``loan ~ U[0, 500k]``; ``car`` and ``zipcode`` are
  categorical;
- ``hyperplane``: two hyperplanes as in the rotating hyperplane's definition (weights
  ``~ U[0, 1]``, ``d = 10``, ``w_0 = sum(w_i) / 2``), 5% label noise.

>>> spec = REFERENCE_STREAMS["sea"]
>>> events = list(generate(spec, n_events=2000, seed=1))
>>> len(events), sorted(events[0]["features"])
(2000, ['x0', 'x1', 'x2'])
>>> [round(t / 3600_000, 2) for t in drift_times_ms(spec, start_ms=0)]
[1.0, 2.0, 3.0]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from udfs.sim.stream_generator import StreamSpec

START_MS = StreamSpec.start_ms


@dataclass(frozen=True)
class ReferenceStream:
    name: str
    kind: str  # abrupt | gradual | covariate | recurring | stationary
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    drift_fractions: tuple[float, ...]  # where the drifts start, as fractions of the stream
    labels: Callable[[np.random.Generator, int], tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]
    duration_s: float = 4 * 3600.0
    drifts_throughout: bool = False  # gradual: no stationary windows after the first drift


def drift_times_ms(stream: ReferenceStream, start_ms: int = START_MS) -> list[int]:
    return [start_ms + int(f * stream.duration_s * 1000) for f in stream.drift_fractions]


def _flip(rng: np.random.Generator, y: np.ndarray, noise: float) -> np.ndarray:
    return np.where(rng.random(len(y)) < noise, 1 - y, y)


def _sea(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    x = rng.uniform(0, 10, size=(n, 3))
    theta = np.array([8.0, 9.0, 7.0, 9.5])[np.minimum(np.arange(n) * 4 // n, 3)]
    return x, {}, _flip(rng, (x[:, 0] + x[:, 1] <= theta).astype(int), 0.10)


def _sine1(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    x = rng.uniform(0, 1, size=(n, 2))
    below = (x[:, 1] <= np.sin(x[:, 0])).astype(int)
    reversed_ = (np.arange(n) * 3 // n) % 2 == 1
    return x, {}, np.where(reversed_, 1 - below, below)


def _hyperplane(rng: np.random.Generator, n: int, d: int = 10, k: int = 5, t: float = 0.002,
                flip: float = 0.10) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    x = rng.uniform(0, 1, size=(n, d))
    w = rng.uniform(0, 1, size=d)
    direction = np.ones(k)
    y = np.empty(n, dtype=int)
    stationary = n // 4
    for i in range(n):
        y[i] = int(x[i] @ w >= w.sum() / 2)
        if i >= stationary:
            w[:k] += direction * t
            direction = np.where(rng.random(k) < flip, -direction, direction)
    return x, {}, _flip(rng, y, 0.05)


def _sine_shift(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    shifted = np.arange(n) >= n // 2
    x0 = np.where(shifted, rng.uniform(3.0, 4.5, n), rng.uniform(0.0, 1.5, n))
    x1 = rng.uniform(-1, 1, n)
    return np.column_stack([x0, x1]), {}, _flip(rng, (x1 <= np.sin(x0)).astype(int), 0.10)


def _stagger(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    size = rng.choice(["small", "medium", "large"], n)
    color = rng.choice(["red", "green", "blue"], n)
    shape = rng.choice(["square", "circular", "triangular"], n)
    concepts = [(size == "small") & (color == "red"), (color == "green") | (shape == "circular"),
                (size == "medium") | (size == "large")]
    block = np.minimum(np.arange(n) * 6 // n, 5) % 3
    y = np.choose(block, concepts).astype(int)
    return rng.uniform(0, 1, size=(n, 1)), {"size": size, "color": color, "shape": shape}, y


def _random_rbf(rng: np.random.Generator, n: int, d: int = 10, centroids: int = 50
                ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    centres, classes = rng.uniform(0, 1, size=(centroids, d)), rng.integers(0, 2, centroids)
    std, weight = rng.uniform(0, 1, centroids), rng.uniform(0, 1, centroids)
    pick = rng.choice(centroids, size=n, p=weight / weight.sum())
    direction = rng.uniform(-1, 1, size=(n, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    x = centres[pick] + direction * (rng.normal(size=n) * std[pick])[:, None]
    return x, {}, classes[pick]


def _sparse_linear(rng: np.random.Generator, n: int, d: int = 50, informative: int = 10
                   ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    w = np.zeros(d)
    w[:informative] = rng.uniform(0.5, 1.5, informative) * rng.choice([-1.0, 1.0], informative)
    x = rng.normal(size=(n, d))
    return x, {}, (rng.random(n) < 1 / (1 + np.exp(-x @ w))).astype(int)


def _latent_clicks(rng: np.random.Generator, n: int, users: int = 100, items: int = 50, k: int = 4
                   ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    p, q = rng.normal(0, 1.0, size=(users, k)), rng.normal(0, 1.0, size=(items, k))
    b_user, b_item = rng.normal(0, 0.5, users), rng.normal(0, 0.5, items)
    user, item = rng.integers(0, users, n), rng.integers(0, items, n)
    x = rng.normal(size=(n, 3))
    logit = -0.5 + b_user[user] + b_item[item] + np.einsum("ij,ij->i", p[user], q[item]) + x @ [0.8, -0.5, 0.3]
    ids = {"user_id": np.char.add("u", user.astype(str)), "item_id": np.char.add("i", item.astype(str))}
    return x, ids, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


Pair = tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]  # features, and labels under concepts A and B

FLIP_OFFSETS_S = (270.0, 10.0, 150.0)  # into a 5-minute window: end, start, middle; six flips cycle through them
FLIP_EVERY_S, FIRST_FLIP_S, FLIPS = 2100.0, 1800.0, 6


def _sea_pair(rng: np.random.Generator, n: int) -> Pair:
    x = rng.uniform(0, 10, size=(n, 3))
    total = x[:, 0] + x[:, 1]
    return x, {}, _flip(rng, (total <= 7.0).astype(int), 0.10), _flip(rng, (total <= 9.5).astype(int), 0.10)


def _sine_pair(rng: np.random.Generator, n: int) -> Pair:
    x = rng.uniform(0, 1, size=(n, 2))
    below = (x[:, 1] <= np.sin(x[:, 0])).astype(int)
    return x, {}, below, 1 - below


def _stagger_pair(rng: np.random.Generator, n: int) -> Pair:
    x0, categorical, _ = _stagger(rng, n)
    size, color, shape = categorical["size"], categorical["color"], categorical["shape"]
    a = ((size == "small") & (color == "red")).astype(int)
    return x0, categorical, a, ((color == "green") | (shape == "circular")).astype(int)


def _agrawal_pair(rng: np.random.Generator, n: int) -> Pair:
    salary = rng.uniform(20_000, 150_000, n)
    commission = np.where(salary >= 75_000, 0.0, rng.uniform(10_000, 75_000, n))
    age, elevel = rng.integers(20, 81, n), rng.integers(0, 5, n)
    car, zipcode = rng.integers(1, 21, n), rng.integers(0, 9, n)
    hvalue = (9 - zipcode) * 100_000 * rng.uniform(0.5, 1.5, n)
    hyears, loan = rng.integers(1, 31, n), rng.uniform(0, 500_000, n)
    income = 2 * (salary + commission) / 3
    numeric = np.column_stack([salary, commission, age, elevel, hvalue, hyears, loan]).astype(float)
    return (numeric, {"car": car.astype(str), "zipcode": zipcode.astype(str)},
            (income - loan / 5 - 20_000 <= 0).astype(int), (income - 5_000 * elevel - 20_000 <= 0).astype(int))


def _hyperplane_pair(rng: np.random.Generator, n: int, d: int = 10) -> Pair:
    x = rng.uniform(0, 1, size=(n, d))
    a, b = rng.uniform(0, 1, size=d), rng.uniform(0, 1, size=d)
    return (x, {}, _flip(rng, (x @ a >= a.sum() / 2).astype(int), 0.05),
            _flip(rng, (x @ b >= b.sum() / 2).astype(int), 0.05))


def flip_starts_s() -> tuple[float, ...]:
    """Where the six transitions start, in seconds from the stream's start."""
    return tuple(FIRST_FLIP_S + k * FLIP_EVERY_S + FLIP_OFFSETS_S[k % 3] for k in range(FLIPS))


def _flipping(pair: Callable[[np.random.Generator, int], Pair], width_s: float, duration_s: float
              ) -> Callable[[np.random.Generator, int], tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """Labels that alternate between the pair's concepts at :func:`flip_starts_s`, each transition a
    sigmoid of ``width_s`` (MOA's ConceptDriftStream)."""
    def labels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        numeric, categorical, a, b = pair(rng, n)
        t = (np.arange(n) + 0.5) * duration_s / n
        middles = np.array(flip_starts_s()) + width_s / 2
        new = 1 / (1 + np.exp(np.clip(-4 * (t[:, None] - middles) / width_s, -50, 50)))
        flipped = (rng.random((n, len(middles))) < new).sum(axis=1) % 2 == 1
        return numeric, categorical, np.where(flipped, b, a)
    return labels


FLIP_PAIRS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[[np.random.Generator, int], Pair]]] = {
    "sea": (("x0", "x1", "x2"), (), _sea_pair),
    "sine": (("x0", "x1"), (), _sine_pair),
    "stagger": (("x0",), ("size", "color", "shape"), _stagger_pair),
    "agrawal": (("salary", "commission", "age", "elevel", "hvalue", "hyears", "loan"), ("car", "zipcode"),
                _agrawal_pair),
    "hyperplane": (tuple(f"x{i}" for i in range(10)), (), _hyperplane_pair),
}


def _flip_streams(duration_s: float = 4 * 3600.0) -> dict[str, ReferenceStream]:
    return {f"{family}_{suffix}": ReferenceStream(
                f"{family}_{suffix}", "abrupt", numeric, categorical,
                tuple(start / duration_s for start in flip_starts_s()), _flipping(pair, width, duration_s), duration_s)
            for family, (numeric, categorical, pair) in FLIP_PAIRS.items()
            for suffix, width in (("flips", 40.0), ("flips_slow", 240.0))}


REFERENCE_STREAMS: dict[str, ReferenceStream] = {
    "sea": ReferenceStream("sea", "abrupt", ("x0", "x1", "x2"), (), (0.25, 0.5, 0.75), _sea),
    "sine1": ReferenceStream("sine1", "abrupt", ("x0", "x1"), (), (1 / 3, 2 / 3), _sine1),
    "hyperplane": ReferenceStream("hyperplane", "gradual", tuple(f"x{i}" for i in range(10)), (), (0.25,),
                                  _hyperplane, drifts_throughout=True),
    "sine_shift": ReferenceStream("sine_shift", "covariate", ("x0", "x1"), (), (0.5,), _sine_shift),
    "stagger": ReferenceStream("stagger", "recurring", ("x0",), ("size", "color", "shape"),
                               tuple(i / 6 for i in range(1, 6)), _stagger),
    "rbf": ReferenceStream("rbf", "stationary", tuple(f"x{i}" for i in range(10)), (), (), _random_rbf),
    "sparse_linear": ReferenceStream("sparse_linear", "stationary", tuple(f"x{i}" for i in range(50)), (), (),
                                     _sparse_linear),
    "latent_clicks": ReferenceStream("latent_clicks", "stationary", ("x0", "x1", "x2"), (), (), _latent_clicks),
    **_flip_streams(),
}


def generate(stream: ReferenceStream, n_events: int, seed: int, n_users: int = 500,
             start_ms: int = START_MS) -> Iterator[dict[str, Any]]:
    """Events in event-time order, evenly spread over the stream's duration (with jitter). A stream
    whose labels depend on who clicks what returns its ``user_id`` and ``item_id`` per event among
    its categorical columns; they become the events' ids, not features."""
    rng = np.random.default_rng(seed)
    numeric, categorical, labels = stream.labels(rng, n_events)
    ids = {name: categorical.pop(name) for name in ("user_id", "item_id") if name in categorical}
    step_ms = stream.duration_s * 1000 / n_events
    times = start_ms + (np.arange(n_events) * step_ms + rng.uniform(0, step_ms, n_events)).astype(np.int64)
    users = rng.integers(0, n_users, n_events)
    for i in range(n_events):
        features: dict[str, Any] = {name: round(float(numeric[i, j]), 6) for j, name in enumerate(stream.numeric)}
        features.update({name: str(values[i]) for name, values in categorical.items()})
        user_id = str(ids["user_id"][i]) if "user_id" in ids else f"u{users[i]:05d}"
        item_id = str(ids["item_id"][i]) if "item_id" in ids else None
        yield {"event_id": f"{stream.name}-{seed}-{i:07d}", "user_id": user_id, "item_id": item_id,
               "event_time": int(times[i]), "features": features, "label": int(labels[i])}


def job_overrides(stream: ReferenceStream) -> list[str]:
    """Settings that point the job's features at the stream's fields."""
    return [f"features.numeric={json.dumps(list(stream.numeric))}",
            f"features.categorical={json.dumps(list(stream.categorical))}"]
