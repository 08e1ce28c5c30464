"""Whether a sample of the input is events the job can read at all, and if not, why, before the job starts.

A CSV file, or events whose ``event_time`` is in epoch seconds, would turn every line into a dead
letter (``malformed_json``, ``event_time_out_of_range``) and the run would look like it worked: the
sample says so first, and says what the input must look like.

>>> ms = 1_700_000_000_000
>>> good = '{"user_id": "u", "event_time": %d, "features": {}}'
>>> print(unreadable_sample([good % ms] * 9 + ["oops"], ms - 1, ms + 1, 0.5))
None
>>> print(unreadable_sample([good % (ms // 1000)] * 10, ms - 1, ms + 1, 0.5))  # doctest: +ELLIPSIS
0 of 10 sampled lines are events the job can read: event_time looks like epoch seconds in 10 (e.g. 1700000000): multiply by 1000; ...
>>> print(unreadable_sample(["user_id,event_time,amount"] + ["u1,1700000000000,3.5"] * 9, 0, ms, 0.5))  # doctest: +ELLIPSIS
0 of 10 sampled lines are events the job can read: 10 are not JSON objects, the input looks like CSV (first line 'user_id,event_time,amount'); ...
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from udfs.features.events import loads, parse_time

EXPECTED_SHAPE = (
    'the job reads JSON Lines (or Parquet), one event per line, like {"event_id": "e1", "user_id": "u1", '
    '"event_time": 1700000000000, "label": 1, "features": {"amount": 12.5, "device": "ios"}}: event_time in '
    "epoch milliseconds or ISO-8601 text, label 0, 1 or null, features an object of numbers, strings or bools"
)
# event_time numbers off by these factors from milliseconds, and what to do about them
TIME_UNITS = (("seconds", 1e-3, "multiply by 1000"), ("microseconds", 1e3, "divide by 1000"),
              ("nanoseconds", 1e6, "divide by 1,000,000"))
DELIMITERS = ",;\t|"


def unreadable_sample(lines: Sequence[str], min_event_time: int, max_event_time: int, min_share: float) -> str | None:
    """Why fewer than ``min_share`` of ``lines`` are events with a user and an event time in
    [``min_event_time``, ``max_event_time``] (epoch ms, ``validation.*``), or None if enough are."""
    usable, problems, examples = 0, Counter(), {}
    for line in lines:
        problem, example = _line_problem(line, min_event_time, max_event_time)
        if problem is None:
            usable += 1
        else:
            problems[problem] += 1
            examples.setdefault(problem, example)
    if not lines or usable >= min_share * len(lines):
        return None
    reasons = []
    for problem, count in problems.most_common(3):
        if problem == "not_json":
            reasons.append(f"{count} are not JSON objects, {_text_kind(lines)} (first line {lines[0][:120]!r})")
        elif problem in {unit for unit, _, _ in TIME_UNITS}:
            advice = next(fix for unit, _, fix in TIME_UNITS if unit == problem)
            reasons.append(f"event_time looks like epoch {problem} in {count} (e.g. {examples[problem]}): {advice}")
        else:
            reasons.append(f"{count} {problem} (e.g. {examples[problem]})")
    return (f"{usable} of {len(lines)} sampled lines are events the job can read: {'; '.join(reasons)}; "
            f"{EXPECTED_SHAPE}")


def _line_problem(line: str, min_ms: int, max_ms: int) -> tuple[str | None, object]:
    """(None, None) for a readable event, else (what is wrong, an example value)."""
    try:
        obj = loads(line)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return "not_json", None
    if obj.get("user_id") is None:
        return "have no user_id", sorted(obj)[:8]
    value = obj.get("event_time")
    try:
        time_ms = parse_time(value)
    except (ValueError, TypeError, OverflowError):
        return "have no readable event_time", value
    if min_ms <= time_ms <= max_ms:
        return None, None
    if isinstance(value, (int, float)):
        for unit, factor, _ in TIME_UNITS:
            if min_ms * factor <= value <= max_ms * factor:
                return unit, value
    return "have an event_time outside validation.min_event_time/max_event_time", value


def _text_kind(lines: Sequence[str]) -> str:
    """'the input looks like CSV' when the first lines split alike on one delimiter, else 'the input is not JSON'.

    >>> _text_kind(["a;b", "1;2"]), _text_kind(["hello world"])
    ("the input looks like CSV (';'-separated)", 'the input is not JSON Lines')
    """
    head = list(lines[:20])
    for delimiter in DELIMITERS:
        counts = {line.count(delimiter) for line in head}
        if len(counts) == 1 and counts != {0}:
            return "the input looks like CSV" + ("" if delimiter == "," else f" ({delimiter!r}-separated)")
    return "the input is not JSON Lines"
