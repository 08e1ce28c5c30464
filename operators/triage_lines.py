"""Raw lines -> (user shard, event time, compact event) for the Java-side batching, or a dead letter.

A vectorised (pandas) Python function: Flink hands it thousands of lines per call as an Arrow
column, so the first Python stage costs no per-event crossing. It validates every line and
judges lateness in arrival order (udfs.features.events.LineTriage); what it accepts gets the event time
that Flink SQL then uses for watermarks and event-time slices.
"""

from __future__ import annotations

import pandas as pd
from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction

from conf.settings import Settings
from operators.dead_letters import DeadLetterCounters
from udfs.features.events import DeadLetter, LineTriage
from udfs.features.slice_batches import user_shard

TRIAGE_TYPE = DataTypes.ROW([
    DataTypes.FIELD("shard", DataTypes.INT()),
    DataTypes.FIELD("event_time", DataTypes.BIGINT()),
    DataTypes.FIELD("dead_letter", DataTypes.STRING()),
    DataTypes.FIELD("event", DataTypes.STRING()),  # the valid event, compact (Event.to_compact)
])


class TriageLines(ScalarFunction):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open(self, function_context: FunctionContext) -> None:
        self.triage = LineTriage.from_settings(self.settings)
        self.shards = self.settings.batching.shards
        self.dead_letters = DeadLetterCounters(function_context.get_metric_group())

    def eval(self, lines: pd.Series) -> pd.DataFrame:
        shards, times, letters, events = [], [], [], []
        for raw in lines:
            result = self.triage.check(raw)
            if isinstance(result, DeadLetter):
                shards.append(None)
                times.append(None)
                letters.append(self.dead_letters.count(result))
                events.append(None)
            else:
                shards.append(user_shard(result.user_id, self.shards))
                times.append(result.event_time)
                letters.append(None)
                events.append(result.to_compact())
        return pd.DataFrame({"shard": pd.Series(shards, dtype=object), "event_time": pd.Series(times, dtype=object),
                             "dead_letter": pd.Series(letters, dtype=object), "event": pd.Series(events, dtype=object)})
