"""What the client prints while and after a run: the progress line's windows, the summary's lines."""

from __future__ import annotations

import json

from jobs.progress import WINDOW_SNAPSHOT, lines_written
from jobs.run_summary import format_summary, summarize
from udfs.features.schema import infer_schema


def test_windows_closed_counts_window_snapshots_not_fast_mode_slot_updates(tmp_path):
    snapshots = tmp_path / "snapshots" / "2026-01-01--00"
    snapshots.mkdir(parents=True)
    updates = ["window", "slot", "slot", "window", "slot"]
    # As the job writes them (json.dumps), one committed part file and one in progress.
    (snapshots / "part-0.jsonl").write_text("".join(json.dumps({"version": k, "update": u}) + "\n"
                                                    for k, u in enumerate(updates[:3])))
    (snapshots / ".part-1.inprogress").write_text("".join(json.dumps({"version": k, "update": u}) + "\n"
                                                         for k, u in enumerate(updates[3:])))
    assert lines_written(tmp_path / "snapshots", WINDOW_SNAPSHOT) == 2
    assert lines_written(tmp_path / "snapshots") == 5


def test_the_summary_does_not_repeat_the_features_line_printed_at_start_up(tmp_path):
    summary = summarize(tmp_path, [])
    schema = infer_schema(['{"user_id": "u", "features": {"amount": 1.5}}'] * 3, "auto", "auto")
    summary["schema"] = schema.to_json()
    text = format_summary(summary)
    assert "features " not in text
    assert "warning          column 'amount' is constant" in text  # its warnings stay: the end of a long log
