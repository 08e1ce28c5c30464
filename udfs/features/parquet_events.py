"""Events from Parquet files (pyarrow), as the JSON lines the job's triage reads.

A Parquet history has the JSON schema's columns: ``event_id``, ``user_id``, ``event_time``
(epoch ms, a timestamp, or an ISO-8601 string), optional ``item_id`` and ``label``, and the
features either as one ``features`` column (a struct or a map) or as flat columns: every other
column, or those ``source.parquet.feature_columns`` names. ``source.parquet.columns`` maps event
fields to other column names (``{"event_time": "ts"}``).

A file that cannot be read, lacks a required column or has a column of a type that cannot hold
the field stops the job at start-up with the file, the column and the fix; a bad *value* in a
row (a null ``user_id``, a NaN feature) goes through as JSON and becomes a dead letter with its
reason, as in a JSONL file.

>>> import pyarrow as pa
>>> table = pa.table({"event_id": ["e1"], "user_id": [7], "event_time": [1767225600000],
...                   "features": [{"amount": 2.5, "device": "ios"}], "label": [1]})
>>> layout = ParquetLayout.of("h.parquet", table.schema, ParquetSettings())
>>> list(json_lines(table, layout))
['{"event_id": "e1", "user_id": 7, "event_time": 1767225600000, "label": 1, "features": {"amount": 2.5, "device": "ios"}}']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from conf.settings import ParquetSettings, SettingsError

REQUIRED = ("event_id", "user_id", "event_time")
OPTIONAL = ("item_id", "label")
BATCH_ROWS = 10_000


def _is_id(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)


def _is_time(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_label(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t) or pa.types.is_null(t)


def _is_feature(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t) or pa.types.is_null(t) or pa.types.is_dictionary(t))


_EXPECTED = {"event_id": (_is_id, "a string or integer"), "user_id": (_is_id, "a string or integer"),
             "item_id": (lambda t: _is_id(t) or pa.types.is_null(t), "a string or integer"),
             "event_time": (_is_time, "epoch milliseconds (integer), a timestamp or an ISO-8601 string"),
             "label": (_is_label, "0/1 (integer, bool or float) or null")}


@dataclass(frozen=True)
class ParquetLayout:
    """Where each event field is in one file's columns, checked against the file's schema."""

    fields: dict[str, str]       # event field -> column
    features: str | None         # the struct/map column, or None for flat feature columns
    flat: tuple[str, ...]        # flat feature columns

    @classmethod
    def of(cls, path: str | Path, schema: pa.Schema, p: ParquetSettings) -> ParquetLayout:
        names = set(schema.names)
        fields = {}
        for name in REQUIRED + OPTIONAL:
            column = p.columns.get(name, name)
            if column not in names:
                if name in REQUIRED:
                    raise SettingsError(f"{path}: no column '{column}' for {name} (columns: {schema.names}); "
                                        f"rename it or map it with --set source.parquet.columns='{{{name}: COLUMN}}'")
                continue
            check, expected = _EXPECTED[name]
            if not check(schema.field(column).type):
                raise SettingsError(f"{path}: column '{column}' ({name}) is {schema.field(column).type}, "
                                    f"expected {expected}")
            fields[name] = column
        features = p.columns.get("features", "features")
        if p.feature_columns is None and features in names:
            t = schema.field(features).type
            if not (pa.types.is_struct(t) or pa.types.is_map(t)):
                raise SettingsError(f"{path}: column '{features}' is {t}, expected a struct or a map of feature "
                                    "values (or name flat columns in source.parquet.feature_columns)")
            return cls(fields, features, ())
        flat = p.feature_columns if p.feature_columns is not None else tuple(
            n for n in schema.names if n not in fields.values())
        for column in flat:
            if column not in names:
                raise SettingsError(f"{path}: no column '{column}' named in source.parquet.feature_columns "
                                    f"(columns: {schema.names})")
            if not _is_feature(schema.field(column).type):
                raise SettingsError(f"{path}: feature column '{column}' is {schema.field(column).type}, expected "
                                    "numbers, strings or bools")
        return cls(fields, None, tuple(flat))


def open_parquet(path: Path) -> pq.ParquetFile:
    """The file, or a start-up error that names it."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SettingsError(f"{path}: not a readable Parquet file ({exc})") from None


def json_lines(table: pa.Table | pa.RecordBatch, layout: ParquetLayout) -> Iterator[str]:
    """One JSON event line per row, in the file's order."""
    for row in table.to_pylist():
        event = {name: _json_value(row[column]) for name, column in layout.fields.items()}
        if layout.features is not None:
            raw = row[layout.features]
            features = dict(raw) if isinstance(raw, list) else raw  # a map column reads as (key, value) pairs
        else:
            features = {column: row[column] for column in layout.flat}
        event["features"] = {k: _json_value(v) for k, v in (features or {}).items()}
        yield json.dumps(event)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):  # a timestamp column: epoch ms, naive means UTC as in JSON input
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(aware.timestamp() * 1000)
    return value


def read_parquet_lines(path: Path, p: ParquetSettings) -> Iterator[str]:
    """Every row of one Parquet file as a JSON event line, a record batch at a time."""
    handle = open_parquet(path)
    layout = ParquetLayout.of(path, handle.schema_arrow, p)
    try:
        for batch in handle.iter_batches(batch_size=BATCH_ROWS):
            yield from json_lines(batch, layout)
    except (pa.ArrowException, OSError) as exc:
        raise SettingsError(f"{path}: unreadable Parquet data ({exc})") from None
