"""Per-user memory of recent event ids, so that a re-sent event is dead-lettered, not learned twice.

Producers retry and replays overlap; a duplicate that reached the model would be counted twice
in the user's features and in the window's training batch. Ids are remembered per user (the
state is keyed by user), for ``horizon_ms`` of event time and at most ``max_ids`` per user, so
the state stays bounded; a duplicate older than that is not caught (documented in the README).

>>> guard = DuplicateGuard(horizon_ms=60_000, max_ids=3)
>>> recent: dict[str, int] = {}
>>> [guard.is_duplicate(recent, event_id, t) for event_id, t in [("a", 0), ("b", 1), ("a", 2)]]
[False, False, True]
>>> [guard.is_duplicate(recent, event_id, t) for event_id, t in [("c", 70_000), ("d", 70_001)]]
[False, False]
>>> sorted(recent)  # 'a' and 'b' fell out of the horizon
['c', 'd']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conf.settings import Settings


class DuplicateGuard:
    def __init__(self, horizon_ms: int, max_ids: int) -> None:
        self.horizon_ms = horizon_ms
        self.max_ids = max_ids

    @classmethod
    def from_settings(cls, settings: Settings) -> DuplicateGuard:
        v = settings.validation
        return cls(horizon_ms=v.dedup_horizon_ms, max_ids=v.dedup_max_ids_per_user)

    def is_duplicate(self, recent: dict[str, int], event_id: str, event_time: int) -> bool:
        """True if ``event_id`` was seen for this user; otherwise remembers it (``recent`` is mutated)."""
        if event_id in recent:
            return True
        recent[event_id] = event_time
        if len(recent) > self.max_ids:
            self._prune(recent, newest=max(recent.values()))
        return False

    def _prune(self, recent: dict[str, int], newest: int) -> None:
        for old in [i for i, t in recent.items() if t < newest - self.horizon_ms]:
            del recent[old]
        overflow = len(recent) - self.max_ids
        if overflow > 0:
            for old in sorted(recent, key=recent.__getitem__)[:overflow]:
                del recent[old]
