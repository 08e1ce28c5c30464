"""A quick look at the input before the job starts: how many lines, and a sample of them.

Reads the files once to count newlines and takes lines at evenly spaced byte offsets, so a
multi-gigabyte replay costs one sequential read, not a parse of every line. On Kafka the sample is
the topics' first records. The sample sizes the event-time slices (udfs/slicing.py) and finds the
features (udfs/schema.py).
"""

from __future__ import annotations

from pathlib import Path

from conf.settings import KafkaSettings
from udfs.slicing import SAMPLE_LINES

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
    from scripts.kafka_tools import consume  # kafka-python: only a Kafka source needs it

    sample: list[str] = []
    for topic in k.topics:
        records = consume(k.bootstrap_servers, topic, size - len(sample), timeout_s)
        sample += [r.value.decode("utf-8", errors="replace") for r in records]
    return sample
