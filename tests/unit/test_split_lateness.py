"""Lateness per source split, the far-ahead guard, the chunk plan and the readers' placement, on
hand-made streams (library mode: the job's semantics without Flink)."""

from __future__ import annotations

import json
import pickle
from collections import Counter

from conf.settings import load_settings
from udfs.features.chunks import in_rounds, plan_chunks, read_lines, reader_keys
from udfs.features.events import LatenessGuard
from udfs.offline.library_mode import run_library
from udfs.sim.stream_generator import StreamSpec, generate_events

SPEC = StreamSpec(n_events=4_000, n_users=200, duration_s=3600.0, seed=5)


def lines(spec: StreamSpec = SPEC) -> list[str]:
    return [json.dumps(e) for e in generate_events(spec)]


def reasons(result) -> Counter:
    return Counter(json.loads(d)["reason"] for d in result.dead_letters)


def predicted(result) -> set[str]:
    return {json.loads(p)["event_id"] for p in result.predictions}


def test_each_split_is_judged_against_its_own_newest_event():
    guard = LatenessGuard(max_out_of_orderness_ms=1_000, max_ahead_ms=None)
    assert [guard.judge(t, split=0) for t in (50_000, 60_000)] == [None, None]
    assert guard.judge(10_000, split=1) is None  # far behind split 0, but the first of split 1
    assert guard.judge(58_999, split=0) == "late"
    assert (guard.progress(0), guard.progress(1)) == (58_999, 8_999)


def test_a_file_behind_another_is_not_late_however_far_behind():
    events = lines()
    early, late = events[:2_000], events[2_000:]
    as_two_files = run_library(load_settings(), late, early)
    assert reasons(as_two_files)["late_event"] == 0
    assert predicted(as_two_files) == {json.loads(line)["event_id"] for line in events}
    as_one_file = run_library(load_settings(), late + early)  # one split: the early half comes late
    assert reasons(as_one_file)["late_event"] == 2_000


def test_one_event_dated_2099_is_a_dead_letter_and_does_not_make_the_rest_late():
    events = lines()
    far = json.loads(events[1_000])
    far.update(event_id="far-future", event_time=4_070_908_800_000)  # 2099-01-01
    result = run_library(load_settings(), events[:1_500] + [json.dumps(far)] + events[1_500:])
    assert reasons(result) == Counter({"event_time_too_far_ahead": 1})
    assert len(result.predictions) == len(events)


def test_the_guard_is_off_with_max_ahead_null_as_before():
    events = lines()
    far = {**json.loads(events[1_000]), "event_id": "far-future", "event_time": 4_070_908_800_000}
    result = run_library(load_settings(overrides=["source.max_ahead_ms=null"]),
                         events[:1_500] + [json.dumps(far)] + events[1_500:])
    assert reasons(result)["late_event"] == len(events) - 1_500  # what one mistyped year did before the guard


def test_results_do_not_depend_on_the_chunk_size():
    events = lines()
    settings = [load_settings(overrides=[f"source.chunk_lines={n}"]) for n in (37, 2_000)]
    small, large = (run_library(s, events[::2], events[1::2]) for s in settings)
    assert small.predictions == large.predictions
    assert [s["parameters"] for s in small.snapshots] == [s["parameters"] for s in large.snapshots]


def test_the_lateness_state_survives_pickling_as_flink_keeps_it():
    guard = LatenessGuard(max_out_of_orderness_ms=1_000, max_ahead_ms=3_600_000)
    guard.judge(50_000, split=3)
    restored = pickle.loads(pickle.dumps(guard))
    assert restored.judge(48_000, split=3) == "late"
    assert restored.progress(3) == 48_999


def test_chunks_cover_every_line_once_in_rounds(tmp_path):
    texts = ["\n".join(f"a{i}" for i in range(7)) + "\n", "", "b0\r\nb1\rb2"]
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"{i}.jsonl"
        path.write_bytes(text.encode())
        paths.append(str(path))
    chunks = plan_chunks(paths, lines_per_chunk=3)
    assert [(c.split, c.index) for c in chunks] == in_rounds([3, 0, 1])
    assert [line for c in chunks if c.split == 0 for line in read_lines(c)] == [f"a{i}" for i in range(7)]
    assert [line for c in chunks if c.split == 2 for line in read_lines(c)] == ["b0", "b1", "b2"]
    assert [c.last for c in chunks if c.split == 0] == [False, False, True]


def test_reader_keys_land_where_flink_puts_them():
    # Flink's KeyGroupRangeAssignment.assignKeyToParallelOperator(Row.of(k), 128, p) for keys 0..11 (PyFlink's
    # key_by keys by a one-field Row), read off Flink 2.3
    flink = {2: [0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0], 4: [1, 1, 3, 3, 0, 0, 3, 0, 2, 3, 1, 1]}
    for parallelism, subtasks in flink.items():
        keys = reader_keys(parallelism)
        assert [subtasks[k] for k in keys] == list(range(parallelism))


def test_the_trainer_learns_from_a_bounded_sample_while_every_event_is_scored():
    events = lines(StreamSpec(n_events=12_000, n_users=300, duration_s=1800.0, seed=8))  # 2,000 rows a window
    sampled = run_library(load_settings(overrides=["window.training_rows=1000"]), events)
    full = run_library(load_settings(overrides=["window.training_rows=null"]), events)
    assert max(s["metrics"]["events"] for s in sampled.window_snapshots) <= 1000
    assert min(s["metrics"]["events"] for s in full.window_snapshots[:-1]) > 1000
    assert len(sampled.predictions) == len(full.predictions) == len(events)  # every event is still scored
