"""What a resume must find as the run left it: the settings its state was made with, and its input files.

Pure comparisons of the records kept in the output folder (jobs/run_folder.py) and beside each
savepoint; the client turns a difference into a refusal that names the key or the file.
"""

from __future__ import annotations

from pathlib import Path

# Settings whose change makes the restored state mean something else, or not fit at all: the user
# shards and slices key the state, hash buckets and features size the model, windows and slots
# time it, the model kind and shape are its parameters, the out-of-orderness bound and the dedup
# horizon decide which lines the state has already judged, the source and the state backend are
# what the savepoint restores into, and the file chunks and the readers (one per subtask, owning the
# files s % readers) are what the file front's state and source position count in. Keys are dotted prefixes.
STATE_KEYS = (
    "batching.shards", "batching.slice_ms", "features.numeric", "features.categorical", "features.hash_buckets",
    "features.max_items_per_user", "window.size_ms", "window.slot_ms", "model.kind", "model.hidden_units",
    "model.ensemble.member", "model.ensemble.learning_rates", "source.kind", "source.max_out_of_orderness_ms",
    "validation.dedup_horizon_ms", "validation.dedup_max_ids_per_user", "drift.reference_windows",
    "drift.reference_size", "job.state_backend", "source.chunk_lines", "job.parallelism", "model.fm.factors",
    "model.fm.id_buckets",
)
# Where a run is, not what it computes: never reported.
IGNORED_KEYS = ("job.resume_from", "output.path", "source.path", "model.warm_start", "model.device")


def _matches(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def settings_changes(kept: dict[str, str], now: dict[str, str]) -> tuple[list[str], list[str]]:
    """(refused, accepted): one line per changed key, state-shaping keys refused, the others accepted.

    >>> settings_changes({"batching.shards": "16", "model.learning_rate": "0.05", "output.path": "a"},
    ...                  {"batching.shards": "8", "model.learning_rate": "0.01", "output.path": "b"})
    (['batching.shards: 16 -> 8'], ['model.learning_rate: 0.05 -> 0.01'])
    """
    refused, accepted = [], []
    for key in sorted(set(kept) | set(now)):
        old, new = kept.get(key, "(unset)"), now.get(key, "(unset)")
        if old == new or _matches(key, IGNORED_KEYS):
            continue
        (refused if _matches(key, STATE_KEYS) else accepted).append(f"{key}: {old} -> {new}")
    return refused, accepted


def input_sizes(files: list[Path]) -> dict[str, int]:
    return {str(f): f.stat().st_size for f in files}


def input_changes(kept: dict[str, int], now: dict[str, int]) -> list[str]:
    """One line per input file that is new, gone, or of another size than when the run started.

    >>> input_changes({"/in/a.jsonl": 100, "/in/b.jsonl": 50}, {"/in/a.jsonl": 120, "/in/c.jsonl": 9})
    ['/in/a.jsonl grew from 100 to 120 bytes', '/in/b.jsonl is gone (it had 50 bytes)', '/in/c.jsonl is new (9 bytes)']
    """
    lines = []
    for name in sorted(set(kept) | set(now)):
        old, new = kept.get(name), now.get(name)
        if old is None:
            lines.append(f"{name} is new ({new} bytes)")
        elif new is None:
            lines.append(f"{name} is gone (it had {old} bytes)")
        elif old != new:
            lines.append(f"{name} {'grew' if new > old else 'shrank'} from {old} to {new} bytes")
    return lines
