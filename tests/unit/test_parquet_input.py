"""Parquet input: the columns of the JSON schema in any of its layouts, and clear start-up errors for
files the job cannot read."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conf.settings import ParquetSettings
from jobs.input_sample import history_lines, parquet_as_jsonl
from jobs.online_learning import main

ROWS = {"event_id": ["e1", "e2"], "user_id": ["u1", None], "event_time": [1_767_225_600_000, 1_767_225_601_000],
        "label": [1, None]}


def write(path: Path, **columns: list) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_struct_map_and_flat_features_read_as_the_same_events(tmp_path: Path):
    struct = write(tmp_path / "struct.parquet", **ROWS, features=[{"amount": 1.5, "os": "ios"}, {"amount": None, "os": "web"}])
    pq.write_table(pa.table({**ROWS, "features": pa.array(
        [[("amount", "1.5")], [("amount", "x")]], type=pa.map_(pa.string(), pa.string()))}), tmp_path / "map.parquet")
    flat = write(tmp_path / "flat.parquet", **ROWS, amount=[1.5, None], os=["ios", "web"])
    renamed = write(tmp_path / "renamed.parquet", id=ROWS["event_id"], user_id=ROWS["user_id"],
                    ts=pa.array([1_767_225_600_000_000, 1_767_225_601_000_000], type=pa.timestamp("us")),
                    amount=[1.5, None], os=["ios", "web"])
    expected = [{"event_id": "e1", "user_id": "u1", "event_time": 1_767_225_600_000, "label": 1,
                 "features": {"amount": 1.5, "os": "ios"}},
                {"event_id": "e2", "user_id": None, "event_time": 1_767_225_601_000, "label": None,
                 "features": {"amount": None, "os": "web"}}]
    assert [json.loads(x) for x in history_lines([str(struct)], ParquetSettings())] == expected
    assert [json.loads(x) for x in history_lines([str(flat)], ParquetSettings())] == expected
    columns = ParquetSettings(columns={"event_id": "id", "event_time": "ts"})
    assert [json.loads(x) for x in history_lines([str(renamed)], columns)] == [
        {k: v for k, v in e.items() if k != "label"} for e in expected]
    assert [json.loads(x)["features"] for x in history_lines([str(tmp_path / "map.parquet")], ParquetSettings())] == [
        {"amount": "1.5"}, {"amount": "x"}]


def test_conversion_for_the_file_source_keeps_order_and_reuses_converted_files(tmp_path: Path, capsys):
    folder = tmp_path / "history"
    folder.mkdir()
    write(folder / "a.parquet", **ROWS, features=[{"x": 1.0}, {"x": 2.0}])
    write(folder / "b.parquet", **ROWS, features=[{"x": 3.0}, {"x": 4.0}])
    dest = tmp_path / "converted"
    assert parquet_as_jsonl([str(folder)], dest, ParquetSettings()) == [str(dest)]
    files = sorted(dest.iterdir())
    assert [f.name for f in files] == ["00000-a.jsonl", "00001-b.jsonl"]
    assert [json.loads(line)["features"]["x"] for f in files for line in f.read_text().splitlines()] == [1, 2, 3, 4]
    assert "converting 2 Parquet file(s)" in capsys.readouterr().out
    parquet_as_jsonl([str(folder)], dest, ParquetSettings())
    assert "kept 00000-a.jsonl (converted before)" in capsys.readouterr().out
    plain = tmp_path / "events.jsonl"
    plain.write_text("{}\n")
    assert parquet_as_jsonl([str(plain)], dest, ParquetSettings()) == [str(plain)]


@pytest.mark.parametrize("make, message", [
    (lambda p: write(p, **{k: v for k, v in ROWS.items() if k != "user_id"}, features=[{"x": 1.0}] * 2),
     "no column 'user_id' for user_id"),
    (lambda p: write(p, **{**ROWS, "event_time": [1.5, 2.5]}, features=[{"x": 1.0}] * 2),
     "column 'event_time' (event_time) is double, expected epoch milliseconds"),
    (lambda p: write(p, **{**ROWS, "label": ["yes", "no"]}, features=[{"x": 1.0}] * 2),
     "column 'label' (label) is string, expected 0/1"),
    (lambda p: write(p, **ROWS, features=["a", "b"]), "column 'features' is string, expected a struct or a map"),
    (lambda p: write(p, **ROWS, tags=[[1], [2]]), "feature column 'tags' is list<element: int64>, expected numbers"),
    (lambda p: p.write_bytes(b"PAR1 this is not parquet"), "not a readable Parquet file"),
])
def test_bad_parquet_stops_the_job_at_start_up_naming_file_and_column(tmp_path: Path, capsys, make, message):
    bad = tmp_path / "history.parquet"
    make(bad)
    assert main(["--input", str(bad), "--output", str(tmp_path / "out"), "--set", "mlflow.enabled=false"]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: " in err and message in err, err
