"""A model snapshot as an MLflow pyfunc model, loadable with ``mlflow.pyfunc.load_model``.

Input: a DataFrame with the snapshot's dense feature columns (``dense_names``; missing columns
or NaN mean "unknown") and, optionally, one-hot categorical columns ``hash_bucket_<i>``.
Output: the positive-class probability per row, identical to what the job scored.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from udfs.model import Model

SNAPSHOT_ARTIFACT = "snapshot"


def bucket_columns(hash_buckets: int) -> list[str]:
    return [f"hash_bucket_{i}" for i in range(hash_buckets)]


class SnapshotModel(PythonModel):
    """Scores with the parameters of one job snapshot (scaler included), whatever its model kind."""

    def load_context(self, context: PythonModelContext) -> None:
        with open(context.artifacts[SNAPSHOT_ARTIFACT]) as f:
            self.snapshot: dict[str, Any] = json.load(f)
        self.model = Model.from_parameters(self.snapshot["parameters"])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        scaler = self.model.scaler
        frame = model_input.reindex(columns=self.snapshot["dense_names"] + bucket_columns(scaler.hash_buckets))
        values = frame.to_numpy(dtype=float)
        onehot = np.nan_to_num(values[:, scaler.n_dense:], nan=0.0)
        # Row-major like the job's design matrices: BLAS sums in another order over column-major ones.
        design = np.ascontiguousarray(np.hstack([scaler.standardise(values[:, :scaler.n_dense]), onehot]))
        return self.model.learner.predict_design(design)
