"""The command line: one clear sentence (no traceback) for each user mistake; --json is pure JSON."""
import json
import subprocess
import sys

import pytest

from cnnkit.cli import main


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "digitz"], 'Unknown dataset "digitz".*Did you mean "digits"'),
    (["train", "--data", "./no/such/folder"], "Data path no/such/folder does not exist"),
    (["train", "--data", "digits", "--model", "lenet6"], 'Unknown model "lenet6".*Did you mean "lenet5"'),
    (["train", "--data", "digits", "--set", "train.lrr=0.1"], 'Unknown config key "train.lrr".*Did you mean'),
    (["train", "--data", "digits", "--set", "epochs=lots"], '"train.epochs" expects int'),
    (["train", "--data", "digits", "--optimizer", "sgd", "--set", "train.schedule=cosin"],
     'Unknown schedule "cosin".*Did you mean "cosine"'),
    (["eval", "no_such_run"], "Checkpoint no_such_run does not exist"),
])
def test_user_errors_are_one_sentence(capsys, tmp_path, args, message):
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "run"), "--epochs", "1"]
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("cnnkit: error: ")
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_corrupt_checkpoint_is_one_sentence(capsys, tmp_path):
    (tmp_path / "best.pt").write_bytes(b"\x00not a checkpoint")
    code, _, err = run_cli(capsys, "predict", str(tmp_path), "x.png")
    assert code == 2 and "Cannot read checkpoint" in err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--data", "--model", "--epochs", "--resume", "--patience", "--augment", "--set"):
        assert flag in out


def test_python_dash_m_runs_models_listing():
    res = subprocess.run([sys.executable, "-m", "cnnkit", "models", "lenet*", "--json"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    names = [r["name"] for r in json.loads(res.stdout)]
    assert "lenet5" in names
