"""engine/setup.py: seeding, thread count, device choice and run-folder naming."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.config import Config
from cnnkit.devices import pick_device
from cnnkit.engine.setup import configure_threads, make_run_dir, seed_everything
from cnnkit.errors import CnnkitError


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_replays_python_numpy_and_torch():
    seed_everything(7)
    a = _draws()
    seed_everything(7)
    assert _draws() == a
    seed_everything(8)
    assert _draws() != a


def test_configure_threads_sets_the_asked_number_and_respects_omp(monkeypatch):
    old = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert configure_threads(None) == torch.get_num_threads() == 1  # the user's choice, untouched
    finally:
        torch.set_num_threads(old)


def test_pick_device_refuses_unknown_names_and_absent_gpus(monkeypatch):
    with pytest.raises(CnnkitError) as e:
        pick_device("gpu")
    assert str(e.value) == 'Unknown device "gpu": use one of auto, cpu, cuda, mps.'
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CnnkitError) as e:
        pick_device("cuda:1")
    assert str(e.value) == "--device cuda:1 was asked for but no CUDA GPU is visible; use --device cpu or auto."
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu") == pick_device("cpu")
    with pytest.raises(CnnkitError) as e:  # was PyTorch's "not linked with support for mps devices" traceback
        pick_device("mps")
    assert str(e.value) == "--device mps (an Apple GPU) was asked for but this machine has none; use --device cpu or auto."


def test_make_run_dir_numbers_taken_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config()
    cfg.data.name, cfg.model.name = "some/where/shapes", "nets/small.yaml"
    assert make_run_dir(cfg, create=False) == Path("runs/shapes-small")
    assert not Path("runs").exists()  # create=False only names it
    made = [make_run_dir(cfg) for _ in range(3)]
    assert made == [Path("runs/shapes-small"), Path("runs/shapes-small-2"), Path("runs/shapes-small-3")]
    assert all(p.is_dir() for p in made)


def test_make_run_dir_refuses_an_out_that_holds_a_run(tmp_path):
    cfg = Config()
    cfg.train.out = str(tmp_path / "run")
    assert make_run_dir(cfg) == tmp_path / "run" and (tmp_path / "run").is_dir()
    (tmp_path / "run" / "last.pt").write_bytes(b"")
    with pytest.raises(CnnkitError) as e:
        make_run_dir(cfg)
    assert str(e.value) == (f"{tmp_path / 'run'} already holds a run: pass --resume {tmp_path / 'run'} "
                            "to continue it or another --out.")
