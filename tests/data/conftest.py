"""Helpers shared by the data tests: tiny image files and class trees, a Config for a --data value, the
expected epoch order of one rank under torchrun."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.config import Config


def png(path, value=0, size=(8, 8), mode="L"):
    """An image whose pixels all equal `value` (so content identifies the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)
    return path


def class_tree(root, classes=("cat", "dog", "owl"), per_class=10, mode="L", size=(8, 8)):
    for c, name in enumerate(classes):
        for i in range(per_class):
            png(root / name / f"{i}.png", value=c * 50 + i, size=size, mode=mode)
    return root


def cfg_for(path, **data):
    cfg = Config()
    cfg.data.name = str(path)
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


@pytest.fixture
def rank1_of_2_order(monkeypatch):
    """(n, seed, epoch, indices) rank 1 of 2 must see: the seeded permutation of epoch 2, the tail that
    does not divide by the world size dropped, two full batches of 4 (the short one dropped)."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    n, seed, epoch = 21, 3, 2
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return n, seed, epoch, perm[:20][1::2][:8].tolist()
