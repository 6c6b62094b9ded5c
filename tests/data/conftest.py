"""Helpers shared by the data tests: tiny image files and class trees, a Config for a --data value."""
from __future__ import annotations

import numpy as np
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
