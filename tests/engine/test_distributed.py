"""`torchrun` on the CPU (gloo): two ranks train one model, shard the data, stop together.

This is the code path a multi-GPU job takes (DESIGN rule 6) minus NCCL; it runs in CI so a
change that makes ranks disagree (a hang in the gradient all-reduce) fails here first.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from cnnkit.data.loader import shard_order, sharded_count


def _torchrun(tmp_path, *args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "cnnkit", "train", "--threads", "1", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_every_rank_gets_the_same_number_of_distinct_indices():
    order = torch.randperm(1001, generator=torch.Generator().manual_seed(0))
    shares = [shard_order(order, r, 4) for r in range(4)]
    assert {len(s) for s in shares} == {sharded_count(1001, 4) // 4} == {250}
    joined = torch.cat(shares)
    assert len(set(joined.tolist())) == len(joined)  # no index on two ranks
    assert torch.equal(shard_order(order, 0, 1), order)


@pytest.mark.timeout(300)
def test_torchrun_two_ranks_train_and_rank0_writes_the_run(tmp_path):
    out = tmp_path / "ddp"
    res = _torchrun(tmp_path, "--data", "digits", "--epochs", "3", "--out", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["environment"]["world_size"] == 2
    assert summary["test"]["accuracy"] > 0.8  # 3 epochs of LeNet-5 on half the data per rank
    assert res.stderr.count("done test:") == 1  # only rank 0 reports


@pytest.mark.timeout(300)
def test_torchrun_trains_the_default_detector(tmp_path):
    """tinydet has parameters its loss never reaches (the FPN's coarse outputs): DDP used to stop with
    "Expected to have finished reduction in the prior iteration"."""
    out = tmp_path / "det"
    _torchrun(tmp_path, "--data", "digits-detect", "--epochs", "1", "--out", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["environment"]["world_size"] == 2 and summary["test"]["map_50"] >= 0.0


@pytest.mark.timeout(300)
def test_torchrun_early_stop_is_taken_by_every_rank(tmp_path):
    # lr ~0: validation never improves after epoch 1, so rank 0 stops after epoch 2 (patience 1);
    # if rank 1 did not stop too it would wait forever in the all-reduce and time out.
    out = tmp_path / "stop"
    _torchrun(tmp_path, "--data", "digits", "--epochs", "6", "--lr", "1e-12", "--patience", "1",
              "--out", str(out), timeout=200)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == 2


LOSE_RANK_1 = """
import os, sys
from cnnkit.engine.trainer import Training

if os.environ["RANK"] == "1":  # this worker dies at the start of epoch 2, as a killed or crashed node would
    run_epoch = Training.run_epoch
    Training.run_epoch = lambda self, epoch: os._exit(7) if epoch == 1 else run_epoch(self, epoch)
from cnnkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.timeout(300)
def test_a_lost_worker_is_one_sentence_on_rank0(tmp_path):
    import socket

    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["train", "--data", "digits", "--model", "lenet5", "--epochs", "2", "--threads", "1",
            "--out", str(tmp_path / "run")]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", LOSE_RANK_1, *args], env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    (_, err0), _ = procs[0].communicate(timeout=240), procs[1].communicate(timeout=60)
    assert procs[1].returncode == 7
    assert procs[0].returncode == 2, err0[-3000:]
    assert "Traceback" not in err0 and "gloo" not in err0.split("cnnkit: error:")[0], err0[-3000:]
    assert "cnnkit: error: Rank 0 of 2 lost contact with another worker under torchrun" in err0, err0[-3000:]
    assert (tmp_path / "run" / "last.pt").exists()  # epoch 1 was kept: --resume continues from it
