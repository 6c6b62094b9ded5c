"""Config: one path for flags, YAML and kwargs; each key described once; unknown keys, bad choices and
out-of-bounds values fail when set, with one sentence (and a suggestion)."""
from pathlib import Path

import pytest
import torch

import cnnkit
from cnnkit.cli import main
from cnnkit.config import Config, check_value, config_fields, field_default
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


# ----- one description per key: flags, choices and bounds derived from the fields ----------------
def test_every_key_is_described_and_its_default_is_valid():
    for key, f in config_fields().items():
        assert f.metadata.get("help"), f"{key} has no help"
        default = field_default(f)
        if default is not None and key != "model.kwargs":
            assert check_value(key, default) == default, key  # a default never fails its own checks


STONG = ('Config key "data.augment" must be one of none, flip, light, strong; got "stong". Did you mean "strong"?')


@pytest.mark.parametrize("args", [["--augment", "stong"], ["--set", "data.augment=stong"], ["--set", "augment=stong"]])
def test_invalid_choice_on_the_command_line_is_one_line_exit_2(capsys, tmp_path, args):
    code = main(["train", "--data", "digits", "--out", str(tmp_path / "run"), *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == f"cnnkit: error: {STONG}\n"
    assert not (tmp_path / "run").exists()  # refused at config time, before any data or run directory


def test_invalid_choice_through_the_python_api(tmp_path):
    with pytest.raises(CnnkitError) as err:
        cnnkit.train(data="digits", augment="stong", out=str(tmp_path / "run"), quiet=True)
    assert str(err.value) == STONG
    assert not (tmp_path / "run").exists()


def test_invalid_choice_in_yaml_names_the_file(tmp_path):
    (tmp_path / "r.yaml").write_text("data:\n  augment: stong\ntrain:\n  optimizer: adam\n")
    with pytest.raises(CnnkitError) as err:
        Config.load(tmp_path / "r.yaml")
    assert str(err.value) == f"In {tmp_path / 'r.yaml'}: {STONG}"
    (tmp_path / "r.yaml").write_text("train:\n  optimizer: adam\n")
    with pytest.raises(CnnkitError, match=r'"train.optimizer" must be one of sgd, adamw; got "adam". '
                                          r'Did you mean "adamw"\?'):
        Config.load(tmp_path / "r.yaml")


@pytest.mark.parametrize("key, value, good", [
    ("train.device", "cuda:1", "cuda:1"),
    ("train.device", "cpu", "cpu"),
    ("data.in_memory", True, "yes"),  # YAML reads `in_memory: yes` as a bool
    ("data.in_memory", "no", "no"),
    ("model.attention", "none", "none"),
    ("data.augment", None, None),
    ("task", "segment", "segment"),
])
def test_valid_choices_pass(key, value, good):
    cfg = Config()
    cfg.set(key, value)
    assert cfg.get(key) == good


@pytest.mark.parametrize("key, value, sentence", [
    ("train.device", "gpu", 'Config key "train.device" must be one of auto, cpu, cuda, mps, cuda:N; got "gpu". '
                            "Use cuda (an NVIDIA GPU)."),
    ("train.device", "cuda:x", 'must be one of auto, cpu, cuda, mps, cuda:N; got "cuda:x". Did you mean "cuda:N"?'),
    ("data.class_weights", "balanced", 'Config key "data.class_weights" must be one of none, auto; got "balanced".'),
    ("train.schedule", "linear", 'Config key "train.schedule" must be one of cosine, onecycle, step, constant; '
                                 'got "linear".'),
])
def test_invalid_choices_are_one_sentence(key, value, sentence):
    with pytest.raises(CnnkitError) as err:
        Config().set(key, value)
    assert sentence in str(err.value)


@pytest.mark.parametrize("key, value, sentence", [
    ("epochs", 0, 'Config key "train.epochs" must be at least 1; got 0.'),
    ("batch_size", "-4", 'Config key "train.batch_size" must be at least 1; got -4.'),
    ("lr", 0, 'Config key "train.lr" must be greater than 0; got 0.0.'),
    ("lr", "nan", 'Config key "train.lr" must be greater than 0; got nan.'),
    ("val_fraction", 1, 'Config key "data.val_fraction" must be in [0, 1); got 1.0.'),
    ("test_fraction", -0.1, 'Config key "data.test_fraction" must be in [0, 1); got -0.1.'),
    ("dropout", 1.5, 'Config key "model.dropout" must be in [0, 1); got 1.5.'),
    ("label_smoothing", 1.0, 'Config key "train.label_smoothing" must be in [0, 1); got 1.0.'),
    ("max_bad", -1, 'Config key "data.max_bad" must be at least 0; got -1.0.'),
    ("step_gamma", 0, 'Config key "train.step_gamma" must be in (0, 1]; got 0.0.'),
    ("patience", 0, 'Config key "train.patience" must be at least 1; got 0.'),
    ("threads", 0, 'Config key "train.threads" must be at least 1; got 0.'),
])
def test_numeric_bounds_are_checked_when_set(key, value, sentence):
    with pytest.raises(CnnkitError) as err:
        Config().set(key, value)
    assert str(err.value) == sentence


@pytest.mark.parametrize("key, value", [
    ("epochs", 1), ("lr", 1e-9), ("val_fraction", 0.0), ("test_fraction", 0.99), ("max_bad", 0),
    ("step_gamma", 1.0), ("dropout", 0.0), ("workers", 0), ("grad_clip", None), ("patience", None),
])
def test_bounds_are_inclusive_where_they_say_so(key, value):
    cfg = Config()
    cfg.set(key, value)
    assert cfg.get(key) == value


def test_bounds_on_the_command_line_exit_2_with_the_sentence(capsys, tmp_path):
    code = main(["train", "--epochs", "0", "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err == 'cnnkit: error: Config key "train.epochs" must be at least 1; got 0.\n'


def test_unknown_task_fails_before_any_data_is_read(tmp_path):
    # Tasks are an open registry, so the name is checked when the run is resolved, not by Config.set.
    import cnnkit

    with pytest.raises(CnnkitError, match='Unknown task "detetc". Did you mean "detect"?'):
        cnnkit.train(data=str(tmp_path / "no-such-folder"), task="detetc", out=str(tmp_path / "run"))


def test_a_section_given_a_value_in_yaml_says_how_to_write_it(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data: rf\n")
    with pytest.raises(CnnkitError) as err:
        Config.load(recipe)
    assert str(err.value) == (f'In {recipe}: "data" is a section, not a value: write `data: {{name: rf}}` '
                              "(or `data:` and `  name: rf` on the next line).")
    recipe.write_text("model: 5\n")  # not a name: the suggestion is a valid recipe, not `{name: 5}`
    with pytest.raises(CnnkitError, match=r"write `model: \{name: lenet5\}`"):
        Config.load(recipe)
    recipe.write_text("data:\n  name: digits\ntrain:\n")  # an empty section is no error
    assert Config.load(recipe).data.name == "digits"


# The classification recipes shipped in configs/, and the input each one's data gives the model
# (channels, side): a recipe whose keys or model kwargs drifted from the code fails here, not after
# an hour of someone's training.
SHIPPED = {"digits-lenet5.yaml": (1, 32), "fashion-mnist-best.yaml": (1, 28), "fashion-mnist-gpu.yaml": (1, 28),
           "fashion-mnist-resnet20.yaml": (1, 28), "fashion-mnist-speedrun.yaml": (1, 28)}


def test_every_shipped_recipe_is_listed_here():
    configs = Path(__file__).resolve().parents[1] / "configs"
    assert sorted(p.name for p in configs.glob("*.yaml")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_recipes_load_and_build_their_model(name):
    from cnnkit.models import build_model

    cfg = Config.load(Path(__file__).resolve().parents[1] / "configs" / name)
    channels, side = SHIPPED[name]
    size = cfg.data.image_size or side
    model = build_model(cfg.model.name, num_classes=10, in_channels=channels, image_size=size,
                        **dict(cfg.model.kwargs or {})).eval()
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 10)


def test_none_as_help_prints_it_unsets_an_optional_key_but_stays_a_choice_where_it_is_one():
    cfg = Config()
    cfg.set("train.amp", True)
    cfg.set("train.amp", "None")  # `cnnkit train --help` shows train.amp=None
    cfg.set("train.epochs", "null")
    assert cfg.train.amp is None and cfg.train.epochs is None
    cfg.set("model.attention", "none")  # a real choice ("no attention block"), not unset
    assert cfg.model.attention == "none"
    with pytest.raises(CnnkitError, match='"train.optimizer" must be one of'):
        cfg.set("train.optimizer", "None")  # not optional: still one sentence
