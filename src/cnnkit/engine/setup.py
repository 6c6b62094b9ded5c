"""Run set-up shared by train, eval and predict: seeding, determinism, device choice, run folders."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from cnnkit.config import Config
from cnnkit.errors import CnnkitError

DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting before its first call to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name not in DEVICES and not name.startswith("cuda:"):
        raise CnnkitError(f'Unknown device "{name}": use one of {", ".join(DEVICES)}.')
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CnnkitError(f'--device {name} was asked for but no CUDA GPU is visible; use --device cpu or auto.')
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def make_run_dir(cfg: Config, create: bool = True) -> Path:
    """`--out` as given, else runs/<data>-<model>, with -2, -3 ... when taken."""
    if cfg.train.out:
        path = Path(cfg.train.out)
        if create and (path / "last.pt").exists():
            raise CnnkitError(f"{path} already holds a run: pass --resume {path} to continue it or another --out.")
    else:
        data = Path(cfg.data.name).name or "data"
        model = Path(str(cfg.model.name)).stem
        base = Path("runs") / f"{data}-{model}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
