"""Per-user features from the user's own history, computed before the event updates it.

The order matters: features describe what was known *before* the event, so the event's own
label never leaks into its features (the smoothed positive rate uses earlier labels only).

>>> fx = UserFeatureExtractor(numeric=("amount",), categorical=("device",), hash_buckets=8)
>>> state = UserState.new(1)
>>> e1 = Event("e1", "u", "i1", 0, {"amount": 10.0}, {"device": "ios"}, 1)
>>> row = fx.featurize(state, e1)
>>> dict(zip(fx.dense_names, row.dense))["user_event_count_log"]
0.0
>>> row = fx.featurize(state, e1._replace(event_id="e2", event_time=60_000))
>>> round(dict(zip(fx.dense_names, row.dense))["user_positive_rate"], 3)
0.417
"""

from __future__ import annotations

import math
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from udfs.features.events import Event

if TYPE_CHECKING:
    from conf.settings import Settings


HISTORY_FEATURES = ("user_event_count_log", "user_seconds_since_prev_log", "user_is_first_event",
                    "user_velocity_log", "user_positive_rate", "user_item_affinity")


MAX_MEMOISED_BUCKETS = 100_000


class FeatureRow(NamedTuple):
    """What the trainer and the predictor need of one event; ``dense`` may hold NaN (missing)."""

    event_id: str
    user_id: str
    event_time: int
    label: int | None
    dense: tuple[float, ...]
    buckets: tuple[int, ...]


@dataclass
class UserState:
    """Everything remembered about one user; pickled into one Flink ValueState."""

    count: int = 0
    last_time: int | None = None
    velocity: float = 0.0
    moments: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # per numeric feature: n, mean, m2
    labeled: int = 0
    positives: int = 0
    items: dict[str, int] = field(default_factory=dict)
    recent_ids: dict[str, int] = field(default_factory=dict)  # event id -> event time, see udfs.features.dedup

    @classmethod
    def new(cls, n_numeric: int) -> UserState:
        return cls(moments=np.zeros((n_numeric, 3)))

    def __reduce__(self) -> tuple:
        """Pickled as plain values, the moments as raw float64 bytes: the job pickles a user's state
        once per batch the user is in, and unpickles it once. The dataclass's own pickling (its
        ``__dict__``, an ndarray) took 27 µs a round trip for a state of the bench's stream, this 11 µs.
        States pickled the old way (savepoints before 0.3.5) still load.

        >>> state = UserState.new(2); state.count = 3; state.items["i1"] = 1
        >>> back = pickle.loads(pickle.dumps(state))
        >>> back.count, back.items, back.moments.shape
        (3, {'i1': 1}, (2, 3))
        """
        return _restore_user_state, (self.count, self.last_time, self.velocity, self.moments.tobytes(),
                                     self.labeled, self.positives, self.items, self.recent_ids)


def _restore_user_state(count: int, last_time: int | None, velocity: float, moments: bytes, labeled: int,
                        positives: int, items: dict[str, int], recent_ids: dict[str, int]) -> UserState:
    return UserState(count, last_time, velocity, np.frombuffer(moments).reshape(-1, 3).copy(), labeled, positives,
                     items, recent_ids)


@dataclass(frozen=True)
class UserStateFile:
    """Every user's state at the end of a history (scripts/train_batch.py), with the feature columns it
    was built on: the job's users start from it (``features.initial_user_state``) instead of from nothing."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    users: dict[str, UserState]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(self))

    @classmethod
    def load(cls, path: str | Path, numeric: tuple[str, ...], categorical: tuple[str, ...]) -> UserStateFile:
        """The file at ``path``, checked against the run's feature columns (a ValueError says what differs)."""
        try:
            loaded = pickle.loads(Path(path).read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            raise ValueError(f"features.initial_user_state={path}: not a user state file of scripts/train_batch.py "
                             f"({exc})") from None
        # Numeric order is the order of the moments; categorical values are hashed by name, in any order.
        if tuple(loaded.numeric) != tuple(numeric) or set(loaded.categorical) != set(categorical):
            raise ValueError(f"features.initial_user_state={path}: built on numeric {list(loaded.numeric)}, "
                             f"categorical {list(loaded.categorical)}; this run has {list(numeric)}, {list(categorical)}")
        return loaded


def stable_bucket(name: str, value: str, buckets: int) -> int:
    """Same bucket in every process (Python's ``hash`` is salted per interpreter)."""
    return zlib.crc32(f"{name}={value}".encode()) % buckets


def id_bucket_columns(user_ids: Sequence[str | None], item_ids: Sequence[str | None], hash_buckets: int,
                      id_buckets: int) -> np.ndarray:
    """The user and item bucket of each row (-1 = no id), in the ranges after the ``hash_buckets``
    categorical ones: users ``[h, h + id_buckets)``, items the next ``id_buckets``. An id never seen
    in training falls into its bucket like any other (udfs/learning/scaler.py builds the one-hots).

    >>> id_bucket_columns(["u1", "u2"], ["i1", None], hash_buckets=4, id_buckets=10).tolist()
    [[13, 22], [9, -1]]
    """
    def bucket(name: str, value: str | None, offset: int) -> int:
        return -1 if value is None else offset + stable_bucket(name, str(value), id_buckets)

    return np.array([[bucket("user_id", u, hash_buckets), bucket("item_id", i, hash_buckets + id_buckets)]
                     for u, i in zip(user_ids, item_ids)], dtype=np.int64).reshape(len(user_ids), 2)


class UserFeatureExtractor:
    """Computes the dense vector and categorical buckets of an event, then updates the state."""

    def __init__(
        self,
        numeric: tuple[str, ...],
        categorical: tuple[str, ...],
        hash_buckets: int = 64,
        velocity_half_life_s: float = 3600.0,
        positive_rate_prior: float = 0.3,
        positive_rate_prior_strength: float = 5.0,
        zscore_clip: float = 5.0,
        max_items_per_user: int = 50,
        id_buckets: int = 0,
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.hash_buckets = hash_buckets
        self.id_buckets = id_buckets  # > 0: user and item bucket columns follow the categorical ones
        self.decay_per_ms = math.log(2) / (velocity_half_life_s * 1000.0)
        self.prior = positive_rate_prior
        self.prior_strength = positive_rate_prior_strength
        self.zscore_clip = zscore_clip
        self.max_items = max_items_per_user
        self._buckets: dict[tuple[str, str], int] = {}
        self.dense_names: list[str] = list(numeric) + list(HISTORY_FEATURES) + [f"{name}_user_z" for name in numeric]

    @classmethod
    def from_settings(cls, settings: Settings) -> UserFeatureExtractor:
        f = settings.features
        numeric, categorical = f.names()
        return cls(numeric=numeric, categorical=categorical, hash_buckets=f.hash_buckets,
                   velocity_half_life_s=f.velocity_half_life_s, positive_rate_prior=f.positive_rate_prior,
                   positive_rate_prior_strength=f.positive_rate_prior_strength, zscore_clip=f.zscore_clip,
                   max_items_per_user=f.max_items_per_user, id_buckets=settings.model.id_buckets)

    def featurize(self, state: UserState, event: Event) -> FeatureRow:
        """Features of one event from ``state``, which then absorbs the event (mutated in place)."""
        dense, buckets = self.featurize_batch([event], {event.user_id: state})
        return FeatureRow(event.event_id, event.user_id, event.event_time, event.label,
                          tuple(dense[0].tolist()), tuple(int(b) for b in buckets[0] if b >= 0))

    def featurize_batch(self, events: list[Event], states: dict[str, UserState]) -> tuple[np.ndarray, np.ndarray]:
        """Dense rows (NaN = missing) and bucket rows (-1 = none) of ``events``, taken in the given
        order; each user's state absorbs its events (``states`` must hold every user's state).

        History features and the state's counters are a loop over events; the numeric columns
        and their per-user z-scores, which cost the most, are array operations over the batch.
        """
        history, buckets = [], []
        for event in events:
            state = states[event.user_id]
            history.append(self._history(state, event))
            buckets.append([self._bucket(name, event.categorical.get(name)) for name in self.categorical])
            self._absorb(state, event)
        values = np.array([[e.numeric.get(name, math.nan) for name in self.numeric] for e in events],
                          dtype=float).reshape(len(events), len(self.numeric))
        zscores = self._zscores_and_moments(values, [e.user_id for e in events], states)
        history_array = np.array(history, dtype=float).reshape(len(events), len(HISTORY_FEATURES))
        bucket_array = np.array(buckets, dtype=np.int64).reshape(len(events), len(self.categorical))
        if self.id_buckets:
            ids = id_bucket_columns([e.user_id for e in events], [e.item_id for e in events], self.hash_buckets,
                                    self.id_buckets)
            bucket_array = np.hstack([bucket_array, ids])
        return np.hstack([values, history_array, zscores]), bucket_array

    def _bucket(self, name: str, value: str | None) -> int:
        """The hash bucket of a categorical value (-1 when absent), memoised: values repeat."""
        if value is None:
            return -1
        bucket = self._buckets.get((name, value))
        if bucket is None:
            if len(self._buckets) >= MAX_MEMOISED_BUCKETS:  # a high-cardinality field: stay bounded
                self._buckets.clear()
            bucket = self._buckets[(name, value)] = stable_bucket(name, value, self.hash_buckets)
        return bucket

    def _history(self, state: UserState, event: Event) -> list[float]:
        first = state.last_time is None
        gap_ms = 0 if first else max(event.event_time - state.last_time, 0)
        velocity = state.velocity * math.exp(-self.decay_per_ms * gap_ms)
        rate = (state.positives + self.prior * self.prior_strength) / (state.labeled + self.prior_strength)
        affinity = state.items.get(event.item_id, 0) / state.count if event.item_id and state.count else 0.0
        return [math.log1p(state.count), math.log1p(gap_ms / 1000.0), float(first),
                math.log1p(velocity), rate, affinity]

    def _zscores_and_moments(self, values: np.ndarray, users: list[str], states: dict[str, UserState]) -> np.ndarray:
        """Each value's z-score against its user's earlier values, and the users' moments updated.

        Per user and feature, the moments before each event merge the state's (n, mean, m2) with
        the batch's earlier values (Chan et al.'s pairwise update), from prefix sums of the
        values minus a reference (the state's mean, or the user's first value in the batch):
        the sums stay well conditioned, and a user whose values never changed has a spread of
        exactly zero.
        """
        if not len(users) or not self.numeric:
            return np.zeros((len(users), len(self.numeric)))
        names, inverse = np.unique(np.array(users, dtype=object), return_inverse=True)
        order = np.argsort(inverse, kind="stable")  # grouped by user, each group in the given order
        group = inverse[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        prior = np.stack([states[name].moments for name in names])  # (users, features, 3)
        x = values[order]
        present = ~np.isnan(x)
        rows = np.arange(len(x))[:, None]
        first = np.minimum.reduceat(np.where(present, rows, len(x) - 1), starts, axis=0)
        first_value = np.nan_to_num(np.take_along_axis(x, first, axis=0))
        shift = np.where(prior[..., 0] > 0, prior[..., 1], first_value)[group]
        y = np.where(present, x - shift, 0.0)
        c, s, q, totals = _prefix_sums(present.astype(float), y, group, starts)
        n, mean, m2 = _merge(prior[group], shift, c, s, q)
        std = np.sqrt(np.divide(m2, n - 1, out=np.zeros_like(m2), where=n >= 2))
        z = np.divide(x - mean, std, out=np.zeros_like(x), where=present & (n >= 2) & (std > 1e-12))
        z = np.clip(z, -self.zscore_clip, self.zscore_clip)
        final = np.stack(_merge(prior, shift[starts], *totals), axis=-1)
        for name, moments in zip(names, final):
            states[name].moments = moments.copy()  # not a view that would keep the batch's array alive
        out = np.empty_like(z)
        out[order] = z
        return out

    def _absorb(self, state: UserState, event: Event) -> None:
        """Counters, recency, labels and items; the numeric moments are updated per batch."""
        if state.last_time is None:
            state.velocity = 1.0
        else:
            gap_ms = max(event.event_time - state.last_time, 0)
            state.velocity = state.velocity * math.exp(-self.decay_per_ms * gap_ms) + 1.0
        state.last_time = event.event_time if state.last_time is None else max(state.last_time, event.event_time)
        state.count += 1
        if event.label is not None:
            state.labeled += 1
            state.positives += event.label
        if event.item_id is not None:
            state.items[event.item_id] = state.items.get(event.item_id, 0) + 1
            if len(state.items) > self.max_items:
                del state.items[min(state.items, key=state.items.__getitem__)]


def _prefix_sums(count: np.ndarray, y: np.ndarray, group: np.ndarray, starts: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per row, the count, sum and sum of squares of the earlier rows of its group (rows sorted
    by group); and each group's totals.

    Summed one position at a time across all groups (a group's k-th rows together), so each
    user's sums add exactly its own values in order: no batch-wide running total whose
    rounding would give a user with constant values a tiny non-zero spread.
    """
    position = np.arange(len(group)) - starts[group]
    c, s, q = (np.zeros((len(starts),) + y.shape[1:]) for _ in range(3))
    before = [np.empty_like(y) for _ in range(3)]
    for k in range(int(position.max()) + 1):
        rows = np.flatnonzero(position == k)
        at = group[rows]
        for acc, out in zip((c, s, q), before):
            out[rows] = acc[at]
        c[at] += count[rows]
        s[at] += y[rows]
        q[at] += y[rows] * y[rows]
    return before[0], before[1], before[2], (c, s, q)


def _merge(prior: np.ndarray, shift: np.ndarray, c: np.ndarray, s: np.ndarray,
           q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean, m2) of ``prior`` ([..., (n, mean, m2)]) merged with ``c`` values whose sum and sum
    of squares, after subtracting ``shift``, are ``s`` and ``q``."""
    n0, mean0, m2_0 = prior[..., 0], prior[..., 1], prior[..., 2]
    has = c > 0
    safe_c = np.where(has, c, 1.0)
    mean_b = shift + s / safe_c
    m2_b = np.maximum(q - s * s / safe_c, 0.0)
    n = n0 + c
    safe_n = np.where(n > 0, n, 1.0)
    mean = np.where(has, (n0 * mean0 + c * mean_b) / safe_n, mean0)
    delta = mean_b - mean0
    m2 = np.where(has, m2_0 + m2_b + delta * delta * n0 * c / safe_n, m2_0)
    return n, mean, m2
