"""The benchmark's stand-in for features, training and scoring: one trivial Python call per event."""

from udfs.events import Event
from udfs.scoring import prediction_json
from udfs.user_features import FeatureRow


def constant_prediction(event: Event) -> str:
    row = FeatureRow(event.event_id, event.user_id, event.event_time, event.label, (), ())
    return prediction_json(row, 0.5, 0)
