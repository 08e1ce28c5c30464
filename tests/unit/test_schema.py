"""Features found from a sample of the input, and the warnings that say what the job will not use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conf.settings import DEFAULT_CONFIG, SettingsError, load_settings
from jobs.preparation import SCHEMA_FILE, resolve_schema
from udfs.features.schema import AUTO, infer_schema
from udfs.offline.library_mode import run_library


def event(i: int, **features: object) -> str:
    return json.dumps({"event_id": f"e{i}", "user_id": f"u{i % 7}", "event_time": 1_767_225_600_000 + i,
                       "features": features, "label": i % 2})


def test_numbers_are_numeric_strings_and_bools_categorical_in_order_of_appearance():
    lines = [event(i, **{"3": i * 0.5, "os": "ios" if i % 2 else "web", "vip": i % 3 == 0, "0": i}) for i in range(50)]
    schema = infer_schema(lines, AUTO, AUTO)
    assert schema.numeric == ("3", "0") and schema.categorical == ("os", "vip")
    assert schema.inferred == ("numeric", "categorical") and schema.sample_events == 50
    assert schema.warnings == ()


def test_unused_and_never_seen_fields_are_warned_with_counts():
    lines = [event(i, amount=float(i), campaign=f"c{i % 3}", **({"extra": i} if i < 30 else {})) for i in range(100)]
    schema = infer_schema(lines, ("amount", "price"), AUTO)
    assert schema.numeric == ("amount", "price") and schema.categorical == ("campaign",)
    assert "field 'extra' appears in 30 of 100 sampled events but is not used " \
           "(not in features.numeric or features.categorical)" in schema.warnings
    assert "features.numeric: 'price' is configured but appears in none of the 100 sampled events" in schema.warnings
    assert schema.field_counts == {"amount": 100, "campaign": 100, "extra": 30}


def test_constant_mostly_missing_and_mixed_columns_are_reported():
    lines = [event(i, flag=1.0, rare=float(i) if i == 5 else None, mixed="n/a" if i < 10 else float(i),
                   tags=["a"], signal=float(i)) for i in range(1000)]
    warnings = infer_schema(lines, AUTO, AUTO).warnings
    assert "column 'flag' is constant (1.0 in all 1000 sampled events that have it): it carries no signal" in warnings
    assert "column 'rare' is missing in 99.9% of 1000 sampled events" in warnings
    assert "column 'mixed' (numeric) has 10 of 1000 sampled values that are not numbers: those events will be " \
           "dead-lettered as bad_feature_type" in warnings
    assert "field 'tags' appears in 1000 of 1000 sampled events but is not used " \
           "(values are not numbers, strings or bools)" in warnings
    assert not any("'signal'" in w for w in warnings)


def test_an_integer_beyond_a_floats_range_counts_as_no_number_not_a_crash():
    lines = [event(i, amount=10**400 if i == 3 else float(i)) for i in range(100)]
    schema = infer_schema(lines, AUTO, AUTO)
    assert schema.numeric == ("amount",)
    assert schema.warnings == ("column 'amount' has 1 of 100 sampled values that are NaN, infinite or beyond a "
                               "float's range: those events will be dead-lettered as non_finite_feature",)


def test_a_line_nested_too_deep_is_skipped_like_other_broken_lines():
    lines = ["[" * 5000 + "]" * 5000, *(event(i, amount=float(i)) for i in range(10))]
    schema = infer_schema(lines, AUTO, AUTO)
    assert schema.numeric == ("amount",) and schema.sample_events == 10


def test_explicit_lists_stay_as_configured():
    lines = [event(i, b=float(i), a=float(-i), c="x") for i in range(20)]
    schema = infer_schema(lines, ("a", "b"), ("c",))
    assert (schema.numeric, schema.categorical, schema.inferred) == (("a", "b"), ("c",), ())


def test_the_cli_default_config_infers_and_library_mode_resolves_auto():
    settings = load_settings(DEFAULT_CONFIG)
    assert settings.features.numeric == AUTO and settings.features.categorical == AUTO
    with pytest.raises(SettingsError, match="'auto' is resolved from a sample"):
        settings.features.names()
    lines = [event(i, x=float(i % 5), device="ios" if i % 3 else "web") for i in range(600)]
    result = run_library(load_settings(overrides=["features.numeric=auto", "features.categorical=auto"]), lines)
    assert len(result.predictions) == 600 and result.snapshots[0]["dense_names"][0] == "x"


def test_a_resumed_job_keeps_the_schema_it_was_started_with(tmp_path: Path):
    out, savepoint = tmp_path / "out", tmp_path / "savepoint-1"
    out.mkdir()
    savepoint.mkdir()
    first, _ = resolve_schema(load_settings(DEFAULT_CONFIG, [f"output.path={out}"]),
                              [event(i, a=float(i), b="x") for i in range(20)], "first input")
    (savepoint / SCHEMA_FILE).write_text((out / SCHEMA_FILE).read_text())
    (out / SCHEMA_FILE).unlink()
    resumed = load_settings(DEFAULT_CONFIG, [f"output.path={out}", f"job.resume_from={savepoint.as_uri()}"])
    later_sample = [event(i, z=float(i)) for i in range(20)]  # other fields now: the savepoint's columns win
    kept, schema = resolve_schema(resumed, later_sample, "second input")
    assert kept.features.names() == first.features.names() == (("a",), ("b",))
    with pytest.raises(SettingsError, match="features.numeric: \\['z'\\] differs"):
        resolve_schema(load_settings(DEFAULT_CONFIG, [f"output.path={out}", f"job.resume_from={savepoint.as_uri()}",
                                                      "features.numeric=[z]"]), later_sample, "second input")


def test_no_features_at_all_is_a_start_up_error_naming_the_input(tmp_path: Path):
    settings = load_settings(DEFAULT_CONFIG, [f"output.path={tmp_path}"])
    with pytest.raises(SettingsError, match="no feature found in 5 sampled events of events.jsonl"):
        resolve_schema(settings, [event(i) for i in range(5)], "events.jsonl")
