"""Per-user features for a batch of lines of one user shard and event-time slice.

Keyed by shard; each user's state is one entry of the shard's MapState, read once and written
once per batch. The feature rows go to the predictor whole, and to the trainer as the lowest-hashed
rows of each slot (a side output: udfs/learning/row_sample.py), so the single trainer's input stays
bounded whatever the stream's rate. Raising parallelism (up to ``batching.shards``) splits shards, and so users,
between subtasks without changing any result. Duplicate event ids go to the dead letters.

A lookup that misses the worker's state cache is a round trip to the JVM, and a user's first
event always misses: with 100,000 users in 300,000 events those lookups took a sixth of the
per-user workers' time. So the operator keeps the ids of the users each shard has state for
(read from the state once per shard after the worker starts) and looks up only those.
"""

from __future__ import annotations

from typing import Iterator

from pyflink.common import Row, Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from conf.settings import Settings
from operators.dead_letters import DeadLetterCounters
from operators.tags import DEAD_LETTERS, TRAINING_ROWS
from udfs.features.batch_features import BatchFeaturizer
from udfs.features.slice_batches import batch_events
from udfs.learning.row_sample import training_sample


class UserFeatures(KeyedProcessFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, runtime_context: RuntimeContext) -> None:
        self.featurizer = BatchFeaturizer.from_settings(self.settings)
        self.slot, self.per_slot = self.settings.window.slot_ms, self.settings.window.training_rows_per_slot
        self.dead_letters = DeadLetterCounters(runtime_context.get_metrics_group())
        self.users = runtime_context.get_map_state(MapStateDescriptor("users", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.known_users: dict[int, set[str]] = {}  # shard -> the users with an entry in its state

    def process_element(self, batch: Row, ctx: KeyedProcessFunction.Context) -> Iterator:
        """``batch``: (shard, the slice's events: udfs/features/slice_batches.py), each already validated and timely."""
        events = batch_events(batch.events)
        known = self._known_users(ctx.get_current_key())
        states = {user: self.users.get(user) for user in {e.user_id for e in events} & known}
        featurized = self.featurizer.featurize(events, states)
        for user, state in states.items():  # not put_all: process and thread mode take different arguments
            self.users.put(user, state)
        known.update(states)
        for letter in featurized.dead_letters:
            yield DEAD_LETTERS, self.dead_letters.count(letter)
        yield TRAINING_ROWS, (batch.shard, training_sample(featurized.batch, self.slot, self.per_slot))
        yield batch.shard, featurized.batch

    def _known_users(self, shard: int) -> set[str]:
        """The users of ``shard`` with a state entry: read from the state on the shard's first batch
        since the worker started (after a restore too), kept up to date from then on."""
        known = self.known_users.get(shard)
        if known is None:
            known = self.known_users[shard] = set(self.users.keys())
        return known
