"""A user's own stream through the job as a new user runs it: features found without flags, and
warnings for fields the job will not use."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.integration.conftest import run_job
from udfs.sim.reference_streams import REFERENCE_STREAMS, generate

DIGITS = [str(i) for i in range(10)]


def write_digit_stream(path: Path, n_events: int, seed: int, extra: dict[str, object] | None = None) -> None:
    """The rotating-hyperplane stream with its ten features named "0" to "9", as the issue's user had
    them (names no config lists), plus ``extra`` fields in every event."""
    with path.open("w") as f:
        for e in generate(REFERENCE_STREAMS["hyperplane"], n_events=n_events, seed=seed):
            e["features"] = {k.removeprefix("x"): v for k, v in e["features"].items()} | (extra or {})
            f.write(json.dumps(e) + "\n")


def test_unknown_feature_names_are_inferred_and_learned_without_flags(tmp_path: Path) -> None:
    write_digit_stream(tmp_path / "stream.jsonl", 20_000, seed=5)
    out = tmp_path / "out"
    proc = run_job(tmp_path / "stream.jsonl", out)  # conf/local.yaml, no feature flags

    summary = json.loads((out / "summary.json").read_text())
    late = summary["windows_10_plus"]
    assert late["logloss"] <= 0.8 * late["baseline_logloss"], late
    assert summary["schema"]["numeric"] == DIGITS and summary["schema"]["categorical"] == []
    assert summary["schema"]["inferred"] == ["numeric", "categorical"]
    assert f"features         numeric {DIGITS}, categorical [] (numeric and categorical inferred from 2000 " \
           "sampled events)" in proc.stdout

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("online-learning").experiment_id])[0]
    assert run.data.params["features.numeric"] == json.dumps(DIGITS)
    assert run.data.params["features.schema"].startswith(f"numeric {DIGITS}")
    assert "schema.json" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_an_unused_field_and_a_configured_field_never_seen_are_both_warned(tmp_path: Path) -> None:
    write_digit_stream(tmp_path / "stream.jsonl", 3_000, seed=6, extra={"campaign": "spring"})
    out = tmp_path / "out"
    proc = run_job(tmp_path / "stream.jsonl", out, f"features.numeric={json.dumps([*DIGITS, 'price'])}",
                   "features.categorical=[]", "mlflow.enabled=false")

    unused = "field 'campaign' appears in 2000 of 2000 sampled events but is not used " \
             "(not in features.numeric or features.categorical)"
    never_seen = "features.numeric: 'price' is configured but appears in none of the 2000 sampled events"
    summary = json.loads((out / "summary.json").read_text())
    for warning in (unused, never_seen):
        assert f"warning          {warning}" in proc.stdout
        assert warning in summary["schema"]["warnings"]
    assert summary["schema"]["field_counts"]["campaign"] == 2000 and summary["predictions"] == 3_000
    # Over the whole run: no item ids, so the user's affinity to the item is always 0; no price, so
    # its per-user z-score is always 0.
    assert summary["constant_dense_columns"] == ["user_item_affinity", "price_user_z"]
    assert "warning          dense column 'user_item_affinity' was constant in every window of the run" in proc.stdout
