import math

import pytest

from udfs.events import Event
from udfs.user_features import UserFeatureExtractor, UserState, stable_bucket

FX = UserFeatureExtractor(numeric=("amount",), categorical=("device",), hash_buckets=16,
                          velocity_half_life_s=60, positive_rate_prior=0.5, positive_rate_prior_strength=2)


def feats(row):
    return dict(zip(FX.dense_names, row.dense))


def ev(i, t_s, amount=None, label=None, item="i1"):
    return Event(f"e{i}", "u", item, int(t_s * 1000), {} if amount is None else {"amount": amount},
                 {"device": "ios"}, label)


def test_features_use_history_before_the_event_only():
    state = UserState.new(1)
    first = feats(FX.featurize(state, ev(1, 0, 10.0, label=1)))
    assert first["user_is_first_event"] == 1.0
    assert first["user_positive_rate"] == pytest.approx(0.5)  # own label not used
    second = feats(FX.featurize(state, ev(2, 30, 12.0, label=0)))
    assert second["user_event_count_log"] == pytest.approx(math.log1p(1))
    assert second["user_seconds_since_prev_log"] == pytest.approx(math.log1p(30))
    assert second["user_positive_rate"] == pytest.approx((1 + 1) / (1 + 2))
    assert second["user_item_affinity"] == pytest.approx(1.0)
    assert second["user_velocity_log"] == pytest.approx(math.log1p(2 ** -0.5))


def test_user_zscore_against_own_history():
    state = UserState.new(1)
    for i, a in enumerate([10.0, 12.0, 14.0]):
        FX.featurize(state, ev(i, i, a))
    z = feats(FX.featurize(state, ev(9, 9, 16.0)))["amount_user_z"]
    assert z == pytest.approx((16 - 12) / 2.0)


def test_missing_numeric_is_nan_and_zscore_zero():
    state = UserState.new(1)
    row = feats(FX.featurize(state, ev(1, 0)))
    assert math.isnan(row["amount"]) and row["amount_user_z"] == 0.0


def test_out_of_order_event_does_not_go_back_in_time():
    state = UserState.new(1)
    FX.featurize(state, ev(1, 100))
    row = feats(FX.featurize(state, ev(2, 90)))
    assert row["user_seconds_since_prev_log"] == 0.0 and state.last_time == 100_000


def test_item_memory_is_bounded():
    fx = UserFeatureExtractor(numeric=(), categorical=(), max_items_per_user=3)
    state = UserState.new(0)
    for i in range(10):
        fx.featurize(state, ev(i, i, item=f"i{i}"))
    assert len(state.items) == 3


def test_bucket_is_stable_and_in_range():
    assert stable_bucket("device", "ios", 16) == stable_bucket("device", "ios", 16)
    assert all(0 <= stable_bucket("c", str(v), 16) < 16 for v in range(100))
