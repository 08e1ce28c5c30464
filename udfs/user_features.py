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
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from udfs.events import Event

if TYPE_CHECKING:
    from conf.settings import Settings


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
    moments: list[list[float]] = field(default_factory=list)  # per numeric feature: [n, mean, m2]
    labeled: int = 0
    positives: int = 0
    items: dict[str, int] = field(default_factory=dict)
    recent_ids: dict[str, int] = field(default_factory=dict)  # event id -> event time, see udfs.dedup

    @classmethod
    def new(cls, n_numeric: int) -> UserState:
        return cls(moments=[[0.0, 0.0, 0.0] for _ in range(n_numeric)])


def stable_bucket(name: str, value: str, buckets: int) -> int:
    """Same bucket in every process (Python's ``hash`` is salted per interpreter)."""
    return zlib.crc32(f"{name}={value}".encode()) % buckets


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
    ) -> None:
        self.numeric = numeric
        self.categorical = categorical
        self.hash_buckets = hash_buckets
        self.decay_per_ms = math.log(2) / (velocity_half_life_s * 1000.0)
        self.prior = positive_rate_prior
        self.prior_strength = positive_rate_prior_strength
        self.zscore_clip = zscore_clip
        self.max_items = max_items_per_user
        self.dense_names: list[str] = (
            list(numeric)
            + ["user_event_count_log", "user_seconds_since_prev_log", "user_is_first_event",
               "user_velocity_log", "user_positive_rate", "user_item_affinity"]
            + [f"{name}_user_z" for name in numeric]
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> UserFeatureExtractor:
        f = settings.features
        return cls(numeric=f.numeric, categorical=f.categorical, hash_buckets=f.hash_buckets,
                   velocity_half_life_s=f.velocity_half_life_s, positive_rate_prior=f.positive_rate_prior,
                   positive_rate_prior_strength=f.positive_rate_prior_strength, zscore_clip=f.zscore_clip,
                   max_items_per_user=f.max_items_per_user)

    def featurize(self, state: UserState, event: Event) -> FeatureRow:
        """Features of ``event`` from ``state``, then ``state`` absorbs the event (mutated in place)."""
        dense = [event.numeric.get(name, math.nan) for name in self.numeric]
        dense += self._history(state, event)
        dense += [self._zscore(state.moments[i], event.numeric.get(name)) for i, name in enumerate(self.numeric)]
        buckets = tuple(
            stable_bucket(name, event.categorical[name], self.hash_buckets)
            for name in self.categorical if name in event.categorical
        )
        self._absorb(state, event)
        return FeatureRow(event.event_id, event.user_id, event.event_time, event.label, tuple(dense), buckets)

    def _history(self, state: UserState, event: Event) -> list[float]:
        first = state.last_time is None
        gap_ms = 0 if first else max(event.event_time - state.last_time, 0)
        velocity = state.velocity * math.exp(-self.decay_per_ms * gap_ms)
        rate = (state.positives + self.prior * self.prior_strength) / (state.labeled + self.prior_strength)
        affinity = state.items.get(event.item_id, 0) / state.count if event.item_id and state.count else 0.0
        return [math.log1p(state.count), math.log1p(gap_ms / 1000.0), float(first),
                math.log1p(velocity), rate, affinity]

    def _zscore(self, moment: list[float], value: float | None) -> float:
        n, mean, m2 = moment
        if value is None or n < 2:
            return 0.0
        std = math.sqrt(m2 / (n - 1))
        if std <= 1e-12:
            return 0.0
        return max(-self.zscore_clip, min(self.zscore_clip, (value - mean) / std))

    def _absorb(self, state: UserState, event: Event) -> None:
        if state.last_time is None:
            state.velocity = 1.0
        else:
            gap_ms = max(event.event_time - state.last_time, 0)
            state.velocity = state.velocity * math.exp(-self.decay_per_ms * gap_ms) + 1.0
        state.last_time = event.event_time if state.last_time is None else max(state.last_time, event.event_time)
        state.count += 1
        for moment, name in zip(state.moments, self.numeric):
            value = event.numeric.get(name)
            if value is not None:  # Welford's update: stable for long-lived users
                moment[0] += 1
                delta = value - moment[1]
                moment[1] += delta / moment[0]
                moment[2] += delta * (value - moment[1])
        if event.label is not None:
            state.labeled += 1
            state.positives += event.label
        if event.item_id is not None:
            state.items[event.item_id] = state.items.get(event.item_id, 0) + 1
            if len(state.items) > self.max_items:
                del state.items[min(state.items, key=state.items.__getitem__)]
