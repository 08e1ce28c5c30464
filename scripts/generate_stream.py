"""Write a generated stream of user interactions as JSONL (one event per line).

    python scripts/generate_stream.py --out events.jsonl --events 50000 --seed 3 \\
        --concept-drift-at-s 5400 --covariate-shift amount:5400:1.0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from udfs.sim.stream_generator import CovariateShift, StreamSpec, generate_events, write_jsonl


def covariate_shift(text: str) -> CovariateShift:
    """``FEATURE:AT_S:DELTA_STD`` -> :class:`CovariateShift`."""
    try:
        feature, at_s, delta_std = text.split(":")
        return CovariateShift(feature, float(at_s), float(delta_std))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FEATURE:AT_S:DELTA_STD, e.g. amount:5400:1.0") from None


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, StreamSpec]:
    defaults = StreamSpec()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="JSONL file to write (parent folders are created)")
    p.add_argument("--events", type=int, default=defaults.n_events)
    p.add_argument("--users", type=int, default=defaults.n_users)
    p.add_argument("--duration-s", type=float, default=defaults.duration_s, help="event-time span of the stream")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--numeric", type=int, default=defaults.n_numeric, help="numeric feature count")
    p.add_argument("--categorical", type=int, default=defaults.n_categorical,
                   help="categorical feature count (the bool is_returning comes on top)")
    p.add_argument("--labeled-fraction", type=float, default=defaults.labeled_fraction)
    p.add_argument("--concept-drift-at-s", type=float, help="seconds after the start when the label model changes")
    p.add_argument("--covariate-shift", type=covariate_shift, action="append", default=[],
                   metavar="FEATURE:AT_S:DELTA_STD", help="shift a numeric feature from AT_S on (repeatable)")
    args = p.parse_args(argv)
    try:
        spec = StreamSpec(n_events=args.events, n_users=args.users, duration_s=args.duration_s, seed=args.seed,
                          n_numeric=args.numeric, n_categorical=args.categorical,
                          labeled_fraction=args.labeled_fraction, concept_drift_at_s=args.concept_drift_at_s,
                          covariate_shifts=tuple(args.covariate_shift))
    except ValueError as e:
        p.error(str(e))
    return args, spec


def with_progress(events: Iterator[dict[str, Any]], total: int) -> Iterator[dict[str, Any]]:
    """Pass events through, reporting every 10% on stderr (stdout stays for the result line)."""
    step = max(total // 10, 1)
    for i, event in enumerate(events, 1):
        yield event
        if i % step == 0:
            print(f"  {i}/{total} events ({100 * i // total}%)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args, spec = parse_args(argv)
    count = write_jsonl(with_progress(generate_events(spec), spec.n_events), args.out)
    print(f"wrote {count} events to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
