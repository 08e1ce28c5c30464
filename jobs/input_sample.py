"""A quick look at the input files before the job starts: how many lines, and a sample of them.

Reads the files once to count newlines and takes lines at evenly spaced byte offsets, so a
multi-gigabyte replay costs one sequential read, not a parse of every line.
"""

from __future__ import annotations

from pathlib import Path

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


def count_lines(paths: list[str]) -> int:
    """Lines in all files: the total a progress line counts towards."""
    lines = 0
    for f in input_files(paths):
        with f.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                lines += chunk.count(b"\n")
    return lines
