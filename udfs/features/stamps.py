"""The watermark a front's record carries (its ``stamp``): how far its splits have been read.

Flink SQL makes the job's watermark from the stamps. A stamp is a split's progress (its newest
event less the out-of-orderness bound, udfs/features/events.py ``LatenessGuard.progress``) kept
within the valid event times: before any event is read it is just below the earliest valid time,
and once every split is read to its end just above the latest, so that every slice closes.

>>> stamps = Stamps(floor=99, ceiling=1001)
>>> stamps.of(None), stamps.of(500), stamps.of(2**63 - 1)
(99, 500, 1001)
"""

from __future__ import annotations

from dataclasses import dataclass

from udfs.features.events import EventValidator


@dataclass(frozen=True)
class Stamps:
    floor: int  # nothing read yet
    ceiling: int  # all read

    @classmethod
    def from_validator(cls, validator: EventValidator) -> Stamps:
        return cls(validator.min_event_time - 1, validator.max_event_time + 1)

    def of(self, watermark: int | None) -> int:
        return self.floor if watermark is None else min(max(watermark, self.floor), self.ceiling)
