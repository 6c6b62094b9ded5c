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
    (["train", "--data", "digits", "--set", "data.random_erasing=true"], '"data.random_erasing" expects float, got True'),
    (["train", "--data", "digits", "--set", "train.amp=2"], '"train.amp" expects bool, got 2'),
    (["train", "--data", "digits", "--optimizer", "sgd", "--set", "train.schedule=cosin"],
     '"train.schedule" must be one of cosine, onecycle, step, constant; got "cosin". Did you mean "cosine"'),
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


# ----- data commands: the advice of their own errors works, --strict ---------------------------
def _class_tree(root, bad=0):
    """3 classes x 10 grey 8x8 PNGs, plus `bad` zero-byte files."""
    import numpy as np
    from PIL import Image

    for c, name in enumerate(("cat", "dog", "owl")):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8), c * 50 + i, np.uint8)).save(root / name / f"{i}.png")
    for i in range(bad):
        (root / "dog" / f"zero{i}.png").write_bytes(b"")
    return root


def test_data_convert_takes_the_set_its_error_advises(capsys, tmp_path):
    import re

    src = _class_tree(tmp_path / "src", bad=2)  # 2 of 32 files > the default max_bad of 1 %
    code, _, err = run_cli(capsys, "data", "convert", str(src), "--to", "folders", str(tmp_path / "out"))
    assert code == 2
    advice = re.search(r"--set (data\.max_bad=\d+)", err)
    assert advice, err
    code, out, err = run_cli(capsys, "data", "convert", str(src), "--to", "folders", str(tmp_path / "out"),
                             "--set", advice.group(1))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) != []
    assert len(list((tmp_path / "out").rglob("*.png"))) == 30  # the 30 good images, the 2 bad ones skipped


def test_data_commands_map_set_and_flags_onto_the_config(capsys, tmp_path):
    code, _, err = run_cli(capsys, "data", "make", "digits", str(tmp_path / "o"), "--format", "folders",
                           "--set", "data.augment=stong")
    assert code == 2 and err.count("\n") == 1 and 'Did you mean "strong"?' in err
    code, _, err = run_cli(capsys, "data", "inspect", "digits", "--canvas-size", "0")
    assert code == 2 and 'Config key "data.canvas_size" must be at least 1; got 0.' in err


def test_data_inspect_strict_exits_1_on_any_problem_and_lists_it(capsys, tmp_path):
    clean = _class_tree(tmp_path / "clean")
    code, out, _ = run_cli(capsys, "data", "inspect", str(clean), "--strict", "--json")
    assert code == 0 and json.loads(out)["issues"] == []
    dirty = _class_tree(tmp_path / "dirty", bad=1)
    code, out, err = run_cli(capsys, "data", "inspect", str(dirty), "--json")
    assert code == 0  # without --strict the report is information
    code, out, err = run_cli(capsys, "data", "inspect", str(dirty), "--strict", "--json")
    issues = json.loads(out)["issues"]
    assert code == 1 and [i["kind"] for i in issues] == ["zero-byte"] and "zero0.png" in issues[0]["file"]
    assert err == f"cnnkit: data inspect --strict: 1 problem(s) in {dirty}\n"
    code, out, _ = run_cli(capsys, "data", "inspect", str(dirty), "--strict")
    assert code == 1 and "zero-byte: the file is empty" in out  # the table (the file column is cut at 80 columns)
