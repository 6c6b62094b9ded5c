"""Built-in classification sets: `digits` (scikit-learn, always offline) and `fashion-mnist` (IDX files).

Fashion-MNIST is read by the IDX format (`formats/idx.py`). Both sets are held in memory as
one uint8 tensor; arrays are sliced whole, never looped over per image.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

import numpy as np
import torch

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo, TensorSplit
from cnnkit.data.formats.idx import find_idx_pairs, idx_bundle
from cnnkit.data.registry import BUILTINS
from cnnkit.data.splits import carve_missing
from cnnkit.errors import CnnkitError

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
CACHE_DIR = Path("~/.cache/cnnkit").expanduser()  # torchvision's download lands in CACHE_DIR/FashionMNIST/raw
DOWNLOAD_TIMEOUT_S = 20  # per socket operation, so an offline machine fails fast instead of hanging


@BUILTINS.register("digits", task="classify")
def digits(cfg: Config) -> DataBundle:
    """scikit-learn's 1,797 8x8 handwritten digits (values 0..16 -> 0..255), split with `split_seed`."""
    from sklearn.datasets import load_digits

    d = load_digits()
    lut = np.array([round(v * 255 / 16) for v in range(17)], dtype=np.uint8)
    images = torch.from_numpy(lut[d.images.astype(np.int64)][:, None])  # N x 1 x 8 x 8
    labels = torch.from_numpy(d.target.astype(np.int64))
    idx = carve_missing(d.target, cfg, have_val=False, have_test=False)
    tr, va, te = (TensorSplit.take(images, labels, i, "digits") for i in idx)
    info = DatasetInfo("classify", [str(i) for i in range(10)], channels=1, image_size=8, name="digits",
                       hflip_ok=False, extra={"size": (8, 8)})
    return DataBundle(tr, va, te, info)


@BUILTINS.register("fashion-mnist", task="classify")
def fashion_mnist(cfg: Config) -> DataBundle:
    """Zalando's 70,000 28x28 clothing images: the official 10k test set is `test`, val is carved from train."""
    for folder in _fashion_places(cfg):
        pairs = find_idx_pairs(folder)
        if "train" in pairs and "test" in pairs:
            return idx_bundle(pairs, cfg, FASHION_CLASSES, "fashion-mnist", hflip_ok=True)
    if os.environ.get("CNNKIT_OFFLINE") != "1":
        pairs = find_idx_pairs(_download_fashion())
        if "train" in pairs and "test" in pairs:
            return idx_bundle(pairs, cfg, FASHION_CLASSES, "fashion-mnist", hflip_ok=True)
    raise CnnkitError(
        "Fashion-MNIST not found: install it with `apt-get install dataset-fashion-mnist` "
        "or pass --root DIR with the IDX files."
    )


def _fashion_places(cfg: Config) -> list[Path]:
    places = [Path(cfg.data.root).expanduser()] if cfg.data.root else []
    return [p for p in places + [DEBIAN_FASHION, CACHE_DIR / "FashionMNIST"] if p.is_dir()]


def _download_fashion() -> Path:
    """torchvision's downloader into CACHE_DIR; any failure (no network) just means "not found"."""
    from torchvision.datasets import FashionMNIST

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout clean for --json
            for train in (True, False):
                FashionMNIST(str(CACHE_DIR), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - offline, proxy, partial file: all end in the "not found" sentence
        print(f"cnnkit: downloading Fashion-MNIST failed ({type(e).__name__}: {e})", file=sys.stderr)
    finally:
        socket.setdefaulttimeout(old)
    return CACHE_DIR / "FashionMNIST"
