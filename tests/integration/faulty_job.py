"""The job with one of its operators made to fail once, mid-stream: tests of checkpoint recovery.

    python -m tests.integration.faulty_job --fail user-features --after 15000 [job arguments]

Production code carries no fault hook: this swaps an operator class of the job's graph for a
subclass before the graph is built. The subclass is defined here, in ``__main__``, so PyFlink
ships it to the workers by value. The first subtask to pass ``--after`` records leaves a marker
file in the job's checkpoint folder and raises; after the restart the marker stops it failing again.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from jobs import online_learning, pipeline
from operators.user_features import LINE_SEPARATOR

# operator -> (its class in jobs.pipeline, the method that receives records, records in one call)
FAULTS: dict[str, tuple[str, str, Callable[[Any], int]]] = {
    "parse": ("TriageLines", "eval", len),
    "user-features": ("UserFeatures", "process_element", lambda batch: batch.lines.count(LINE_SEPARATOR) + 1),
    "trainer": ("TrainOnWindows", "process_element", lambda keyed: len(keyed[1])),
    "predictor": ("ScoreEvents", "process_element", lambda keyed: len(keyed[1])),
}


class InjectedFailure(RuntimeError):
    pass


def failing_once(operator: str, after: int) -> type:
    """The operator's class, raising once after ``after`` records."""
    class_name, method, records = FAULTS[operator]
    base = getattr(pipeline, class_name)
    original = getattr(base, method)

    def process(self: Any, first: Any, *rest: Any) -> Any:
        self.injected_seen = getattr(self, "injected_seen", 0) + records(first)
        marker = self.settings.checkpoint_dir() / f"injected-failure-{operator}"
        if self.injected_seen >= after and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(self.injected_seen))
            raise InjectedFailure(f"injected failure in '{operator}' after {self.injected_seen} records")
        return original(self, first, *rest)

    return type(f"FailingOnce{class_name}", (base,), {method: process})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail", choices=sorted(FAULTS), required=True, help="the operator that fails")
    parser.add_argument("--after", type=int, required=True, help="records it handles before it fails")
    args, job_args = parser.parse_known_args(argv)
    setattr(pipeline, FAULTS[args.fail][0], failing_once(args.fail, args.after))
    return online_learning.main(job_args)


if __name__ == "__main__":
    sys.exit(main())
