"""The snapshot a job starts from instead of an untrained model (``model.warm_start``).

The client resolves an MLflow URI to a local snapshot file before the job starts
(jobs/mlflow_run.py), so operators only ever read a JSON file here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conf.settings import Settings


def warm_snapshot(settings: Settings) -> dict[str, Any] | None:
    """The starting snapshot, or None to start from zero."""
    if settings.model.warm_start is None:
        return None
    return json.loads(Path(settings.model.warm_start).read_text())


def check_compatible(snapshot: dict[str, Any], dense_names: list[str], hash_buckets: int, kind: str,
                     where: str, id_buckets: int = 0) -> None:
    """A model of other features or of another kind cannot go on learning here: say which setting differs."""
    snapshot_kind = snapshot["parameters"].get("kind", "logistic")
    if snapshot_kind != kind:
        raise ValueError(f"model.warm_start={where}: the model is of kind {snapshot_kind!r}, model.kind is {kind!r}")
    if snapshot["dense_names"] != dense_names or snapshot["parameters"]["hash_buckets"] != hash_buckets:
        raise ValueError(f"model.warm_start={where}: the model was trained on other features "
                         f"({len(snapshot['dense_names'])} dense, {snapshot['parameters']['hash_buckets']} buckets) "
                         f"than features.numeric/features.categorical/features.hash_buckets give "
                         f"({len(dense_names)} dense, {hash_buckets} buckets)")
    trained_ids = snapshot["parameters"].get("id_buckets", 0)
    if trained_ids != id_buckets:
        raise ValueError(f"model.warm_start={where}: the model hashes ids into {trained_ids} buckets, "
                         f"model.fm.id_buckets gives {id_buckets}")
