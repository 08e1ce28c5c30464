"""Ships window snapshots to MLflow from a background thread, through outages.

MLflow calls cost 0.05-10 s each, and a tracking server can be down or slow for minutes; made
on the stream's thread either would stall scoring. So ``submit`` only enqueues (a bounded
queue: when it is full the snapshot is dropped and counted as ``reporter_dropped``), and a
worker thread delivers each snapshot in order, retrying every call with growing waits (up to
``max_backoff_s``) until the server answers. Nothing is lost to an outage shorter than the
queue; what does not arrive before the job ends is logged by the client's :meth:`reconcile`.

Per window it logs the metrics (``step`` = window number, one per window: the snapshot's ``step``,
or ``trained_version`` in snapshots from before slots) with ``decision_<kind>`` = 1 for each adaptation,
gate, rollback or fast-mode decision of the window, one JSON artifact per snapshot, and every
``register_every`` windows, on a rollback and at the end, a registered pyfunc model of the
*serving* snapshot (``version``) with the alias ``champion`` pointing at it. A fast-mode slot
update logs its metrics as ``slot_<name>`` with a step sequence of its own (slot update 1, 2, ...)
and ``slot_window`` (the window it lies in); its decisions go to ``decision_<kind>`` at the step of
that window, so every decision chart is per window. All metrics carry the end of their window or
slot in event time as their timestamp: MLflow's "Time" x axis lines the two sequences up.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from udfs.tracking.pyfunc_model import save_snapshot_model

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
# Logged last by a reporter that has finished: the window_end of the newest snapshot it was handed.
FINISHED_THROUGH = "reporter_finished_through"
_STOP = object()


def window_step(snapshot: dict[str, Any]) -> int:
    """The metric step of a snapshot: increases by one per window (or per slot update), across restores."""
    return int(snapshot.get("step", snapshot.get("trained_version", snapshot["version"])))


def is_slot_update(snapshot: dict[str, Any]) -> bool:
    return snapshot.get("update") == "slot"


def end_metric(snapshot: dict[str, Any]) -> str:
    """The metric whose history says which windows (or slot updates) MLflow already has."""
    return "slot_end" if is_slot_update(snapshot) else "window_end"


class DeliveryAbandoned(RuntimeError):
    """The reporter's deadline passed while MLflow still failed."""


class MlflowReporter:
    def __init__(self, tracking_uri: str, run_id: str, registered_model: str, register_every: int,
                 queue_size: int, max_backoff_s: float = 30.0) -> None:
        self.client = MlflowClient(tracking_uri)
        self.run_id = run_id
        self.registered_model = registered_model
        self.register_every = register_every
        self.max_backoff_s = max_backoff_s
        self.pending: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.dropped = 0
        self.retries = 0
        self.deadline: float | None = None  # monotonic time after which failing calls give up
        self.last_snapshot: dict[str, Any] | None = None
        self.handed_through = 0  # window_end of the newest snapshot submitted, delivered or dropped
        self.registered: dict[int, str] = {}  # serving snapshot version -> registry model version
        self.thread = threading.Thread(target=self._work, name="mlflow-reporter", daemon=True)

    def start(self) -> MlflowReporter:
        self.thread.start()
        return self

    def submit(self, snapshot: dict[str, Any]) -> None:
        """Never blocks the caller: a stalled MLflow must not back-pressure the stream."""
        self.handed_through = max(self.handed_through, int(snapshot["window_end"]))
        try:
            self.pending.put_nowait(snapshot)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                log.error("MLflow reporter queue full (mlflow.queue_size); dropping snapshots until it drains")

    def close(self, timeout_s: float) -> None:
        """Deliver what is queued, register the newest snapshot, then stop (bounded wait)."""
        self.deadline = time.monotonic() + timeout_s
        try:
            self.pending.put(_STOP, timeout=timeout_s)
        except queue.Full:
            pass
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            log.error("MLflow reporter still busy after %.0f s; %d snapshots left for the client to reconcile",
                      timeout_s, self.pending.qsize())

    def _work(self) -> None:
        while (item := self.pending.get()) is not _STOP:
            self._guarded(self.log_window, item)
        if self.last_snapshot and self.last_snapshot["version"] not in self.registered:
            self._guarded(lambda snapshot: self.register(snapshot, "final"), self.last_snapshot)
        counters = {"reporter_dropped": self.dropped, "reporter_retries": self.retries}
        if self.handed_through:  # a job resumed at its end hands nothing: the stopped job's mark stands
            counters[FINISHED_THROUGH] = self.handed_through
        self._guarded(lambda _: self._call(lambda: self.client.log_batch(self.run_id, metrics=[
            Metric(name, float(value), int(time.time() * 1000), 0) for name, value in counters.items()]),
            "reporter counters"), None)

    def _guarded(self, step: Callable[[Any], None], item: Any) -> None:
        try:
            step(item)
        except Exception:  # noqa: BLE001 - a reporting failure must not kill the stream
            log.exception("MLflow reporting gave up on one item; the stream goes on, reconcile logs it later")

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        """Retries ``call`` with growing waits until it succeeds or the deadline passes."""
        backoff = 0.5
        while True:
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - any client/server failure is retried the same way
                if self.deadline is not None and time.monotonic() + backoff > self.deadline:
                    raise DeliveryAbandoned(f"MLflow {what}: still failing at the deadline: {exc}") from exc
                self.retries += 1
                log.warning("MLflow %s failed, retrying in %.1f s: %s", what, backoff, exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def log_window(self, snapshot: dict[str, Any]) -> None:
        step = window_step(snapshot)
        slot = is_slot_update(snapshot)
        prefix, what = ("slot_", f"slot update {step}") if slot else ("", f"window {step}")
        # Timestamp = the window's end in event time, not the wall clock: a window logged twice (a
        # retried call that had in fact gone through, or the reporter and reconcile racing) is then
        # the identical metric, which the tracking store keeps once.
        at = int(snapshot["window_end"])
        metrics = [Metric(prefix + name, float(value), at, step) for name, value in snapshot["metrics"].items()]
        metrics += [Metric(end_metric(snapshot), float(at), at, step),
                    Metric(prefix + "serving_version", float(snapshot["version"]), at, step)]
        window = int(snapshot.get("window", step)) if slot else step
        if slot:
            metrics.append(Metric("slot_window", float(window), at, step))
        # Adaptation, gate, rollback and fast-mode decisions: a 1 at the window where each acted (details in the JSON).
        metrics += [Metric(f"decision_{kind}", 1.0, at, window)
                    for kind in sorted({d["kind"] for d in snapshot.get("decisions", ())})]
        self._call(lambda: self.client.log_batch(self.run_id, metrics=metrics), f"metrics of {what}")
        artifact = f"snapshots/{'slot' if slot else 'snapshot'}-{step:06d}.json"
        self._call(lambda: self.client.log_dict(self.run_id, snapshot, artifact), f"snapshot of {what}")
        self.last_snapshot = snapshot
        if slot:
            return
        if any(d["kind"] == "rollback" for d in snapshot.get("decisions", ())):
            self.register(snapshot, "rollback")
        elif step % self.register_every == 0:
            self.register(snapshot, "periodic")

    def register(self, snapshot: dict[str, Any], why: str) -> None:
        """Point ``champion`` at the serving snapshot, logging and registering its model first if needed."""
        version = snapshot["version"]
        if version not in self.registered:
            self.registered[version] = self.register_model(snapshot, why)
        self._call(lambda: self.client.set_registered_model_alias(self.registered_model, CHAMPION_ALIAS,
                                                                  self.registered[version]), "champion alias")

    def register_model(self, snapshot: dict[str, Any], why: str) -> str:
        """Logs ``snapshot`` as a pyfunc model and registers it as a new version; returns the version."""
        version = snapshot["version"]
        artifact_path = f"models/model-{version:06d}"
        with tempfile.TemporaryDirectory() as tmp:
            save_snapshot_model(snapshot, Path(tmp, "model"))
            self._call(lambda: self.client.log_artifacts(self.run_id, str(Path(tmp, "model")), artifact_path),
                       "model artifacts")
        self._call(self._create_model, "registered model")
        model_version = self._call(lambda: self.client.create_model_version(
            self.registered_model, f"runs:/{self.run_id}/{artifact_path}", run_id=self.run_id,
            tags={"snapshot_version": str(version), "window_end": str(snapshot["window_end"]), "registered_for": why},
        ), "model version")
        return model_version.version

    def reconcile(self, snapshots: list[dict[str, Any]], timeout_s: float) -> int:
        """Log what the streaming path did not get to (a worker stopped mid-flush, a long outage).

        Returns how many windows and slot updates were logged here; points ``champion`` at the last serving
        snapshot unless it already does.
        """
        if snapshots:
            self._await_job_reporter(int(snapshots[-1]["window_end"]), timeout_s)
        self.deadline = time.monotonic() + timeout_s
        logged = {(name, m.step) for name in ("window_end", "slot_end")
                  for m in self._call(lambda: self.client.get_metric_history(self.run_id, name), "metric history")}
        missing = [s for s in snapshots if (end_metric(s), window_step(s)) not in logged]
        for snapshot in missing:
            self.log_window(snapshot)
        if snapshots and self._champion_version() != snapshots[-1]["version"]:
            self.register(snapshots[-1], "final")
        return len(missing)

    def _await_job_reporter(self, through: int, timeout_s: float) -> None:
        """Waits (at most ``timeout_s``) until the job's reporter has logged ``FINISHED_THROUGH`` >= ``through``.

        Flink does not wait for a Python function's ``close``: when the job is reported finished, its
        reporter may still be delivering a backlog (after an outage, minutes of it). Reconciling then
        would log those windows a second time, count them as missed, and register the final model twice.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.client.get_run(self.run_id).data.metrics.get(FINISHED_THROUGH, -1) >= through:
                    return
            except Exception:  # noqa: BLE001 - the server may be down; wait on
                pass
            time.sleep(0.5)
        log.warning("the job's MLflow reporter did not finish within %.0f s (mlflow.flush_timeout_s); "
                    "logging what it has not delivered", timeout_s)

    def _champion_version(self) -> int | None:
        try:
            champion = self.client.get_model_version_by_alias(self.registered_model, CHAMPION_ALIAS)
        except MlflowException:
            return None
        return int(champion.tags.get("snapshot_version", -1))

    def _create_model(self) -> None:
        if not self.client.search_registered_models(f"name = '{self.registered_model}'"):
            self.client.create_registered_model(self.registered_model)
