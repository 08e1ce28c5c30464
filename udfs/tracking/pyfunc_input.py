"""The registered model's input, built from raw events as the job builds its rows.

The model scores the job's per-user columns (the raw numeric features, the user's history, the
per-user z-scores: ``dense_names`` of the snapshot) and one-hot ``hash_bucket_<i>`` columns of the
categorical values (and, for a factorization machine, ``user_id`` and ``item_id``): not the raw event. :func:`model_input` turns raw event lines into that frame;
``states`` carries each user's history from one call to the next (a user new to it starts from
nothing, as in a fresh job).

>>> from conf.settings import load_settings
>>> settings = load_settings(overrides=["features.numeric=[amount]", "features.categorical=[device]",
...                                     "features.hash_buckets=4"])
>>> lines = ['{"event_id": "e1", "user_id": "u1", "event_time": 1700000000000, "features": {"amount": 3, "device": "ios"}}']
>>> frame = model_input(lines, settings)
>>> list(frame.columns)[:3], list(frame.columns)[-4:], float(frame.loc["e1", "amount"])
(['amount', 'user_event_count_log', 'user_seconds_since_prev_log'], ['hash_bucket_0', 'hash_bucket_1', 'hash_bucket_2', 'hash_bucket_3'], 3.0)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from udfs.features.events import DeadLetter, EventValidator
from udfs.features.user_features import UserFeatureExtractor, UserState

if TYPE_CHECKING:  # not imported at run time: a registered model ships udfs/ only
    from conf.settings import Settings


def bucket_columns(hash_buckets: int) -> list[str]:
    return [f"hash_bucket_{i}" for i in range(hash_buckets)]


def model_input(lines: Iterable[str], settings: Settings, states: dict[str, UserState] | None = None) -> pd.DataFrame:
    """One row per event line (JSON, as the job reads it), indexed by event id, in the given order.

    ``settings``: the run's (its ``features.*`` params in MLflow name the columns); an event the job
    would dead-letter raises ValueError with the reason.
    """
    validator, extractor = EventValidator.from_settings(settings), UserFeatureExtractor.from_settings(settings)
    events = []
    for line in lines:
        parsed = validator.parse(line)
        if isinstance(parsed, DeadLetter):
            raise ValueError(f"{parsed.reason}: {parsed.detail} ({parsed.raw[:200]})")
        events.append(parsed)
    states = {} if states is None else states
    for event in events:
        states.setdefault(event.user_id, UserState.new(len(extractor.numeric)))
    dense, buckets = extractor.featurize_batch(events, states)
    frame = pd.DataFrame(dense, columns=extractor.dense_names, index=[e.event_id for e in events])
    categorical = buckets[:, :len(extractor.categorical)]  # the id buckets of an FM follow: it takes the ids
    onehot = np.zeros((len(events), extractor.hash_buckets))
    rows, columns = np.nonzero(categorical >= 0)
    np.add.at(onehot, (rows, categorical[rows, columns]), 1.0)
    parts = [frame, pd.DataFrame(onehot, columns=bucket_columns(extractor.hash_buckets), index=frame.index)]
    if settings.model.id_buckets:
        parts.append(pd.DataFrame({"user_id": [e.user_id for e in events], "item_id": [e.item_id for e in events]},
                                  index=frame.index))
    return pd.concat(parts, axis=1)
