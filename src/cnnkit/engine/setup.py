"""Run set-up shared by train, eval and predict: seeding, determinism, threads, run folders
(the device and what it computes natively: `cnnkit.devices`)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from cnnkit.config import Config
from cnnkit.errors import CnnkitError


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting before its first call to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


def configure_threads(threads: int | None) -> int:
    """Set torch's CPU threads: the asked number, else all cores but one (1 on a 2-core machine).

    Why not torch's default of every core: its OpenMP workers spin-wait, and when any other
    process wants a core they collapse. Measured on a busy 2-core machine: a LeNet-5 epoch on
    digits took 12.4 s with 2 threads against 1.4 s with 1; a ResNet-20 step 6.4 s against 2.4 s.
    OMP_NUM_THREADS, when set, is respected as the user's choice.
    """
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    return threads


def make_run_dir(cfg: Config, create: bool = True, suffix: str = "") -> Path:
    """`--out` as given, else runs/<data>-<model><suffix>, with -2, -3 ... when taken."""
    if cfg.train.out:
        path = Path(cfg.train.out)
        if create and (path / "last.pt").exists():
            raise CnnkitError(f"{path} already holds a run: pass --resume {path} to continue it or another --out.")
    else:
        data = Path(cfg.data.name).name or "data"
        model = Path(str(cfg.model.name)).stem
        base = Path("runs") / f"{data}-{model}{suffix}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
