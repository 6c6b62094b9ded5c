"""Hostile input at the command line (issue 15): each ends in one sentence and exit 2, leaves no half-made
run directory, and a damaged checkpoint is refused instead of predicting garbage."""
import json
import os
import re
import time

import pytest
import torch

from cnnkit.cli import _print_json, main
from cnnkit.engine.checkpoint import FORMAT, save_checkpoint


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_sentence(capsys, pattern, *args):
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (out, err)
    errors = [line for line in err.splitlines() if line.startswith("cnnkit: error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err
    assert re.search(pattern, err), err
    return out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained LeNet-5 for digits saved as cnnkit saves it (no training: these tests only load it)."""
    from cnnkit.config import Config
    from cnnkit.engine.run import resolve_run
    from cnnkit.engine.trainer import checkpoint_meta

    cfg = Config.from_dict({"data": {"name": "digits"}, "model": {"name": "lenet5"}, "train": {"threads": 1}})
    run = resolve_run(cfg, device="cpu")
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, run.model.state_dict(), checkpoint_meta(run.task, run.cfg, run.info, 1, {}))
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "seven.png"
    Image.new("L", (8, 8), 128).save(path)
    return path


def altered(ckpt, tmp_path, edit, keep_checksum=False):
    """A copy of `ckpt` with `edit(payload)` applied; re-saved by cnnkit (fresh checksum) unless `keep_checksum`."""
    payload = torch.load(ckpt, weights_only=True)
    edit(payload)
    path = tmp_path / "best.pt"
    if keep_checksum:
        torch.save(payload, path)
    else:
        meta = {k: v for k, v in payload["meta"].items() if k != "sha256"}
        save_checkpoint(path, payload["model"], meta, payload["state"])
    return path


# ---- 1. bounds on every flag, before anything is allocated ------------------------------------------
@pytest.mark.parametrize("flag, value, message", [
    ("--epochs", "1e26", '"train.epochs" expects int'),
    ("--set", "epochs=1.0e+26", '"train.epochs" must be at most 100000; got 1'),
    ("--epochs", "0", '"train.epochs" must be at least 1; got 0'),
    ("--batch-size", "0", '"train.batch_size" must be at least 1'),
    ("--lr", "-1", '"train.lr" must be greater than 0'),
    ("--threads", "0", '"train.threads" must be at least 1'),
    ("--image-size", "100000", '"data.image_size" must be at most 8192'),
])
def test_train_flag_out_of_bounds_is_one_sentence_and_no_run_dir(capsys, tmp_path, flag, value, message):
    out = tmp_path / "run"
    one_sentence(capsys, message, "train", "--data", "digits", "--out", out, flag, value)
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--top-k", "-2"], "--top-k must be at least 1; got -2"),
    (["--conf", "1.5"], r"--conf must be in \[0, 1\]; got 1.5"),
    (["--iou", "nan"], r"--iou must be in \[0, 1\]; got nan"),
])
def test_predict_flag_out_of_bounds_exits_2(capsys, ckpt, image, args, message):
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(ckpt), str(image), *args])
    assert stop.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_caps_are_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert re.search(r"--epochs INT\s+passes over the training data.*at most 100000", " ".join(
        capsys.readouterr().out.split()))


@pytest.mark.parametrize("layer, message", [
    ("{type: conv, out: 6, k: 3000}", r'Layer 0 \(conv\): field "k" is 3000 above the cap of 64'),
    ("{type: conv, out: 100000000000, k: 3}", r'Layer 0 \(conv\): field "out" is 100000000000 above the cap'),
    ("{type: conv, out: 16000, k: 3}\n  - {type: conv, out: 16000, k: 3}",
     r"Layer 1 \(conv\): the list's parameters reach 2.3e\+09"),
])
def test_info_refuses_a_runaway_layer_list_at_once(capsys, tmp_path, layer, message):
    spec = tmp_path / "net.yaml"
    spec.write_text(f"layers:\n  - {layer}\n  - flatten\n  - {{type: linear}}\n")
    t0 = time.perf_counter()
    one_sentence(capsys, message, "info", spec)
    assert time.perf_counter() - t0 < 5


# ---- 2. one sentence, exit 2, no half-made run directory --------------------------------------------
def test_out_under_a_file_is_one_sentence(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    one_sentence(capsys, r"Cannot create the run directory .*file/run .*writable", "train", "--data", "digits",
                 "--epochs", "1", "--threads", "1", "--out", tmp_path / "file" / "run")


def test_a_save_dir_that_cannot_be_made_is_one_sentence(capsys, ckpt, image, tmp_path):
    (tmp_path / "file").write_text("x")  # any command's file-system refusal ends the same way
    one_sentence(capsys, r"cannot use .*file.* \(Not a directory\)", "predict", ckpt, image, "--save-dir",
                 tmp_path / "file" / "drawings")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder_is_one_sentence(capsys, tmp_path):
    tmp_path.chmod(0o555)
    try:
        one_sentence(capsys, "Cannot create the run directory", "train", "--data", "digits", "--epochs", "1",
                     "--out", tmp_path / "run")
    finally:
        tmp_path.chmod(0o755)


def test_failed_train_removes_the_run_dir_it_made(capsys, tmp_path, monkeypatch):
    from cnnkit.engine.trainer import Training
    from cnnkit.errors import CnnkitError

    def fail(self, epoch):  # the first epoch fails after the run dir and its config.yaml were written
        assert (self.run_dir / "config.yaml").exists()
        raise CnnkitError("The loss became nan at epoch 1, step 1: training stopped.")

    monkeypatch.setattr(Training, "run_epoch", fail)
    out = tmp_path / "run"
    one_sentence(capsys, "loss became nan", "train", "--data", "digits", "--model", "lenet5", "--epochs", "1",
                 "--threads", "1", "--out", out)
    assert not out.exists()  # nothing useful (no best.pt / last.pt) was left behind


def test_deeply_nested_yaml_config_is_one_sentence(capsys, tmp_path):
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("train: " + "[" * 5000 + "]" * 5000 + "\n")
    one_sentence(capsys, "deep.yaml is nested too deeply", "train", "--config", recipe, "--out", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_yaml_alias_bomb_config_is_refused(capsys, tmp_path):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, 12)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    one_sentence(capsys, "expands to .* values", "train", "--config", tmp_path / "bomb.yaml")


def test_train_section_that_is_not_a_mapping(capsys, tmp_path):
    (tmp_path / "r.yaml").write_text("train: 5\n")
    one_sentence(capsys, '"train" must be a mapping', "train", "--config", tmp_path / "r.yaml")


# ---- checkpoints: verified on load (eval, predict, explain, --resume) -------------------------------
def _shape_changed(p):
    p["model"]["features.c1.weight"] = torch.zeros(3, 1, 5, 5)


@pytest.mark.parametrize("command", ["eval", "predict", "explain"])
def test_weights_that_do_not_match_their_architecture(capsys, ckpt, image, tmp_path, command):
    path = altered(ckpt, tmp_path, _shape_changed)
    args = [command, path] + ([image] if command != "eval" else [])
    one_sentence(capsys, r'weights "features.c1.weight" are torch.float32 \(3, 1, 5, 5\) but the architecture it describes '
                         r"needs torch.float32 \(6, 1, 5, 5\)", *args)


def test_checkpoint_without_its_description(capsys, ckpt, image, tmp_path):
    path = altered(ckpt, tmp_path, lambda p: p["meta"].pop("classes"))
    one_sentence(capsys, 'lacks meta "classes"', "predict", path, image)


def test_nan_weights_are_refused(capsys, ckpt, image, tmp_path):
    path = altered(ckpt, tmp_path, lambda p: p["model"]["head.fc.weight"].fill_(float("nan")))
    one_sentence(capsys, 'weights "head.fc.weight" hold NaN or infinite values', "predict", path, image)


def test_weights_cast_to_integers_are_refused(capsys, ckpt, image, tmp_path):
    def cast(p):
        p["model"] = {k: v.long() if v.is_floating_point() else v for k, v in p["model"].items()}

    path = altered(ckpt, tmp_path, cast)
    one_sentence(capsys, r"are torch.int64 .* needs torch.float32", "predict", path, image)


def test_weights_changed_after_saving_fail_the_checksum(capsys, ckpt, image, tmp_path):
    path = altered(ckpt, tmp_path, lambda p: p["model"]["head.fc.bias"].add_(0.5), keep_checksum=True)
    one_sentence(capsys, "fails its checksum", "predict", path, image)


def test_checkpoint_from_before_the_checksum_still_loads(capsys, ckpt, image, tmp_path):
    path = altered(ckpt, tmp_path, lambda p: p["meta"].pop("sha256"), keep_checksum=True)
    code, out, _ = run_cli(capsys, "predict", path, image, "--json")
    assert code == 0 and json.loads(out)[0]["file"] == str(image)


def test_resume_from_a_checkpoint_without_resume_state(capsys, ckpt, tmp_path):
    one_sentence(capsys, "holds no resume state", "train", "--resume", ckpt, "--threads", "1")


def test_resume_from_an_incomplete_resume_state(capsys, ckpt, tmp_path):
    path = altered(ckpt, tmp_path, lambda p: p.update(state={"epoch": 0}))
    one_sentence(capsys, 'incomplete resume state \\(no "optimizer"\\)', "train", "--resume", path)


def test_pickled_code_is_still_refused(capsys, tmp_path, image):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    (tmp_path / "best.pt").write_bytes(pickle.dumps({"format": FORMAT, "x": Evil()}))
    one_sentence(capsys, "Cannot read checkpoint", "predict", tmp_path / "best.pt", image)
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


# ---- 3. exit codes and standard JSON ----------------------------------------------------------------
def test_predict_exits_2_when_no_input_could_be_read(capsys, ckpt, image, tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    one_sentence(capsys, r"None of the 1 input\(s\) could be read \(first: .*bad.png", "predict", ckpt,
                 tmp_path / "bad.png", "--json")
    code, out, _ = run_cli(capsys, "predict", ckpt, tmp_path / "bad.png", image, "--json")
    assert code == 0 and [("error" in r) for r in json.loads(out)] == [True, False]  # partly done: listed


def _strict(text):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_standard_json(capsys):
    import numpy as np

    _print_json({"accuracy": float("nan"), "loss": float("inf"), "per_class": [np.float32("nan"), 0.5],
                 "map": torch.tensor(float("-inf")), "n": np.int64(3)})
    assert _strict(capsys.readouterr().out) == {"accuracy": None, "loss": None, "per_class": [None, 0.5],
                                                "map": None, "n": 3}


def test_train_with_a_config_edited_past_its_checks(tmp_path):
    from cnnkit.config import Config
    from cnnkit.engine.trainer import fit
    from cnnkit.errors import CnnkitError

    cfg = Config()
    cfg.train.epochs, cfg.train.out = 0, str(tmp_path / "run")  # attributes skip Config.set
    with pytest.raises(CnnkitError, match='"train.epochs" must be at least 1; got 0'):
        fit(cfg, quiet=True)
    assert not (tmp_path / "run").exists()


def test_a_run_without_any_validated_epoch_says_so(capsys, tmp_path, monkeypatch):
    from cnnkit.engine.callbacks import EarlyStopping

    monkeypatch.setattr(EarlyStopping, "update", lambda self, value, epoch: False)  # val metric never measured
    out = tmp_path / "run"
    one_sentence(capsys, r"has no best.pt: no epoch measured a finite validation accuracy", "train", "--data",
                 "digits", "--model", "lenet5", "--epochs", "1", "--threads", "1", "--out", out)
    assert (out / "last.pt").exists()  # the weights are kept, and the sentence says where
