"""Kill -9 mid-epoch, resume, and end bit-identical to an uninterrupted run (CPU); what flags given
with --resume do (engine/resume.py): --epochs extends, --threads applies, a changed --lr is refused."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import cnnkit
from cnnkit.cli import main
from cnnkit.errors import CnnkitError

ARGS = ["train", "--data", "digits", "--model", "lenet5", "--epochs", "4", "--seed", "3", "--json",
        "--set", "train.threads=1"]


def _cnnkit(*args, **kw):
    env = {**os.environ, "CNNKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cnnkit", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    full = _cnnkit(*ARGS, "--out", str(tmp_path / "full"))
    killed = _cnnkit(*ARGS, "--out", str(tmp_path / "killed"))
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert killed.poll() is None, "run ended before it could be interrupted"
    time.sleep(0.3)  # into the second epoch
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    epoch_at_kill = torch.load(last, weights_only=True)["meta"]["epoch"]
    assert epoch_at_kill < 4, "the run had finished before the kill"

    resumed = _cnnkit("train", "--resume", str(tmp_path / "killed"), "--json")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()[-2000:]
    full.communicate(timeout=300)
    assert full.returncode == 0

    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["meta"]["epoch"] == b["meta"]["epoch"] == 4
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["state"]["history"][-1]["val_accuracy"] == b["state"]["history"][-1]["val_accuracy"]


# ---- --resume with other flags: epochs extend, runtime flags apply, anything else is refused ----------
def _short_run(out, epochs=2):
    return cnnkit.train(data="digits", model="lenet5", epochs=epochs, threads=1, out=str(out), quiet=True)


def _rows(run_dir):
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


def test_epochs_extends_a_finished_run_on_the_rebuilt_schedule(tmp_path, capsys):
    run_dir = tmp_path / "ext"
    before = _rows(_short_run(run_dir).dir)
    steps = 39  # digits train split 1,258 images / batch 32 (lenet5's default), drop_last
    assert main(["train", "--resume", str(run_dir), "--epochs", "3", "--threads", "1"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # rich may wrap long lines
    assert f"extending {run_dir} from 2 to 3 epochs: the onecycle schedule is rebuilt for 3 epochs" in err
    assert f"continues at step {2 * steps}" in err
    rows = _rows(run_dir)
    assert len(rows) == 3 and rows[:2] == before  # the recorded epochs are kept as they were
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 3
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert last["meta"]["epoch"] == 3 and last["meta"]["config"]["train"]["epochs"] == 3
    assert json.loads((run_dir / "summary.json").read_text())["epochs_run"] == 3
    # reference: torch's OneCycleLR for 3 epochs, as `build_scheduler` configures it, at the last step
    lr = last["meta"]["config"]["train"]["lr"]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=3 * steps, pct_start=0.25,
                                              anneal_strategy="cos", div_factor=25.0, final_div_factor=1e3)
    for _ in range(3 * steps):
        opt.step()
        ref.step()
    assert float(rows[2]["lr"]) == pytest.approx(ref.get_last_lr()[0], rel=1e-9)


def test_conflicting_flags_are_refused_naming_each(tmp_path, capsys):
    run_dir = tmp_path / "rf"
    _short_run(run_dir)
    assert main(["train", "--resume", str(run_dir), "--epochs", "4", "--lr", "0.5", "--seed", "1",
                 "--set", "train.momentum=0.8", "--threads", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"--resume continues {run_dir} as recorded; --lr 0.5, --seed 1 and --set train.momentum=0.8 differ "
            "from it (recorded lr 0.05, seed 0, train.momentum 0.9): drop them, or start a new run with them and "
            "another --out.") in err and "Traceback" not in err
    with pytest.raises(CnnkitError, match=r"--data fashion-mnist differs from it \(recorded data digits\)"):
        cnnkit.train(resume=str(run_dir), data="fashion-mnist")
    with pytest.raises(CnnkitError, match=r"--patience 3 differs from it \(recorded patience off\)"):
        cnnkit.train(resume=str(run_dir), patience=3)  # an unset key reads "off", not Python's None
    with pytest.raises(CnnkitError, match="--epochs can only extend a run"):
        cnnkit.train(resume=str(run_dir), epochs=1)
    assert len(_rows(run_dir)) == 2  # nothing was trained or rewritten
    # the advice works as printed: dropped (or equal to the record, or runtime-only) flags resume ...
    run = cnnkit.train(resume=str(run_dir), data="digits", lr=0.05, threads=1, quiet=True)
    assert run.summary["epochs_run"] == 2
    # ... and a new run takes them
    assert main(["train", "--data", "digits", "--model", "lenet5", "--epochs", "1", "--lr", "0.5", "--seed", "1",
                 "--set", "train.momentum=0.8", "--threads", "1", "--out", str(tmp_path / "new"), "--json"]) == 0
    recorded = yaml.safe_load((tmp_path / "new" / "config.yaml").read_text())["train"]
    assert (recorded["lr"], recorded["seed"], recorded["momentum"]) == (0.5, 1, 0.8)


def test_interrupted_run_extended_trains_to_the_new_end(tmp_path, monkeypatch, capsys):
    from cnnkit.engine.trainer import Training

    run_epoch = Training.run_epoch

    def interrupted(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt  # as a Ctrl-C after the first of three epochs
        return run_epoch(self, epoch)

    monkeypatch.setattr(Training, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _short_run(tmp_path / "cut", epochs=3)
    monkeypatch.setattr(Training, "run_epoch", run_epoch)
    assert len(_rows(tmp_path / "cut")) == 1
    run = cnnkit.train(resume=str(tmp_path / "cut"), epochs=4, threads=1)
    assert "resuming" in capsys.readouterr().err
    assert [int(r["epoch"]) for r in _rows(run.dir)] == [1, 2, 3, 4]
    assert run.summary["epochs_run"] == 4
    assert torch.load(run.dir / "last.pt", weights_only=True)["meta"]["epoch"] == 4


def test_early_stopped_run_is_finished_and_cannot_be_extended(tmp_path, capsys):
    run_dir = tmp_path / "es"  # lr 1e-9: validation cannot improve after epoch 1, patience 1 stops at 2 of 5
    cnnkit.train(data="digits", model="lenet5", epochs=5, patience=1, lr=1e-9, schedule="constant", threads=1,
                 out=str(run_dir), quiet=True)
    assert len(_rows(run_dir)) == 2
    with pytest.raises(CnnkitError, match=r"stopped early at epoch 2 .* --epochs 8 cannot extend it"):
        cnnkit.train(resume=str(run_dir), epochs=8)
    capsys.readouterr()
    run = cnnkit.train(resume=str(run_dir), threads=1)
    assert "had already finished (stopped early at epoch 2); re-testing best.pt" in " ".join(
        capsys.readouterr().err.split())
    assert len(_rows(run_dir)) == 2 and run.summary["epochs_run"] == 2
