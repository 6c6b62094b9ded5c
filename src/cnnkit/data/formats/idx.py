"""MNIST-style IDX files (format "idx", task classify): `*-images-idx3-ubyte[.gz]` + `*-labels-idx1-ubyte[.gz]`.

A pair's split comes from its prefix (train / t10k = test / val); a lone pair of any name
is one pool carved into train/val/test by `split_seed`. Class names come from a
`classes.txt` beside the files (one per line), else "0".."K-1". The built-in
`fashion-mnist` is read through `idx_bundle` too.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo, TensorSplit
from cnnkit.data.decode import hidden_name, read_idx, text_lines
from cnnkit.data.limits import cap, raise_hint
from cnnkit.data.registry import register_format
from cnnkit.data.splits import carve_missing
from cnnkit.errors import CnnkitError

_IDX_NAME = re.compile(r"^(?P<prefix>.*?)[-_.]?(?P<kind>images[-_.]idx3|labels[-_.]idx1)[-_.]ubyte(?:\.gz)?$")


def idx_split_name(prefix: str) -> str:
    """'train' / 't10k' / 'test' / 'val' inside an IDX prefix -> split name; other prefixes stay as they are."""
    low = prefix.lower()
    for key, split in (("train", "train"), ("t10k", "test"), ("test", "test"), ("val", "val")):
        if key in low:
            return split
    return prefix or "all"


def find_idx_pairs(root: Path, max_depth: int = 2) -> dict[str, tuple[Path, Path]]:
    """{split: (images file, labels file)} from the shallowest folder under `root` holding IDX pairs.

    Uncompressed files win over .gz twins (torchvision keeps both). A lone images file without
    its labels is ignored here and reported by `idx_bundle` callers through the missing split.
    """
    root = Path(root)
    if root.is_file():
        root, only = root.parent, root.name
    else:
        only = None
    level = [root]
    for _ in range(max_depth + 1):
        pairs = _pairs_in(level, only)
        if pairs or only:
            return pairs
        level = [d for folder in level for d in _subdirs(folder)]
    return {}


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(e for e in folder.iterdir() if e.is_dir() and not hidden_name(e.name))
    except OSError:
        return []


def _pairs_in(folders: list[Path], only: str | None) -> dict[str, tuple[Path, Path]]:
    found: dict[tuple[Path, str], dict[str, Path]] = {}
    for folder in folders:
        try:
            names = sorted(n for n in os.listdir(folder) if not hidden_name(n))  # AppleDouble ._train-...
        except OSError:
            continue
        for name in names:
            m = _IDX_NAME.match(name)
            if not m:
                continue
            slot = found.setdefault((folder, m["prefix"]), {})
            kind = m["kind"][:6]
            if kind not in slot or slot[kind].suffix == ".gz":
                slot[kind] = folder / name
    pairs = {}
    for (_, prefix), slot in sorted(found.items(), key=lambda kv: str(kv[0][0])):  # shallow folders first
        if "images" not in slot or "labels" not in slot:
            continue
        if only is None or only in (slot["images"].name, slot["labels"].name):
            pairs.setdefault(idx_split_name(prefix), (slot["images"], slot["labels"]))
    return pairs


def read_classes_txt(folder: Path) -> list[str] | None:
    """Class names, one per line, from `folder/classes.txt` (None when there is none)."""
    path = folder / "classes.txt"
    if not path.is_file():
        return None
    return text_lines(path)


def load_idx_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(N x C x H x W uint8, N int64) from one IDX pair; CnnkitError naming the file when they disagree."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise CnnkitError(
            f"{images_path} holds {images.dtype} data of shape {images.shape}; "
            "expected uint8 images N x H x W (or N x H x W x 1|3)."
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
        raise CnnkitError(
            f"{labels_path} holds {labels.dtype} labels of shape {labels.shape} for the {len(images)} images in "
            f"{images_path.name}; expected one integer label per image."
        )
    x = torch.from_numpy(images)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(labels.astype(np.int64))


def idx_bundle(pairs: dict[str, tuple[Path, Path]], cfg: Config, classes: list[str] | None, name: str,
               hflip_ok: bool = True) -> DataBundle:
    """Bundle from IDX pairs keyed train/val/test (or one pair of any name, split by `split_seed`)."""
    if "train" not in pairs:
        if len(pairs) != 1:
            raise CnnkitError(
                f"{name} has IDX pairs {', '.join(sorted(pairs)) or '(none)'} but none named train: "
                "name them train-/t10k- like MNIST, or keep a single pair to split it automatically."
            )
        pairs = {"train": next(iter(pairs.values()))}
    data = {split: load_idx_pair(*pairs[split]) for split in ("train", "val", "test") if split in pairs}
    shapes = {tuple(x.shape[1:]) for x, _ in data.values()}
    if len(shapes) > 1:
        raise CnnkitError(f"The IDX files of {name} hold images of different shapes {sorted(shapes)}.")
    top = int(max(int(y.max()) if len(y) else -1 for _, y in data.values()))
    low = int(min(int(y.min()) if len(y) else 0 for _, y in data.values()))
    if classes is None:
        if top >= cap("CNNKIT_MAX_CLASSES"):
            raise CnnkitError(f"The IDX labels of {name} go up to {top}, which would make {top + 1} classes: "
                              f"give the class names in classes.txt, or {raise_hint('CNNKIT_MAX_CLASSES')}.")
        classes = [str(i) for i in range(max(top + 1, 1))]
    if low < 0 or top >= len(classes):
        raise CnnkitError(
            f"The IDX labels of {name} run from {low} to {top} but there are {len(classes)} classes; "
            "fix classes.txt (one class name per line) or the label files."
        )
    x, y = data["train"]
    tr, va, te = carve_missing(y.numpy(), cfg, "val" in data, "test" in data)
    src = pairs["train"][0].name
    splits = {"train": TensorSplit.take(x, y, tr, src)}
    for split, idx in (("val", va), ("test", te)):
        if split in data:
            splits[split] = TensorSplit.take(*data[split], None, pairs[split][0].name)
        else:
            splits[split] = TensorSplit.take(x, y, idx, src)
    c, h, w = x.shape[1:]
    info = DatasetInfo("classify", list(classes), channels=int(c), image_size=int(h) if h == w else (int(h), int(w)),
                       name=name, hflip_ok=hflip_ok, extra={"size": (int(h), int(w))})
    return DataBundle(splits["train"], splits["val"], splits["test"], info)


@register_format("idx", task="classify", detect=lambda p: bool(find_idx_pairs(p)), priority=30)
def load_idx(path: Path, cfg: Config) -> DataBundle:
    pairs = find_idx_pairs(path)
    folder = next(iter(pairs.values()))[0].parent  # classes.txt beside the files, or in the folder given
    classes = read_classes_txt(folder) or read_classes_txt(path if path.is_dir() else path.parent)
    return idx_bundle(pairs, cfg, classes, str(path))
