import pytest

from conf.settings import DEFAULT_CONFIG, SettingsError, load_settings
from jobs.online_learning import main
from udfs.features.schema import AUTO, infer_schema


def test_default_file_is_valid_and_matches_the_embedded_default():
    cfg = load_settings(DEFAULT_CONFIG)
    assert cfg.source.kind == "generator" and cfg.window.size_ms == 300_000
    assert cfg.source.generator.events >= 100_000 and cfg.source.generator.duration_s >= 7200


def test_overrides_are_typed():
    cfg = load_settings(DEFAULT_CONFIG, ["model.epochs=5", "drift.features=[amount, price]", "mlflow.enabled=false"])
    assert cfg.model.epochs == 5 and cfg.drift_features == ("amount", "price") and not cfg.mlflow.enabled


@pytest.mark.parametrize("override, key", [
    ("model.learning_rate=-1", "model.learning_rate"),
    ("model.optimiser=adam", "model.optimiser"),
    ("window.size_ms=abc", "window.size_ms"),
    ("drift.correction=fdr", "drift.correction"),
    ("source.kind=file", "source.path"),
    ("batching.slice_ms=7000", "batching.slice_ms"),
    ("batching.slice_ms=soon", "batching.slice_ms"),
    ("model.kind=forest", "model.kind"),
    ("model.hidden_units=[]", "model.hidden_units"),
    ("model.hidden_units=[64, 0]", "model.hidden_units"),
    ("model.ensemble.learning_rates=[0.01, -0.1]", "model.ensemble.learning_rates"),
    ("model.ensemble.member=ensemble", "model.ensemble.member"),
    ("model.ftrl.l1=-0.1", "model.ftrl.l1"),
    ("model.ftrl.beta=0", "model.ftrl.beta"),
    ("model.fm.factors=0", "model.fm.factors"),
    ("model.fm.id_buckets=0", "model.fm.id_buckets"),
    ("model.dropout=1.5", "model.dropout"),
])
def test_errors_name_the_bad_key(override, key):
    with pytest.raises(SettingsError) as err:
        load_settings(DEFAULT_CONFIG, [override])
    assert key in str(err.value) and str(DEFAULT_CONFIG) in str(err.value)


def test_drift_features_must_be_numeric_features_listed_or_inferred():
    with pytest.raises(SettingsError, match="drift.features: \\['nope'\\] are not in features.numeric"):
        load_settings(overrides=["drift.features=[nope]"])
    inferred = infer_schema(['{"user_id": "u", "features": {"amount": 1.5}}'], AUTO, AUTO)
    with pytest.raises(SettingsError, match="drift.features: \\['nope'\\] are not among the numeric features"):
        inferred.apply(load_settings(DEFAULT_CONFIG, ["drift.features=[nope]"]))


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.yaml")


def test_cli_exits_2_with_the_key_on_bad_config(capsys):
    assert main(["--set", "model.epochs=0"]) == 2
    assert "model.epochs" in capsys.readouterr().err
    assert main(["--input", "/no/such/file.jsonl"]) == 2
    assert "--input" in capsys.readouterr().err


@pytest.mark.parametrize("profile", sorted(DEFAULT_CONFIG.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_profile_is_valid(profile):
    load_settings(profile)


def test_each_shipped_profile_has_an_output_folder_of_its_own():
    """A run of one profile never meets another profile's results (or deletes them with --overwrite)."""
    profiles = sorted(DEFAULT_CONFIG.parent.glob("*.yaml"))
    folders = {load_settings(profile).output.path for profile in profiles}
    assert len(folders) == len(profiles) > 1


def test_kafka_settings_are_checked():
    with pytest.raises(SettingsError, match="kafka.starting_timestamp_ms"):
        load_settings(overrides=["kafka.starting_offsets=timestamp"])
    with pytest.raises(SettingsError, match="kafka.stopping_offsets"):
        load_settings(overrides=['kafka.stopping_offsets={"no-partition": 5}'])


def test_cuda_without_a_gpu_stops_at_start_up_naming_the_key(capsys):
    import torch

    assert not torch.cuda.is_available(), "this test needs a machine without a GPU"
    assert main(["--set", "model.kind=mlp", "--set", "model.device=cuda"]) == 2
    assert "model.device: 'cuda' but no CUDA GPU is visible" in capsys.readouterr().err


def test_a_mistyped_key_gets_the_closest_key_of_its_section():
    with pytest.raises(SettingsError, match="adaptation.gate_tolerence: unknown key .*did you mean adaptation.gate_tolerance"):
        load_settings(DEFAULT_CONFIG, ["adaptation.gate_tolerence=0.1"])
    with pytest.raises(SettingsError, match="check spelling against conf/local.yaml"):
        load_settings(DEFAULT_CONFIG, ["model.zzzz=1"])


@pytest.mark.parametrize("kind, member, expected", [("logistic", "logistic", (0.05, 256)), ("mlp", "logistic", (0.01, 64)),
                                                    ("ensemble", "logistic", (0.05, 256)), ("ensemble", "mlp", (0.01, 64))])
def test_learning_rate_and_batch_size_default_per_kind_in_the_shipped_profile(kind, member, expected):
    m = load_settings(DEFAULT_CONFIG, [f"model.kind={kind}", f"model.ensemble.member={member}"]).model
    assert (m.learning_rate, m.batch_size) == expected
    m = load_settings(DEFAULT_CONFIG, [f"model.kind={kind}", "model.learning_rate=0.2", "model.batch_size=32"]).model
    assert (m.learning_rate, m.batch_size) == (0.2, 32), "what the user sets wins"
