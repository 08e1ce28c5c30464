"""Ships window snapshots to MLflow from a background thread.

MLflow calls cost 0.05-10 s each; made on the stream's thread they would stall scoring.
``submit`` only enqueues (a bounded queue: when it is full the snapshot is dropped and
counted, logged at the end as ``reporter_dropped``); a worker thread
logs metrics per window (``step`` = model version), one JSON artifact per snapshot, and every
``register_every`` windows (and at the end) a registered pyfunc model with alias ``champion``.
"""

from __future__ import annotations

import json
import logging
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import mlflow
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from udfs.pyfunc_model import SNAPSHOT_ARTIFACT, SnapshotModel

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
_UDFS_DIR = Path(__file__).resolve().parent
_STOP = object()


def _retry(call: Callable[[], Any], what: str, attempts: int = 5, backoff_s: float = 1.0) -> Any:
    """A tracking server that blips should not lose a window: retry with growing waits."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - any client/server failure is retried the same way
            if attempt == attempts:
                raise
            log.warning("MLflow %s failed (attempt %d/%d): %s", what, attempt, attempts, exc)
            time.sleep(backoff_s * attempt)
    raise AssertionError("unreachable")


class MlflowReporter:
    def __init__(self, tracking_uri: str, run_id: str, registered_model: str,
                 register_every: int, queue_size: int) -> None:
        self.client = MlflowClient(tracking_uri)
        self.run_id = run_id
        self.registered_model = registered_model
        self.register_every = register_every
        self.pending: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.dropped = 0
        self.failures = 0
        self.last_snapshot: dict[str, Any] | None = None
        self.last_registered_version = -1
        self.thread = threading.Thread(target=self._work, name="mlflow-reporter", daemon=True)

    def start(self) -> MlflowReporter:
        self.thread.start()
        return self

    def submit(self, snapshot: dict[str, Any]) -> None:
        """Never blocks the caller."""
        try:
            self.pending.put_nowait(snapshot)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout_s: float) -> None:
        """Drain what is queued, register the newest snapshot, then stop (bounded wait)."""
        self.pending.put(_STOP)
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            log.error("MLflow reporter still busy after %.0f s; %d snapshots not logged",
                      timeout_s, self.pending.qsize())

    def _work(self) -> None:
        while (item := self.pending.get()) is not _STOP:
            self._guarded(self.log_window, item)
        if self.last_snapshot and self.last_snapshot["version"] != self.last_registered_version:
            self._guarded(self.register, self.last_snapshot)
        if self.dropped:
            self._guarded(lambda _: self.client.log_metric(self.run_id, "reporter_dropped", self.dropped), None)

    def _guarded(self, step: Callable[[Any], None], item: Any) -> None:
        try:
            step(item)
        except Exception:  # noqa: BLE001 - a reporting failure must not kill the stream
            self.failures += 1
            log.exception("MLflow reporting failed; the stream goes on")

    def log_window(self, snapshot: dict[str, Any]) -> None:
        version = snapshot["version"]
        now = int(time.time() * 1000)
        metrics = [Metric(name, float(value), now, version) for name, value in snapshot["metrics"].items()]
        metrics.append(Metric("window_end", float(snapshot["window_end"]), now, version))
        _retry(lambda: self.client.log_batch(self.run_id, metrics=metrics), f"metrics of window {version}")
        _retry(lambda: self.client.log_dict(self.run_id, snapshot, f"snapshots/snapshot-{version:06d}.json"),
               f"snapshot {version}")
        self.last_snapshot = snapshot
        if version % self.register_every == 0:
            self.register(snapshot)

    def register(self, snapshot: dict[str, Any]) -> None:
        """Log a loadable pyfunc model for the snapshot, register it, point ``champion`` at it."""
        version = snapshot["version"]
        artifact_path = f"models/model-{version:06d}"
        with tempfile.TemporaryDirectory() as tmp:
            snapshot_file = Path(tmp, "snapshot.json")
            snapshot_file.write_text(json.dumps(snapshot))
            model_dir = Path(tmp, "model")
            mlflow.pyfunc.save_model(
                path=str(model_dir), python_model=SnapshotModel(),
                artifacts={SNAPSHOT_ARTIFACT: str(snapshot_file)},
                code_paths=[str(_UDFS_DIR)],
                pip_requirements=["mlflow", "numpy", "pandas", "scipy"],
            )
            _retry(lambda: self.client.log_artifacts(self.run_id, str(model_dir), artifact_path), "model artifacts")
        _retry(lambda: self._create_model(), "registered model")
        model_version = _retry(lambda: self.client.create_model_version(
            self.registered_model, f"runs:/{self.run_id}/{artifact_path}", run_id=self.run_id,
            tags={"snapshot_version": str(version), "window_end": str(snapshot["window_end"])},
        ), "model version")
        _retry(lambda: self.client.set_registered_model_alias(self.registered_model, CHAMPION_ALIAS,
                                                              model_version.version), "champion alias")
        self.last_registered_version = version

    def reconcile(self, snapshots: list[dict[str, Any]]) -> int:
        """Log what the streaming path did not get to (a worker stopped mid-flush, an outage).

        Returns how many windows were logged here; registers the newest snapshot as champion
        unless that already happened.
        """
        logged = {m.step for m in self.client.get_metric_history(self.run_id, "window_end")}
        missing = [s for s in snapshots if s["version"] not in logged]
        for snapshot in missing:
            self.log_window(snapshot)
        if snapshots and self._champion_version() != snapshots[-1]["version"]:
            self.register(snapshots[-1])
        return len(missing)

    def _champion_version(self) -> int | None:
        try:
            champion = self.client.get_model_version_by_alias(self.registered_model, CHAMPION_ALIAS)
        except MlflowException:
            return None
        return int(champion.tags.get("snapshot_version", -1))

    def _create_model(self) -> None:
        if not self.client.search_registered_models(f"name = '{self.registered_model}'"):
            self.client.create_registered_model(self.registered_model)
