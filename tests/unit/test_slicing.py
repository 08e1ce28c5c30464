import json

from conf.settings import load_settings
from jobs.input_sample import count_and_sample, last_event_time
from jobs.preparation import resolve_slice
from udfs.features.slicing import LIVE_SLICE_MS, event_time_span

TOO_DEEP = "[" * 5000 + "]" * 5000  # JSON nested deeper than the parser follows


def write_events(path, n, span_ms, bad_lines=()):
    lines = [json.dumps({"event_id": f"e{i}", "user_id": "u", "event_time": 1_767_225_600_000 + i * span_ms // n})
             for i in range(n)]
    path.write_text("\n".join([*bad_lines, *lines]) + "\n")


def test_input_sample_counts_every_line_and_spreads_over_files(tmp_path):
    write_events(tmp_path / "a.jsonl", 3000, 3_600_000, bad_lines=["{not json"])
    write_events(tmp_path / "b.jsonl", 1000, 3_600_000)
    (tmp_path / ".hidden.jsonl").write_text("ignored\n")  # Flink's file source skips hidden files too
    lines, sample = count_and_sample([str(tmp_path)], size=40)
    assert lines == 4001
    assert 35 <= len(sample) <= 45 and "ignored" not in sample


def test_auto_slices_fit_the_replay_and_tile_the_window(tmp_path):
    sparse, dense = tmp_path / "sparse.jsonl", tmp_path / "dense.jsonl"
    write_events(sparse, 2_000, 3 * 3_600_000)       # ~0.2 events per second of event time
    write_events(dense, 200_000, 600_000)           # ~330 events per second
    auto = load_settings(overrides=["source.kind=file", f"source.path={sparse}"])
    assert resolve_slice(auto, [str(sparse)]).batching.slice_ms == 300_000  # one window: larger would straddle
    chosen = resolve_slice(auto, [str(dense)]).batching.slice_ms
    assert chosen < 300_000 and 300_000 % chosen == 0
    assert chosen * 200_000 / 600_000 / 16 <= auto.batching.target_batch_events


def test_auto_is_live_on_kafka_and_an_explicit_slice_stays():
    kafka = load_settings(overrides=["source.kind=kafka", "kafka.topics=[t]"])
    assert resolve_slice(kafka, []).batching.slice_ms == LIVE_SLICE_MS
    fixed = load_settings(overrides=["batching.slice_ms=60000"])
    assert resolve_slice(fixed, ["unused"]).batching.slice_ms == 60_000


def test_start_up_readers_skip_a_line_nested_too_deep_as_they_skip_bad_json(tmp_path):
    write_events(tmp_path / "a.jsonl", 100, 60_000, bad_lines=[TOO_DEEP])
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert event_time_span(lines) == 60_000 * 99 // 100
    assert last_event_time([str(tmp_path / "a.jsonl")]) == 1_767_225_600_000 + 60_000 * 99 // 100
