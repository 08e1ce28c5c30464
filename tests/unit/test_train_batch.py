"""scripts/train_batch.py without MLflow, and the job's start-up check of the user state it writes."""

from __future__ import annotations

import json
from pathlib import Path

from conf.settings import load_settings
from jobs.online_learning import main as job_main
from scripts.train_batch import main
from udfs.features.batch_features import BatchFeaturizer
from udfs.features.events import Event
from udfs.features.user_features import UserStateFile
from udfs.sim.stream_generator import StreamSpec, generate_events


def test_history_in_jsonl_gives_a_snapshot_and_every_users_state(tmp_path: Path, capsys) -> None:
    events = list(generate_events(StreamSpec(n_events=3_000, n_users=80, duration_s=3600.0, seed=4)))
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + "{broken\n")
    assert main(["--history", str(tmp_path / "history.jsonl"), "--output", str(tmp_path / "out"), "--epochs", "2",
                 "--set", "mlflow.enabled=false"]) == 0
    printed = capsys.readouterr().out
    assert "  epoch 2: training logloss" in printed and "dead letters {'malformed_json': 1}" in printed
    batch = tmp_path / "out" / "batch"
    snapshot = json.loads((batch / "snapshot.json").read_text())
    assert snapshot["metrics"]["events"] == 3_000 and snapshot["metrics"]["logloss"] < snapshot["metrics"]["baseline_logloss"]
    users = UserStateFile.load(batch / "user_state.pkl", tuple(json.loads((batch / "schema.json").read_text())["numeric"]),
                               ("device", "country", "is_returning"))
    assert len(users.users) == len({e["user_id"] for e in events})
    assert sum(state.count for state in users.users.values()) == 3_000


def test_the_job_starts_unseen_users_from_the_file_and_checks_its_columns(tmp_path: Path, capsys) -> None:
    known = Event("e1", "u1", None, 1_000, {"amount": 4.0}, {}, 1)
    settings = load_settings(overrides=["features.numeric=[amount]", "features.categorical=[]"])
    states: dict = {}
    BatchFeaturizer.from_settings(settings).featurize([known], states)
    UserStateFile(("amount",), (), states).save(tmp_path / "users.pkl")
    warm = load_settings(overrides=["features.numeric=[amount]", "features.categorical=[]",
                                    f"features.initial_user_state={tmp_path / 'users.pkl'}"])
    later = BatchFeaturizer.from_settings(warm).featurize([known._replace(event_id="e2", event_time=61_000)], {})
    names = BatchFeaturizer.from_settings(warm).extractor.dense_names
    assert later.batch.dense[0, names.index("user_event_count_log")] > 0, "u1 should start from its history"

    (tmp_path / "events.jsonl").write_text(json.dumps({"event_id": "e", "user_id": "u", "event_time": 1_767_225_600_000,
                                                       "features": {"price": 2.0}}) + "\n")
    assert job_main(["--input", str(tmp_path / "events.jsonl"), "--output", str(tmp_path / "out"),
                     "--set", "mlflow.enabled=false", "--set", f"features.initial_user_state={tmp_path / 'users.pkl'}"]) == 2
    assert "features.initial_user_state=" in (err := capsys.readouterr().err) and "built on numeric ['amount']" in err
