"""A model snapshot as an MLflow pyfunc model, loadable with ``mlflow.pyfunc.load_model``.

Input: a DataFrame with the snapshot's dense feature columns (``dense_names``; missing columns
or NaN mean "unknown") and, optionally, one-hot categorical columns ``hash_bucket_<i>``, numbers of
any dtype; for a model with id buckets (``model.kind=fm``) also ``user_id`` and ``item_id``, hashed
as the job does. ``udfs.tracking.pyfunc_input.model_input`` builds it from raw events. Any other
column is refused (a misspelled or raw column would otherwise be scored as "unknown", silently).
Output: the positive-class probability per row, identical to what the job scored.

The model is saved as code (``pyfunc_entry.py`` names the class), not as a pickled object, with an
input example that shows the columns, and pickles nothing. Its signature declares the output only:
MLflow's input check refuses int64 columns for double ones and merely warns about unknown ones,
so the model checks its input itself.
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
from udfs.tracking.pyfunc_input import bucket_columns

SNAPSHOT_ARTIFACT = "snapshot"
UDFS_DIR = Path(__file__).resolve().parents[1]  # shipped whole with each model: it imports across udfs/
ENTRY = Path(__file__).with_name("pyfunc_entry.py")
PIP_REQUIREMENTS = ["mlflow", "numpy", "pandas", "scipy", "torch==2.13.0"]
ID_COLUMNS = ("user_id", "item_id")  # inputs of models with id buckets (model.kind=fm)


def score_frame(snapshot: dict[str, Any], model: Model, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities for the rows of ``frame``, exactly as the job scored them: the one-hot columns
    (and, for a model with id buckets, the hashed ``user_id`` and ``item_id``) go through the
    scaler's one design path."""
    scaler = model.scaler
    ids = list(ID_COLUMNS) if scaler.id_buckets else []
    known = snapshot["dense_names"] + bucket_columns(scaler.hash_buckets) + ids
    unknown = [str(c) for c in frame.columns if c not in set(known)]
    if unknown:
        raise ValueError(f"unknown input columns {unknown[:10]}: the model takes the per-user columns "
                         f"{snapshot['dense_names']}, hash_bucket_0..hash_bucket_{scaler.hash_buckets - 1}"
                         f"{' and ' + ', '.join(ids) if ids else ''}; "
                         "build them from raw events with udfs.tracking.pyfunc_input.model_input")
    not_numbers = [str(c) for c in frame.columns if c not in ids and not pd.api.types.is_numeric_dtype(frame[c])]
    if not_numbers:
        raise ValueError(f"input columns {not_numbers[:10]} are not numbers: categorical values go in as one-hot "
                         "hash_bucket_<i> columns (udfs.tracking.pyfunc_input.model_input)")
    dense = frame.reindex(columns=snapshot["dense_names"]).to_numpy(dtype=float)
    onehot = frame.reindex(columns=bucket_columns(scaler.hash_buckets)).to_numpy(dtype=float)
    rows, columns = np.nonzero(np.nan_to_num(onehot, nan=0.0))
    values = onehot[rows, columns]
    if scaler.id_buckets:
        ids_at = id_bucket_columns(*(_ids(frame, name) for name in ID_COLUMNS), scaler.hash_buckets,
                                   scaler.id_buckets)
        present = ids_at >= 0
        rows = np.concatenate([rows, np.nonzero(present)[0]])
        columns = np.concatenate([columns, ids_at[present]])
        values = np.concatenate([values, np.ones(int(present.sum()))])
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
    signature = ModelSignature(outputs=Schema([ColSpec("double")]))  # the input: checked by score_frame
    example = pd.DataFrame([[0.0] * len(columns) + ["0"] * len(ids)], columns=columns + ids)
    with tempfile.TemporaryDirectory() as tmp:
        snapshot_file = Path(tmp, "snapshot.json")
        snapshot_file.write_text(json.dumps(snapshot))
        mlflow.pyfunc.save_model(
            path=str(path), python_model=str(ENTRY), artifacts={SNAPSHOT_ARTIFACT: str(snapshot_file)},
            code_paths=[str(UDFS_DIR)], pip_requirements=PIP_REQUIREMENTS,
            signature=signature, input_example=example,
        )
