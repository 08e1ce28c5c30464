"""A quick look at the input before the job starts: how many lines, and a sample of them.

Reads the files once to count newlines and takes lines at evenly spaced byte offsets, so a
multi-gigabyte replay costs one sequential read, not a parse of every line. On Kafka the sample is
the topics' first records. The sample sizes the event-time slices (udfs/features/slicing.py) and finds the
features (udfs/features/schema.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from conf.settings import KafkaSettings, ParquetSettings, SettingsError
from udfs.features.events import loads, parse_time
from udfs.features.parquet_events import read_parquet_lines
from udfs.features.slicing import SAMPLE_LINES

CHUNK_BYTES = 1 << 20


def input_files(paths: list[str]) -> list[Path]:
    """The files the file source reads: each path itself, or the non-hidden files under a folder."""
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            files += sorted(f for f in given.rglob("*")
                            if f.is_file() and not any(part.startswith((".", "_")) for part in f.relative_to(given).parts))
        else:
            files.append(given)
    return files


def count_and_sample(paths: list[str], size: int = SAMPLE_LINES) -> tuple[int, list[str]]:
    """Lines in all files, and about ``size`` whole lines spread over them by bytes."""
    files = input_files(paths)
    total_bytes = sum(f.stat().st_size for f in files) or 1
    lines, sample = 0, []
    for f in files:
        with f.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                lines += chunk.count(b"\n")
            n = max(round(size * f.stat().st_size / total_bytes), 1)
            for k in range(n):
                handle.seek(f.stat().st_size * k // n)
                if k:
                    handle.readline()  # the rest of a line cut by the offset
                line = handle.readline().strip()
                if line:
                    sample.append(line.decode("utf-8", errors="replace"))
    return lines, sample


def kafka_sample(k: KafkaSettings, size: int, timeout_s: float) -> list[str]:
    """Up to ``size`` records from the start of the configured topics, waiting at most ``timeout_s``
    per topic (an empty or young topic gives fewer)."""
    from jobs.kafka_client import consume  # kafka-python: only a Kafka source needs it

    sample: list[str] = []
    for topic in k.topics:
        records = consume(k.bootstrap_servers, topic, size - len(sample), timeout_s)
        sample += [r.value.decode("utf-8", errors="replace") for r in records]
    return sample


def is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet"


def history_lines(paths: list[str], parquet: ParquetSettings) -> Iterator[str]:
    """Every event of the input files as a JSON line, Parquet rows included, file by file."""
    for f in input_files(paths):
        if is_parquet(f):
            yield from read_parquet_lines(f, parquet)
        else:
            with f.open(encoding="utf-8", errors="replace") as handle:
                yield from (line.rstrip("\n") for line in handle if line.strip())


def parquet_as_jsonl(paths: list[str], dest: Path, parquet: ParquetSettings, every_rows: int = 100_000) -> list[str]:
    """The file source's paths: ``paths`` themselves, or for Parquet input the same rows as JSONL under ``dest``.

    Flink's Parquet format needs the flink-parquet and Hadoop jars, which PyFlink does not ship, so
    Parquet is converted here, explicitly and with progress lines, one JSONL file per Parquet file
    in the same order. A file converted before is kept as it is: a resumed job's savepoint points
    into it by name and offset.
    """
    files = input_files(paths)
    parquet_files = [f for f in files if is_parquet(f)]
    if not parquet_files:
        return paths
    if len(parquet_files) != len(files):
        others = [str(f) for f in files if not is_parquet(f)][:3]
        raise SettingsError(f"--input {paths[0]}: mixes Parquet with other files ({others}); use one format per input")
    dest.mkdir(parents=True, exist_ok=True)
    print(f"converting {len(parquet_files)} Parquet file(s) to JSONL under {dest} for Flink's file source "
          "(Flink's Parquet format needs flink-parquet and Hadoop jars that PyFlink does not ship)", flush=True)
    for k, source in enumerate(parquet_files):
        target = dest / f"{k:05d}-{source.stem}.jsonl"
        if target.exists():
            print(f"  {source}: kept {target.name} (converted before)", flush=True)
            continue
        partial = dest / f".{target.name}.partial"  # hidden: the file source skips it
        rows = 0
        with partial.open("w") as out:
            for line in read_parquet_lines(source, parquet):
                out.write(line + "\n")
                rows += 1
                if rows % every_rows == 0:
                    print(f"  {source}: {rows} rows converted", flush=True)
        partial.rename(target)
        print(f"  {source}: {rows} rows -> {target.name}", flush=True)
    return [str(dest)]


def last_event_time(paths: list[str], every_lines: int = 1_000_000) -> int:
    """The newest ``event_time`` in the input files (lines without a usable one are skipped: the triage
    dead-letters them), read line by line with a progress line every ``every_lines``."""
    newest, seen = -(2**63), 0
    for f in input_files(paths):
        with f.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                seen += 1
                if seen % every_lines == 0:
                    print(f"  finding the files' last event time: {seen} lines read", flush=True)
                with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError, OverflowError):
                    newest = max(newest, parse_time(loads(line)["event_time"]))
    if newest == -(2**63):
        raise SettingsError(f"source.path {paths[0]}: no event with an event_time to switch to Kafka from; "
                            "set kafka.starting_timestamp_ms")
    return newest
