"""A new user's input the job cannot read is recognised before the job starts, and a bounded run that
rejected most of its input does not end as a success."""

from __future__ import annotations

import json

from jobs.online_learning import main
from jobs.run_summary import too_few_valid
from udfs.features.events import parse_time
from udfs.features.input_shape import EXPECTED_SHAPE, unreadable_sample
from udfs.sim.stream_generator import StreamSpec, generate_events

LOW, HIGH = parse_time("2000-01-01T00:00:00Z"), parse_time("2100-01-01T00:00:00Z")
EVENTS = list(generate_events(StreamSpec(n_events=200, n_users=20, duration_s=600.0, seed=3)))


def with_times(scale: float) -> list[str]:
    return [json.dumps({**e, "event_time": int(parse_time(e["event_time"]) * scale)}) for e in EVENTS]


def test_events_in_seconds_microseconds_or_nanoseconds_are_named_with_the_fix():
    assert unreadable_sample(with_times(1), LOW, HIGH, 0.5) is None
    for scale, unit, fix in ((1e-3, "seconds", "multiply by 1000"), (1e3, "microseconds", "divide by 1000"),
                             (1e6, "nanoseconds", "divide by 1,000,000")):
        message = unreadable_sample(with_times(scale), LOW, HIGH, 0.5)
        assert message.startswith("0 of 200 sampled lines are events the job can read: event_time looks like "
                                  f"epoch {unit} in 200"), message
        assert fix in message and message.endswith(EXPECTED_SHAPE)


def test_a_few_bad_lines_pass_and_the_share_is_the_setting():
    lines = with_times(1)[:150] + ["not json"] * 50
    assert unreadable_sample(lines, LOW, HIGH, 0.5) is None
    assert unreadable_sample(lines, LOW, HIGH, 0.8).startswith("150 of 200 sampled lines")


def test_a_csv_file_stops_the_cli_saying_what_the_input_must_look_like(tmp_path, capsys):
    csv = tmp_path / "events.csv"
    csv.write_text("event_id,user_id,event_time,amount\n" + "".join(f"e{i},u{i % 7},1700000000000,{i}.5\n" for i in range(300)))
    for extra in ([], ["--set", "features.numeric=[amount]", "--set", "features.categorical=[]"]):
        assert main(["--input", str(csv), "--output", str(tmp_path / "out"), *extra]) == 2
        err = capsys.readouterr().err
        assert "are not JSON objects, the input looks like CSV (first line 'event_id,user_id,event_time,amount')" in err
        assert EXPECTED_SHAPE in err and "validation.min_valid_share=0.5" in err and "--set features" not in err


def test_a_run_below_the_valid_share_fails_with_its_top_reasons():
    summary = {"predictions": 10, "dead_letters": 90,
               "dead_letters_by_reason": {"late": 5, "bad_label": 60, "malformed_json": 20, "missing_field": 5}}
    assert too_few_valid(summary, 0.5) == ("only 10.0% of the 100 events read were valid (validation.min_valid_share=0.5); "
                                           "dead letters: bad_label x 60, malformed_json x 20, late x 5")
    assert too_few_valid(summary, 0.1) is None
    assert too_few_valid({"predictions": 0, "dead_letters": 0, "dead_letters_by_reason": {}}, 0.5) is None
