"""A model snapshot as an MLflow pyfunc model, loadable with ``mlflow.pyfunc.load_model``.

Input: a DataFrame with the snapshot's dense feature columns (``dense_names``; missing columns
or NaN mean "unknown") and, optionally, one-hot categorical columns ``hash_bucket_<i>``; for a
model with id buckets (``model.kind=fm``) also ``user_id`` and ``item_id``, hashed as the job does.
Output: the positive-class probability per row, identical to what the job scored.

The model is saved as code (``pyfunc_entry.py`` names the class), not as a pickled object, with a
signature and an input example, so that MLflow shows the columns and pickles nothing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema

from udfs.features.user_features import id_bucket_columns
from udfs.learning.model import Model

SNAPSHOT_ARTIFACT = "snapshot"
UDFS_DIR = Path(__file__).resolve().parents[1]  # shipped whole with each model: it imports across udfs/
ENTRY = Path(__file__).with_name("pyfunc_entry.py")
PIP_REQUIREMENTS = ["mlflow", "numpy", "pandas", "scipy", "torch==2.13.0"]
ID_COLUMNS = ("user_id", "item_id")  # inputs of models with id buckets (model.kind=fm)


def bucket_columns(hash_buckets: int) -> list[str]:
    return [f"hash_bucket_{i}" for i in range(hash_buckets)]


def score_frame(snapshot: dict[str, Any], model: Model, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities for the rows of ``frame``, exactly as the job scored them: the one-hot columns
    (and, for a model with id buckets, the hashed ``user_id`` and ``item_id``) go through the
    scaler's one design path."""
    scaler = model.scaler
    dense = frame.reindex(columns=snapshot["dense_names"]).to_numpy(dtype=float)
    onehot = frame.reindex(columns=bucket_columns(scaler.hash_buckets)).to_numpy(dtype=float)
    rows, columns = np.nonzero(np.nan_to_num(onehot, nan=0.0))
    values = onehot[rows, columns]
    if scaler.id_buckets:
        ids = id_bucket_columns(*(_ids(frame, name) for name in ID_COLUMNS), scaler.hash_buckets, scaler.id_buckets)
        present = ids >= 0
        rows = np.concatenate([rows, np.nonzero(present)[0]])
        columns, values = np.concatenate([columns, ids[present]]), np.concatenate([values, np.ones(int(present.sum()))])
    # Row-major like the job's design matrices: BLAS sums in another order over column-major ones.
    design = scaler.design_from_entries(np.ascontiguousarray(dense), rows, columns, values)
    return model.learner.predict_design(design)


def _ids(frame: pd.DataFrame, name: str) -> list[str | None]:
    """A missing column or value is no id (the row gets no one-hot for it), as for an event without one."""
    if name not in frame:
        return [None] * len(frame)
    return [None if pd.isna(v) else str(v) for v in frame[name]]


class SnapshotModel(PythonModel):
    """Scores with the parameters of one job snapshot (scaler included), whatever its model kind."""

    def load_context(self, context: PythonModelContext) -> None:
        with open(context.artifacts[SNAPSHOT_ARTIFACT]) as f:
            self.snapshot: dict[str, Any] = json.load(f)
        self.model = Model.from_parameters(self.snapshot["parameters"])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return score_frame(self.snapshot, self.model, model_input)


def save_snapshot_model(snapshot: dict[str, Any], path: Path) -> None:
    """Writes ``snapshot`` as a pyfunc model folder at ``path`` (signature, one example row)."""
    scaler = Model.from_parameters(snapshot["parameters"]).scaler
    columns = snapshot["dense_names"] + bucket_columns(scaler.hash_buckets)
    ids = list(ID_COLUMNS) if scaler.id_buckets else []
    # Every column optional: a missing one is "unknown", as in the job.
    signature = ModelSignature(inputs=Schema([ColSpec("double", name, required=False) for name in columns] +
                                             [ColSpec("string", name, required=False) for name in ids]),
                               outputs=Schema([ColSpec("double")]))
    example = pd.DataFrame([[0.0] * len(columns) + ["0"] * len(ids)], columns=columns + ids)
    with tempfile.TemporaryDirectory() as tmp:
        snapshot_file = Path(tmp, "snapshot.json")
        snapshot_file.write_text(json.dumps(snapshot))
        mlflow.pyfunc.save_model(
            path=str(path), python_model=str(ENTRY), artifacts={SNAPSHOT_ARTIFACT: str(snapshot_file)},
            code_paths=[str(UDFS_DIR)], pip_requirements=PIP_REQUIREMENTS,
            signature=signature, input_example=example,
        )
