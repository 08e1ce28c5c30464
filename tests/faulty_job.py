"""The job with a fault the tests inject: an operator that fails once, or a corrupted candidate model.

    python -m tests.faulty_job --fail user-features --after 15000 [--fail-close predictor] [job arguments]
    python -m tests.faulty_job --corrupt-candidate-at 10 [job arguments]
    python -m tests.faulty_job --slow-reader 100 [job arguments]

Production code carries no fault hook: this swaps an operator class of the job's graph for a
subclass before the graph is built. Run as ``-m``, the subclasses are defined in ``__main__``, so
PyFlink ships them to the workers by value.

- ``--fail``: the first subtask to pass ``--after`` records leaves a marker file in the job's
  checkpoint folder and raises; after the restart the marker stops it failing again.
- ``--fail-close``: when that failure cancels the other tasks, this operator's ``close()`` raises
  (once). Flink cannot clean the cancelled task up and stops its TaskManager, as a process-mode
  Python operator cancelled with a bundle in flight now and then does (Beam's "Reference count
  must not be negative").
- ``--corrupt-candidate-at N``: the trainer makes window N's candidate confidently wrong, for
  tests of the gate and rollback (library-mode tests use :func:`corrupting_trainer` directly).
- ``--slow-reader MS``: the front waits MS milliseconds (a float) before each chunk (file readers)
  or each line (the stream triage), so that a test's stop or failure lands mid-stream however fast
  the machine reads (a stop needs every task running, and the readers outrun the rest by far).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pyflink.datastream.functions import RuntimeContext

from jobs import online_learning, pipeline
from udfs.features.feature_batch import FeatureBatch
from udfs.features.slice_batches import batch_events
from udfs.learning.learner import TrainParams
from udfs.learning.window_trainer import TrainerState, WindowTrainer

# operator -> (its class in jobs.pipeline, the method that receives records, records in one call)
FAULTS: dict[str, tuple[str, str, Callable[[Any], int]]] = {
    "reader": ("ReadChunks", "process_element", lambda chunk: 1),  # counts chunks, not lines
    "triage": ("TriageStream", "process_element", lambda line: 1),  # the Kafka and hybrid front
    "user-features": ("UserFeatures", "process_element", lambda batch: len(batch_events(batch.events))),
    "trainer": ("TrainOnWindows", "process_element", lambda keyed: len(keyed[1])),
    "predictor": ("ScoreEvents", "process_element", lambda keyed: len(keyed[1])),
}


# In the job's checkpoint folder: an injected failure happened (operator name, or a glob's "*").
FAILURE_MARKER = "injected-failure-{}"


class InjectedFailure(RuntimeError):
    pass


def completed_checkpoints(folder: Path) -> set[Path]:
    return {metadata.parent for metadata in folder.glob("*/chk-*/_metadata")}


def failing_once(operator: str, after: int, after_a_checkpoint: bool = False) -> type:
    """The operator's class, raising once after ``after`` records (and, with ``after_a_checkpoint``,
    once the job has completed a checkpoint since this subtask started)."""
    class_name, method, records = FAULTS[operator]
    base = getattr(pipeline, class_name)
    original = getattr(base, method)

    def checkpointed(self: Any) -> bool:
        seen = completed_checkpoints(self.settings.checkpoint_dir())
        if not hasattr(self, "injected_before"):
            self.injected_before = seen
        return bool(seen - self.injected_before)

    def process(self: Any, first: Any, *rest: Any) -> Any:
        self.injected_seen = getattr(self, "injected_seen", 0) + records(first)
        marker = self.settings.checkpoint_dir() / FAILURE_MARKER.format(operator)
        ready = not after_a_checkpoint or checkpointed(self)
        if self.injected_seen >= after and ready and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(self.injected_seen))
            raise InjectedFailure(f"injected failure in '{operator}' after {self.injected_seen} records")
        return original(self, first, *rest)

    return type(f"FailingOnce{class_name}", (base,), {method: process})


def closing_fails_once(operator: str) -> type:
    """The operator's class, whose ``close()`` raises the first time it runs after an injected failure."""
    base = getattr(pipeline, FAULTS[operator][0])

    def close(self: Any) -> None:
        base.close(self)
        folder = self.settings.checkpoint_dir()
        marker = folder / f"injected-close-failure-{operator}"
        if any(folder.glob(FAILURE_MARKER.format("*"))) and not marker.exists():
            marker.write_text("")
            raise InjectedFailure(f"injected failure in '{operator}' while it is cleaned up")

    return type(f"ClosingFailsOnce{base.__name__}", (base,), {"close": close})


def corrupting_trainer(at_window: int) -> type[WindowTrainer]:
    """The window trainer, with the candidate of window ``at_window`` made confidently wrong."""

    class CorruptingTrainer(WindowTrainer):
        def train_candidate(self, state: TrainerState, rows: FeatureBatch, train: np.ndarray,
                            params: TrainParams) -> list[dict[str, Any]]:
            decisions = super().train_candidate(state, rows, train, params)
            if state.windows == at_window:
                state.model.learner.corrupt()
                decisions.append({"kind": "corrupted_for_test", "reason": f"the test corrupts window {at_window}"})
            return decisions

    return CorruptingTrainer


def corrupting_operator(at_window: int) -> type:
    """The trainer operator, training with :func:`corrupting_trainer`."""
    trainer = corrupting_trainer(at_window)

    class CorruptingTrainOnWindows(pipeline.TrainOnWindows):
        def open(self, runtime_context: RuntimeContext) -> None:
            super().open(runtime_context)
            self.trainer = trainer(self.settings, self.dense_names)

    return CorruptingTrainOnWindows


def slowed(class_name: str, delay_ms: float) -> type:
    """A front operator's class (``ReadChunks``, ``TriageStream``), waiting ``delay_ms`` before each record."""
    base = getattr(pipeline, class_name)

    def process_element(self: Any, record: Any, ctx: Any) -> Any:
        time.sleep(delay_ms / 1000)
        return base.process_element(self, record, ctx)

    return type(f"Slow{class_name}", (base,), {"process_element": process_element})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail", choices=sorted(FAULTS), help="the operator that fails once")
    parser.add_argument("--after", type=int, default=1, help="records it handles before it fails")
    parser.add_argument("--after-a-checkpoint", action="store_true",
                        help="fail only once the job has completed a checkpoint since the operator started")
    parser.add_argument("--fail-close", choices=sorted(FAULTS),
                        help="the operator whose close() fails when --fail's failure cancels it (stops its TaskManager)")
    parser.add_argument("--corrupt-candidate-at", type=int, metavar="WINDOW", help="the window whose candidate is corrupted")
    parser.add_argument("--slow-reader", type=float, metavar="MS",
                        help="the front waits this long before each chunk (files) or line (Kafka, hybrid)")
    args, job_args = parser.parse_known_args(argv)
    if args.fail_close and args.fail_close == args.fail:
        parser.error("--fail-close needs an operator other than --fail's: that one fails, it is not cancelled")
    if args.slow_reader:  # before --fail, which subclasses the slowed front
        for front in ("ReadChunks", "TriageStream"):
            setattr(pipeline, front, slowed(front, args.slow_reader))
    if args.fail:
        setattr(pipeline, FAULTS[args.fail][0], failing_once(args.fail, args.after, args.after_a_checkpoint))
    if args.fail_close:
        setattr(pipeline, FAULTS[args.fail_close][0], closing_fails_once(args.fail_close))
    if args.corrupt_candidate_at:
        pipeline.TrainOnWindows = corrupting_operator(args.corrupt_candidate_at)
    return online_learning.main(job_args)


if __name__ == "__main__":
    sys.exit(main())
