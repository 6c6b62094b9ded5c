"""cli_options.py: argparse flags rendered from the `Config` fields (name, metavar, help with the default,
a group per section listing the --set-only keys), and flags + --set applied onto a Config."""
import argparse

import pytest

from cnnkit.cli import build_parser, main, train_config
from cnnkit.cli_options import add_config_flags, add_set_option, apply_flags
from cnnkit.config import Config, config_fields, flag_of


def test_train_flags_are_derived_from_the_fields():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    by_dest = {a.dest: a for a in train._actions}
    flagged = [k for k, f in config_fields().items() if f.metadata.get("flag")]
    assert len(flagged) >= 28
    for key in flagged:
        f = config_fields()[key]
        action = by_dest[key]
        assert flag_of(key) in action.option_strings
        assert f.metadata["help"].replace("%", "%%") in action.help
        choices = f.metadata.get("choices")
        if choices and not callable(choices):
            assert action.metavar == "{" + ",".join(choices) + "}"
    args = parser.parse_args(["train", "--batch-size", "32", "--lr", "1e-3", "--no-ema", "--augment", "strong"])
    cfg = train_config(args)
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.ema, cfg.data.augment) == (32, 1e-3, False, "strong")
    assert type(cfg.train.batch_size) is int


def test_train_help_keeps_every_flag_and_teaches_defaults_and_set_only_keys(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    before = ("--data --task --model --config --epochs --batch-size --lr --optimizer --schedule --warmup-epochs "
              "--augment --dropout --weight-decay --label-smoothing --grad-clip --ema --patience --attention "
              "--image-size --root --max-bad --class-weights --seed --deterministic --device --threads --workers "
              "--out --resume --set --json").split()
    assert [f for f in before if f not in out] == []
    assert "--schedule {cosine,onecycle,step,constant}" in out and "(default: onecycle)" in out
    for section in ("data:", "model:", "training:"):
        assert f"\n{section}\n" in out
    assert "train.ema_decay=0.999" in out and "data.in_memory=auto" in out  # --set-only keys, with defaults


def test_a_derived_flag_carries_the_fields_choices_and_default():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, keys=("train.optimizer", "train.ema", "train.lr"))
    add_set_option(parser, "train.lr=0.1")
    by_dest = {a.dest: a for a in parser._actions}
    optimizer = by_dest["train.optimizer"]
    assert optimizer.option_strings == ["--optimizer"] and optimizer.metavar == "{sgd,adamw}"
    assert optimizer.help == "SGD with momentum, or AdamW (default: sgd)"
    assert by_dest["train.ema"].help.endswith("(default: off)") and "--no-ema" in by_dest["train.ema"].option_strings
    assert by_dest["train.lr"].metavar == "FLOAT" and "(default" not in by_dest["train.lr"].help  # None: no default

    cfg = apply_flags(Config(), parser.parse_args(["--optimizer", "adamw", "--ema", "--lr", "0.5",
                                                   "--set", "train.lr=0.25"]))
    assert (cfg.train.optimizer, cfg.train.ema, cfg.train.lr) == ("adamw", True, 0.25)  # --set wins
    untouched = apply_flags(Config(), parser.parse_args([]))
    assert untouched.to_dict() == Config().to_dict()  # flags not given leave the defaults alone
