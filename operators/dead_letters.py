"""Flink metrics per dead-letter reason, so operators see bad input live (web UI, REST, reporters).

Each rejected record increments ``dead_letters.<reason>`` on the operator that rejected it;
the run summary counts the same reasons from the committed dead-letter output.
"""

from __future__ import annotations

from pyflink.metrics import MetricGroup

from udfs.features.events import DeadLetter


class DeadLetterCounters:
    def __init__(self, metrics: MetricGroup) -> None:
        self.group = metrics.add_group("dead_letters")
        self.counters: dict = {}

    def count(self, letter: DeadLetter) -> str:
        """Counts ``letter`` under its reason and returns the JSON record for the side output."""
        if letter.reason not in self.counters:
            self.counters[letter.reason] = self.group.counter(letter.reason)
        self.counters[letter.reason].inc()
        return letter.to_json()
