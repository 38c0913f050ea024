import pytest

from hepdl.config import Config, config_from_dict, dump_config, load_config, parse_override
from hepdl.errors import ConfigError

from .conftest import ROOT, small_config, write_config


def test_digits_example_loads_with_defaults_filled():
    config = load_config(ROOT / "examples/digits.yaml")
    assert config.data.source.kind == "digits"
    assert config.train.optimizer.name == "adam"  # the shorthand "adam" expanded
    assert config.train.lr == pytest.approx(1e-3)  # YAML 1.1 would read "1e-3" as a string
    assert config.data.split.test == pytest.approx(0.15)
    assert config.task == "classification"


def test_overrides_reach_any_field_with_yaml_types(tmp_path):
    path = write_config(tmp_path / "c.yaml", small_config(tmp_path))
    config = load_config(path, ["train.lr=3e-4", "model.width=256", "train.optimizer.name=sgd",
                                "train.optimizer.options={momentum: 0.9}",
                                "train.early_stopping.patience=2"])
    assert config.train.lr == pytest.approx(3e-4)
    assert config.model.width == 256
    assert config.train.optimizer.name == "sgd"
    assert config.train.optimizer.options == {"momentum": 0.9}
    assert config.train.early_stopping.patience == 2


def test_resolved_config_round_trips(tmp_path):
    config = config_from_dict(small_config(tmp_path))
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(config))
    assert load_config(again) == config


@pytest.mark.parametrize("raw, match", [
    ({"train": {"learning_rate": 1}}, r"train\.learning_rate: Extra inputs are not permitted"),
    ({"train": {"lr": "fast"}}, r"train\.lr: .*positive number or auto, got 'fast'"),
    ({"model": {"width": 0}}, r"model\.width: .*greater than or equal to 1"),
    ({"data": {"source": {"kind": "lcd3"}}}, r"data\.source: .*'digits', 'npz'"),
    ({"data": {"source": {"kind": "digits"}, "split": {"train": 0.5, "val": 0.1, "test": 0.1}}},
     r"must sum to 1"),
    ({"train": {"class_weights": {"3": 0.0}}}, r"train\.class_weights: class weights must be "
                                                r"positive \(got \{'3': 0.0\}\)"),
])
def test_bad_fields_name_their_path(tmp_path, raw, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(small_config(tmp_path, **raw))


def test_override_of_non_section_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"train.lr is 0.003, not a section"):
        config_from_dict(small_config(tmp_path), ["train.lr.x=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("train.lr")


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_defaults_live_in_the_schema_only():
    # a config naming only its data is complete: every other value comes from the schema
    config = Config.model_validate({"data": {"source": {"kind": "digits"}}})
    assert config.model.name == "mlp" and config.train.epochs >= 1
    assert config.task == "classification"
    assert Config.model_validate({"data": {"source": {"kind": "digits"}},
                                  "train": {"loss": "mse"}}).task == "regression"


def test_a_schedule_option_that_would_be_ignored_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"the exponential schedule takes \['tau'\], not "
                                          r"\['gamma'\]"):
        config_from_dict(small_config(tmp_path, train={"schedule": {"name": "exponential",
                                                                     "gamma": 0.95}}))
    config = config_from_dict(small_config(tmp_path, train={"schedule": {"name": "step",
                                                                          "gamma": 0.3}}))
    assert config_from_dict(config.model_dump(mode="json")) == config  # resolved: defaults ok
