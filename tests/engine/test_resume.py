"""Kill -9 mid-epoch, resume, and end bit-identical to an uninterrupted run (CPU)."""
import os
import signal
import subprocess
import sys
import time

import torch

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
