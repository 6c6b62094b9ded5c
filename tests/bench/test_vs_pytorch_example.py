"""bench/vs_pytorch_example.py (the repository's benchmark script) on a smoke budget: it writes every key."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnkit.data.builtin.classification import DEBIAN_FASHION

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "vs_pytorch_example.py"
KEYS = ("baseline_time_to_913_s", "cnnkit_time_to_913_s", "cnnkit_time_to_930_s", "cnnkit_time_to_940_s",
        "cnnkit_time_to_950_s", "ratio_913", "baseline_epochs",
        "cnnkit_epochs", "threads", "machine")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason=f"Fashion-MNIST is not installed at {DEBIAN_FASHION} "
                                                         "(apt-get install dataset-fashion-mnist)")
def test_smoke_run_writes_the_keys(tmp_path):
    out = tmp_path / "vs.json"
    # parallel mode pins one core to each side; a machine (or CPU set) with one core runs them in turn
    mode = "parallel" if len(os.sched_getaffinity(0)) >= 2 else "sequential"
    subprocess.run([sys.executable, str(SCRIPT), "--limit", "512", "--epochs", "1", "--out", str(out),
                    "--mode", mode], check=True, timeout=600, stdout=subprocess.DEVNULL)
    r = json.loads(out.read_text())
    assert set(KEYS) <= set(r)
    assert r["threads"] == 1 and r["mode"] == mode and r["limit"] == 512
    for key in ("baseline_epochs", "cnnkit_epochs"):
        (epoch,) = r[key]
        assert epoch["epoch"] == 1 and 0 < epoch["elapsed_s"] <= epoch["wall_s"] and 0 <= epoch["test_accuracy"] <= 1
    # a time is null exactly when no epoch reached the accuracy; the ratio only when both exist
    reached = r["baseline_epochs"][0]["test_accuracy"] >= 0.913
    assert (r["baseline_time_to_913_s"] is not None) == reached
    for k in ("913", "930", "940", "950"):
        assert (r[f"cnnkit_time_to_{k}_s"] is not None) == (r["cnnkit_epochs"][0]["test_accuracy"] >= int(k) / 1000)
    assert (r["ratio_913"] is None) == (r["baseline_time_to_913_s"] is None or r["cnnkit_time_to_913_s"] is None)
    assert r["cnnkit_config"]["model"]["name"] == "smallcnn" and r["cnnkit_config"]["train"]["channels_last"]
