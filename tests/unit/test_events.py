import json

import pytest

from udfs.features.events import DeadLetter, Event, EventValidator, LatenessGuard, parse_time, window_start

VALIDATOR = EventValidator(numeric=("amount", "price"), categorical=("device", "is_returning"), max_record_bytes=2048)
GOOD = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "event_time": 1767225600000,
        "features": {"amount": 2.5, "price": 3, "device": "ios", "is_returning": True}, "label": 0}


def line(**changes) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def test_valid_event_keeps_every_field():
    event = VALIDATOR.parse(line())
    assert event == Event("e1", "u1", "i1", 1767225600000, {"amount": 2.5, "price": 3.0},
                          {"device": "ios", "is_returning": "true"}, 0)


def test_iso_time_equals_epoch_ms():
    assert VALIDATOR.parse(line(event_time="2026-01-01T00:00:00.000Z")).event_time == 1767225600000
    assert parse_time("2026-01-01T00:00:00") == 1767225600000


def test_unlabeled_and_missing_features_are_valid():
    event = VALIDATOR.parse(line(label=None, features={"device": "web"}))
    assert event.label is None and event.numeric == {}


@pytest.mark.parametrize("raw, reason", [
    ("{not json", "malformed_json"),
    ("[1, 2]", "not_an_object"),
    (line(event_id=...), "missing_field"),
    (line(user_id=None), "missing_field"),
    (line(user_id={"a": 1}), "bad_field_type"),
    (line(event_time="yesterday"), "bad_event_time"),
    (line(event_time=5), "event_time_out_of_range"),
    (line(event_time=10**15), "event_time_out_of_range"),
    (line(label=2), "bad_label"),
    (line(label=True), "bad_label"),
    (line(features={"amount": "3"}), "bad_feature_type"),
    (line(features=[1]), "bad_field_type"),
    ('{"event_id": "e", "user_id": "u", "event_time": 1767225600000, "features": {"amount": NaN}}', "non_finite_feature"),
    ('{"event_id": "e", "user_id": "u", "event_time": 1767225600000, "features": {"price": Infinity}}', "non_finite_feature"),
    ('{"event_id": "e", "user_id": "u", "event_time": 1767225600000, "features": {"amount": 1%s}}' % ("0" * 400),
     "non_finite_feature"),
    (line(item_id="x" * 3000), "oversized"),
    (b"\xff\xfe", "undecodable"),
])
def test_bad_records_become_dead_letters_with_reason(raw, reason):
    result = VALIDATOR.parse(raw)
    assert isinstance(result, DeadLetter), result
    assert result.reason == reason
    assert json.loads(result.to_json())["reason"] == reason


def test_json_nested_deeper_than_the_parsers_allow_is_a_dead_letter_not_a_crash():
    deep = "[" * 5000 + "]" * 5000  # 10 KB: within validation.max_record_bytes
    assert EventValidator(numeric=(), categorical=()).parse(deep).reason == "malformed_json"


@pytest.mark.parametrize("raw, user_id", [
    (line(user_id=10**20), "100000000000000000000"),  # orjson would read a float: json's int, as always
    ('{"event_id": "e", "user_id": "\\ud800", "event_time": 1767225600000}', "\ud800"),  # a lone surrogate
])
def test_records_orjson_refuses_parse_as_json_does(raw, user_id):
    assert VALIDATOR.parse(raw).user_id == user_id


@pytest.mark.parametrize("device", [10**20, -(10**19), 2**64 - 1])
def test_integers_beyond_64_bits_keep_every_digit_where_json_keeps_them(device):
    event = VALIDATOR.parse(line(features={**GOOD["features"], "device": device}))
    assert event.categorical["device"] == str(device)


def test_lateness_guard_matches_watermark_rule():
    guard = LatenessGuard(1000, max_ahead_ms=None)
    assert [guard.judge(t, split=0) for t in (10_000, 9_000, 8_999, 12_000, 11_000, 10_999)] == \
        [None, None, "late", None, None, "late"]
    assert guard.progress(0) == 12_000 - 1000 - 1


def test_window_start_aligns_to_the_epoch():
    assert window_start(1_767_225_903_120, 300_000) == 1_767_225_900_000
    assert window_start(1_767_225_900_000, 300_000) == 1_767_225_900_000
