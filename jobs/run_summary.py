"""Reads a finished run's committed outputs back and condenses them into the printed summary."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from udfs.features.schema import FeatureSchema

LATE_WINDOW_FROM = 10  # "after warm-up": windows 10+ are where learning is judged


def read_jsonl_dir(path: Path) -> Iterator[dict[str, Any]]:
    """Records of committed part files only (Flink keeps in-progress files hidden with a '.')."""
    for part in sorted(path.rglob("*.jsonl")):
        if part.name.startswith("."):
            continue
        with part.open() as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def read_snapshots(out: Path) -> list[dict[str, Any]]:
    """The run's committed model snapshots, oldest window first."""
    return sorted(read_jsonl_dir(out / "snapshots"), key=lambda s: s["window_end"])


def summarize(out: Path, snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and quality figures of a finished run; ``snapshots`` as :func:`read_snapshots` gives them."""
    predictions = Counter()
    n_predictions = 0
    event_ids = set()
    for p in read_jsonl_dir(out / "predictions"):
        n_predictions += 1
        predictions[p["model_version"]] += 1
        event_ids.add(p["event_id"])
    dead = Counter(d["reason"] for d in read_jsonl_dir(out / "dead_letters"))
    drift = list(read_jsonl_dir(out / "drift"))
    windows = [s for s in snapshots if s.get("update", "window") == "window"]
    return {
        "predictions": n_predictions,
        "duplicate_predictions": n_predictions - len(event_ids),
        "windows": len(windows),
        "slot_updates": len(snapshots) - len(windows),
        "latest_model_version": snapshots[-1]["version"] if snapshots else 0,
        "models_served": len(predictions),
        "decisions": dict(Counter(d["kind"] for s in snapshots for d in s.get("decisions", ())
                                  if d["kind"] not in ("gate_passed", "gate_skipped"))),
        "all_windows": _quality([s["metrics"] for s in windows]),
        f"windows_{LATE_WINDOW_FROM}_plus": _quality([s["metrics"] for s in windows[LATE_WINDOW_FROM:]]),
        "drift_events": len(drift),
        "drift_by_name": dict(Counter(f"{d['kind']}:{d['name']}" for d in drift)),
        "dead_letters": sum(dead.values()),
        "dead_letters_by_reason": dict(dead),
        "constant_dense_columns": constant_dense_columns(snapshots),
    }


def too_few_valid(summary: dict[str, Any], min_share: float) -> str | None:
    """Why the run failed if fewer than ``min_share`` of the events it read were valid (the top dead-letter
    reasons), else None: a run that rejected its input must not end as a success.

    >>> too_few_valid({"predictions": 1, "dead_letters": 9, "dead_letters_by_reason": {"bad_label": 9}}, 0.5)
    'only 10.0% of the 10 events read were valid (validation.min_valid_share=0.5); dead letters: bad_label x 9'
    >>> print(too_few_valid({"predictions": 6, "dead_letters": 4, "dead_letters_by_reason": {"late": 4}}, 0.5))
    None
    """
    read = summary["predictions"] + summary["dead_letters"]
    if read == 0 or summary["predictions"] >= min_share * read:
        return None
    top = Counter(summary["dead_letters_by_reason"]).most_common(3)
    return (f"only {summary['predictions'] / read:.1%} of the {read:,} events read were valid "
            f"(validation.min_valid_share={min_share}); dead letters: {', '.join(f'{r} x {n:,}' for r, n in top)}")


def constant_dense_columns(snapshots: list[dict[str, Any]]) -> list[str]:
    """Dense columns (raw and per-user features alike) whose value never varied over the whole run:
    the model's scaler variance is zero in every window's snapshot, so they carry no signal.

    >>> snap = {"dense_names": ["a", "user_item_affinity"], "parameters": {"scaler_var": [0.7, 0.0]}}
    >>> constant_dense_columns([snap, snap])
    ['user_item_affinity']
    """
    if not snapshots:
        return []
    variances = np.array([s["parameters"]["scaler_var"] for s in snapshots])
    return [name for name, constant in zip(snapshots[-1]["dense_names"], (variances < 1e-12).all(axis=0)) if constant]


def _quality(metrics: list[dict[str, float]]) -> dict[str, float | None]:
    """Example-weighted prequential logloss/accuracy; AUC averaged over windows that have it."""
    scored = [m for m in metrics if "logloss" in m]
    if not scored:
        return {"examples": 0, "logloss": None, "baseline_logloss": None, "accuracy": None, "auc": None}
    weights = np.array([m["examples"] for m in scored])
    avg = lambda key: float(np.average([m[key] for m in scored], weights=weights))  # noqa: E731
    aucs = [m["auc"] for m in scored if "auc" in m]
    return {
        "examples": int(weights.sum()),
        "logloss": avg("logloss"),
        "baseline_logloss": avg("baseline_logloss"),
        "accuracy": avg("accuracy"),
        "auc": float(np.mean(aucs)) if aucs else None,
    }


def format_summary(summary: dict[str, Any]) -> str:
    late = summary[f"windows_{LATE_WINDOW_FROM}_plus"]
    overall = summary["all_windows"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    duplicates = summary.get("duplicate_predictions", 0)
    done = summary["predictions"] + summary["dead_letters"]
    lines = [
        f"events           {done} read, {summary['predictions']} valid and scored "
        + (f"({duplicates} of them predicted twice or more)" if duplicates else "(one prediction each)"),
        f"windows          {summary['windows']} (one candidate model each, plus {summary['slot_updates']} fast-mode "
        f"slot updates; {summary['models_served']} served, the last is version {summary['latest_model_version']})",
        f"logloss          {fmt(overall['logloss'])} prequential, base-rate predictor {fmt(overall['baseline_logloss'])}",
        f"  windows {LATE_WINDOW_FROM}+     {fmt(late['logloss'])} vs base rate {fmt(late['baseline_logloss'])}",
        f"AUC              {fmt(overall['auc'])} (windows {LATE_WINDOW_FROM}+: {fmt(late['auc'])})",
        f"accuracy         {fmt(overall['accuracy'])}",
        f"drift events     {summary['drift_events']} {summary['drift_by_name'] or ''}",
        f"dead letters     {summary['dead_letters']} {summary['dead_letters_by_reason'] or ''}",
        f"decisions        {summary['decisions'] or 'none (no gate block, adaptation or rollback)'}",
    ]
    if summary.get("input_lines") and summary["input_lines"] != done:
        lines.append(f"warning          the input has {summary['input_lines']} lines, {done} are predicted or "
                     "dead-lettered")
    if "schema" in summary:  # its "features" line was printed at start-up
        lines += [f"warning          {warning}" for warning in FeatureSchema.from_json(summary["schema"]).warnings]
    lines += [f"warning          dense column '{name}' was constant in every window of the run: it carries no signal"
              for name in summary.get("constant_dense_columns", ())]
    return "\n".join(lines)
