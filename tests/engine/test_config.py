"""Config: one path for flags, YAML and kwargs; unknown keys fail with a suggestion."""
import pytest

from cnnkit.config import Config
from cnnkit.errors import CnnkitError


def test_bare_and_dotted_keys_resolve_to_the_same_field():
    cfg = Config()
    cfg.set("lr", 0.3)
    assert cfg.train.lr == 0.3
    cfg.set("train.lr", "0.5")
    assert cfg.train.lr == 0.5


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(CnnkitError, match='Unknown config key "train.ephocs".*Did you mean "train.epochs"'):
        Config().set("train.ephocs", 3)


def test_bad_value_type_names_key_and_value():
    with pytest.raises(CnnkitError, match='"train.epochs" expects int, got \'many\''):
        Config().set("epochs", "many")


def test_yaml_round_trip_and_unknown_key_in_file(tmp_path):
    cfg = Config()
    cfg.apply_overrides(["epochs=7", "model.kwargs.style=modern", "data.augment=strong"])
    cfg.save(tmp_path / "c.yaml")
    again = Config.load(tmp_path / "c.yaml")
    assert again.to_dict() == cfg.to_dict()
    (tmp_path / "bad.yaml").write_text("train:\n  lr: 0.1\n  momentun: 0.8\n")
    with pytest.raises(CnnkitError, match=r"bad.yaml.*momentun.*Did you mean"):
        Config.load(tmp_path / "bad.yaml")


def test_fill_defaults_only_touches_unset_values():
    cfg = Config()
    cfg.set("epochs", 3)
    cfg.fill_defaults({"train.epochs": 30, "train.lr": 0.1})
    assert (cfg.train.epochs, cfg.train.lr) == (3, 0.1)
