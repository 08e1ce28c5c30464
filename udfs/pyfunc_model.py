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

from udfs.logistic import LogisticModel

SNAPSHOT_ARTIFACT = "snapshot"


def bucket_columns(hash_buckets: int) -> list[str]:
    return [f"hash_bucket_{i}" for i in range(hash_buckets)]


class SnapshotModel(PythonModel):
    """Scores with the parameters of one job snapshot (scaler included)."""

    def load_context(self, context: PythonModelContext) -> None:
        with open(context.artifacts[SNAPSHOT_ARTIFACT]) as f:
            self.snapshot: dict[str, Any] = json.load(f)
        self.model = LogisticModel.from_parameters(self.snapshot["parameters"])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        frame = model_input.reindex(columns=self.snapshot["dense_names"] + bucket_columns(self.model.hash_buckets))
        values = frame.to_numpy(dtype=float)
        n_dense = self.model.n_dense
        onehot = np.nan_to_num(values[:, n_dense:], nan=0.0)
        design = np.hstack([self.model.standardise(values[:, :n_dense]), onehot])
        return self.model.predict_design(design)
