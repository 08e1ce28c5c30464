import math
import random

import pytest

from udfs.features.events import Event
from udfs.features.feature_batch import FeatureBatch
from udfs.features.user_features import FeatureRow, UserFeatureExtractor, UserState, stable_bucket

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


def test_a_batch_gives_the_features_of_one_event_at_a_time():
    """Moments merged per batch equal the sequential ones, however the stream is cut."""
    fx = UserFeatureExtractor(numeric=("amount", "price"), categorical=("device",), hash_buckets=16)
    rng = random.Random(3)
    events = []
    for i in range(300):
        numeric = {"amount": round(rng.gauss(100, 30), 2)} if rng.random() < 0.8 else {}
        numeric["price"] = 9.99 if i % 3 else rng.choice([9.99, 19.99])  # long constant runs
        events.append(Event(f"e{i}", f"u{rng.randrange(7)}", f"i{rng.randrange(5)}", i * 1000, numeric,
                            {"device": rng.choice(["ios", "web"])}, rng.choice([0, 1, None])))
    one_by_one: dict[str, UserState] = {}
    expected = [fx.featurize(one_by_one.setdefault(e.user_id, UserState.new(2)), e) for e in events]
    for size in (1, 7, 300):
        states = {e.user_id: UserState.new(2) for e in events}
        dense = [fx.featurize_batch(events[i:i + size], states)[0] for i in range(0, len(events), size)]
        got = [row for block in dense for row in block]
        for want, row in zip(expected, got):
            assert row == pytest.approx(want.dense, abs=1e-9, nan_ok=True)
        for user, state in states.items():
            assert state.moments == pytest.approx(one_by_one[user].moments, abs=1e-9)


def test_a_constant_feature_has_zero_zscore_and_spread():
    fx = UserFeatureExtractor(numeric=("price",), categorical=())
    states = {"u": UserState.new(1)}
    dense, _ = fx.featurize_batch([ev(i, i)._replace(numeric={"price": 0.618}) for i in range(5)]
                                  + [ev(9, 9)._replace(numeric={"price": 0.723})], states)
    assert dense[:, -1].tolist() == [0.0] * 6 and states["u"].moments[0, 2] > 0


def test_canonical_order_is_event_time_then_user_then_event_id_whatever_the_input_order():
    rng = random.Random(3)
    rows = [FeatureRow(f"e{rng.randrange(50)}", f"u{rng.randrange(5)}", rng.randrange(4), None, (float(i),), ())
            for i in range(400)]  # many ties on time and user, some on all three
    canonical = FeatureBatch.from_rows(rows, n_dense=1).canonical()
    expected = sorted(rows, key=lambda r: (r.event_time, r.user_id, r.event_id))  # stable, as the batch's sort
    assert canonical.event_ids == [r.event_id for r in expected]
    assert canonical.dense[:, 0].tolist() == [r.dense[0] for r in expected]
    rng.shuffle(rows)
    assert FeatureBatch.from_rows(rows, n_dense=1).canonical().event_ids == [r.event_id for r in expected]
