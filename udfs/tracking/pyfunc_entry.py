"""What MLflow runs to load a registered snapshot model ("models from code"): nothing is unpickled."""

from mlflow.models import set_model

from udfs.tracking.pyfunc_model import SnapshotModel

set_model(SnapshotModel())
