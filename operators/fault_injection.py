"""Fail an operator once, mid-stream, so that tests can watch Flink recover from a checkpoint.

Set ``job.fail_once_after_records`` (and ``job.fail_once_operator``). The first subtask to
reach the count leaves a marker file in the job's checkpoint folder and raises; after the
restart the marker stops it from failing again. Without the setting ``tick`` does nothing.
"""

from __future__ import annotations

from conf.settings import Settings


class InjectedFailure(RuntimeError):
    pass


class FailOnce:
    def __init__(self, settings: Settings, operator: str) -> None:
        job = settings.job
        self.after = job.fail_once_after_records if job.fail_once_operator == operator else None
        self.marker = settings.checkpoint_dir() / f"injected-failure-{operator}"
        self.operator = operator
        self.seen = 0

    def tick(self, records: int = 1) -> None:
        if self.after is None:
            return
        self.seen += records
        if self.seen >= self.after and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text(str(self.seen))
            raise InjectedFailure(f"injected failure in '{self.operator}' after {self.seen} records "
                                  "(job.fail_once_after_records)")
