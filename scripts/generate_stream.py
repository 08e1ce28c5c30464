"""Write a generated interaction stream as JSONL.

    python scripts/generate_stream.py --out events.jsonl --events 50000 --seed 3 \
        --concept-drift-at-s 5400 --covariate-shift amount:5400:1.0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run as a plain script from anywhere: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from udfs.stream_generator import CovariateShift, StreamSpec, generate_events, write_jsonl  # noqa: E402


def covariate_shift(text: str) -> CovariateShift:
    try:
        feature, at_s, delta = text.split(":")
        return CovariateShift(feature, float(at_s), float(delta))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FEATURE:AT_SECONDS:DELTA_STD, e.g. amount:5400:1.0")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--users", type=int, default=2_000)
    p.add_argument("--duration-s", type=float, default=3 * 3600.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--numeric", type=int, default=6)
    p.add_argument("--categorical", type=int, default=2)
    p.add_argument("--labeled-fraction", type=float, default=0.8)
    p.add_argument("--concept-drift-at-s", type=float)
    p.add_argument("--covariate-shift", type=covariate_shift, action="append", default=[])
    a = p.parse_args(argv)
    spec = StreamSpec(n_events=a.events, n_users=a.users, duration_s=a.duration_s, seed=a.seed,
                      n_numeric=a.numeric, n_categorical=a.categorical, labeled_fraction=a.labeled_fraction,
                      concept_drift_at_s=a.concept_drift_at_s, covariate_shifts=tuple(a.covariate_shift))
    step = max(a.events // 10, 1)

    def with_progress():
        for i, event in enumerate(generate_events(spec), 1):
            if i % step == 0:
                print(f"  {i}/{a.events} events", file=sys.stderr)
            yield event

    count = write_jsonl(with_progress(), a.out)
    print(f"wrote {count} events to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
