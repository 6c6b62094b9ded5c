"""Generated detection/segmentation canvases and the built-in `digits-detect` set.

`make_canvases` pastes small images from any classification source (scikit-learn's
8x8 digits by default, or e.g. a Fashion-MNIST `TensorSplit`) onto black square
canvases: 1-6 objects each, scaled 2-4x, placed with limited overlap, all from one seed.
Per canvas it returns the uint8 image, boxes (xyxy float, tight around the object's
pixels), labels (0-based index of the source class), per-instance binary masks (the
object's pixels above a threshold; for solid objects such as clothing, with enclosed holes
filled) and a semantic mask (0 = background, 1 + class;
later objects overwrite earlier ones). Objects are composited with a pixel-wise max, so
overlapping strokes stay visible, as ink would.

`digits-detect` (task detect): 1500 / 300 / 300 canvases (train / val / test, see
`CANVAS_COUNTS`) of side `data.canvas_size` (96), seeded by `data.split_seed`. Source
digits come from disjoint contiguous blocks of the digits file (first 70 % for train
canvases, next 15 % for val, last 15 % for test): the file keeps its writers' samples
together, so val/test canvases show digit samples (largely writers) the model never saw.
`digits-seg` (the segmentation task) reuses `digit_canvases` for the very same canvases.
`fashion-detect` / `fashion-seg` build the same kind of canvases from Fashion-MNIST items
(`CANVAS_SOURCES`), when Fashion-MNIST is installed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo, TensorSplit
from cnnkit.data.detection import DetectionSplit
from cnnkit.data.registry import BUILTINS
from cnnkit.errors import CnnkitError

CANVAS_COUNTS = {"train": 1500, "val": 300, "test": 300}
DIGIT_BLOCKS = {"train": (0.0, 0.7), "val": (0.7, 0.85), "test": (0.85, 1.0)}  # share of the digits file
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}  # independent random streams per split


@dataclass
class Canvases:
    images: torch.Tensor  # N x C x S x S uint8
    boxes: list[torch.Tensor]  # per canvas (k, 4) float32 xyxy, pixel edges (x2 = last column + 1)
    labels: list[torch.Tensor]  # per canvas (k,) int64
    masks: list[torch.Tensor]  # per canvas (k, S, S) uint8 in {0, 1}
    semantic: torch.Tensor  # N x S x S uint8: 0 background, 1 + class

    def __len__(self) -> int:
        return len(self.images)

    def to_split(self, prefix: str = "canvas") -> DetectionSplit:
        n = len(self)
        return DetectionSplit(images=self.images, boxes=self.boxes, labels=self.labels,
                              iscrowd=[torch.zeros(len(lab), dtype=torch.int64) for lab in self.labels],
                              masks=self.masks, names=[f"{prefix}_{i:05d}.png" for i in range(n)],
                              channels=self.images.shape[1])


def make_canvases(n: int, size: int, seed: int, source_images, source_labels=None, min_digits: int = 1,
                  max_digits: int = 6, scale: tuple[float, float] = (2.0, 4.0), max_overlap: float = 0.2,
                  threshold: float = 0.25, fill_holes: bool = False, attempts: int = 30) -> Canvases:
    """`n` canvases of side `size` made of objects from a classification source.

    Args:
        source_images: uint8 N x C x h x w (or N x h x w) tensor/array, or a `TensorSplit`
            (its labels are used when `source_labels` is None).
        source_labels: class index per source image.
        scale: range of the (uniform, continuous) factor applied to the source side.
        max_overlap: largest share of the smaller box another box may cover.
        threshold: share of full intensity above which a pixel belongs to the object mask.
        fill_holes: also count enclosed background inside the object (solid objects such as
            clothing, whose dark patterns would otherwise punch holes in the mask); off for
            strokes, where the loop of a 0 or 8 is background.
        attempts: placements tried per object before it is left out (crowded canvas).
    """
    if isinstance(source_images, TensorSplit):
        if source_labels is None:
            source_labels = source_images.labels
        source_images = source_images.images
    src = torch.as_tensor(np.asarray(source_images) if not isinstance(source_images, torch.Tensor)
                          else source_images)
    if src.ndim == 3:
        src = src[:, None]
    if src.dtype != torch.uint8 or src.ndim != 4 or source_labels is None or len(src) != len(source_labels):
        raise CnnkitError("make_canvases needs uint8 source images (N x C x h x w) and one label per image.")
    labels_src = torch.as_tensor(np.asarray(source_labels), dtype=torch.int64)
    c, h0, w0 = src.shape[1:]
    src_f = src.float()
    label_list = labels_src.tolist()
    rng = np.random.default_rng(seed)
    images = np.zeros((n, c, size, size), dtype=np.uint8)
    semantic = np.zeros((n, size, size), dtype=np.uint8)
    all_boxes, all_labels, all_masks = [], [], []
    cut = threshold * 255
    # numpy for the per-object bookkeeping: torch's per-call overhead on 8x8 patches was 3x slower.
    for i in range(n):
        boxes, labels, masks = [], [], []
        for _ in range(int(rng.integers(min_digits, max_digits + 1))):
            for _ in range(attempts):
                k = int(rng.integers(len(src)))
                s = float(rng.uniform(*scale))
                h, w = min(size, max(1, round(h0 * s))), min(size, max(1, round(w0 * s)))
                y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
                patch = F.interpolate(src_f[k][None], size=(h, w), mode="bilinear",
                                      align_corners=False)[0].clamp_(0, 255).round_().numpy()
                on = patch.sum(0) >= cut * c
                if fill_holes:
                    on = ndimage.binary_fill_holes(on)
                rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
                if not len(rows):
                    continue
                box = np.array([x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1], dtype=np.float32)
                if boxes and _overlap(box, np.stack(boxes)) > max_overlap:
                    continue
                region = images[i, :, y:y + h, x:x + w]
                np.maximum(region, patch.astype(np.uint8), out=region)
                mask = np.zeros((size, size), dtype=np.uint8)
                mask[y:y + h, x:x + w] = on
                semantic[i, y:y + h, x:x + w][on] = label_list[k] + 1
                boxes.append(box), labels.append(label_list[k]), masks.append(mask)
                break
        all_boxes.append(torch.from_numpy(np.stack(boxes)) if boxes else torch.zeros((0, 4)))
        all_labels.append(torch.tensor(labels, dtype=torch.int64))
        all_masks.append(torch.from_numpy(np.stack(masks)) if masks
                         else torch.zeros((0, size, size), dtype=torch.uint8))
    return Canvases(torch.from_numpy(images), all_boxes, all_labels, all_masks, torch.from_numpy(semantic))


def _overlap(box: np.ndarray, others: np.ndarray) -> float:
    """Largest intersection / smaller-box area between `box` and `others`."""
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = (rb - lt).clip(min=0).prod(1)
    area = (box[2:] - box[:2]).prod()
    other_area = (others[:, 2:] - others[:, :2]).prod(1)
    return float((inter / np.minimum(area, other_area).clip(min=1e-6)).max())


def digit_sources(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The block of scikit-learn's digits feeding `split`'s canvases: uint8 N x 1 x 8 x 8 (0..255), labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(np.round(d.images * (255 / 16)).astype(np.uint8))[:, None]
    lo, hi = DIGIT_BLOCKS[split]
    a, b = round(lo * len(images)), round(hi * len(images))
    return images[a:b], torch.from_numpy(d.target[a:b].astype(np.int64))


def digit_canvases(split: str, size: int = 96, seed: int = 0, n: int | None = None) -> Canvases:
    """The canvases of `digits-detect` (and `digits-seg`) for one split."""
    images, labels = digit_sources(split)
    return make_canvases(CANVAS_COUNTS[split] if n is None else n, size, seed * 10 + _SPLIT_STREAM[split],
                         images, labels)


# ---- the built-in canvas sets -------------------------------------------------------------------
@dataclass(frozen=True)
class CanvasSource:
    """Where a built-in canvas set takes its objects from, and how big they are drawn."""

    description: str
    scale: tuple[float, float]
    min_canvas: int  # smallest canvas side the largest object still fits on
    threshold: float = 0.25  # share of full intensity that makes a pixel part of the object
    fill_holes: bool = False  # solid objects: enclosed dark patches belong to the object


CANVAS_SOURCES = {
    "digits": CanvasSource("scikit-learn digits (8x8), scaled 2-4x", (2.0, 4.0), 32),
    # Fashion-MNIST items are 28x28 already: drawn at 1-2x so several fit on a 96-pixel canvas.
    # Their background is 0 and their dark prints are still cloth: a 0.25 cut left ~15 % of an
    # item's area out of its mask (sandals 0.21 vs 0.29 of the 28x28 square), so 0.05 + hole filling.
    "fashion-mnist": CanvasSource("Fashion-MNIST items (28x28), scaled 1-2x", (1.0, 2.0), 64,
                                  threshold=0.05, fill_holes=True),
}


def canvas_splits(source: str, cfg: Config) -> tuple[dict[str, Canvases], list[str]]:
    """train/val/test canvases of a built-in canvas set and its object classes.

    digits: disjoint blocks of the digits file (see `DIGIT_BLOCKS`). fashion-mnist: objects of
    canvas split s come from Fashion-MNIST's split s (val carved from train, test = the official test
    set), so val/test canvases show items the model never saw either.
    """
    spec = CANVAS_SOURCES[source]
    size, seed = int(cfg.data.canvas_size), int(cfg.data.split_seed)
    if size < spec.min_canvas:
        raise CnnkitError(f"data.canvas_size={size} is too small for {spec.description}: "
                          f"use {spec.min_canvas} or more.")
    if source == "digits":
        return {s: digit_canvases(s, size, seed) for s in ("train", "val", "test")}, [str(i) for i in range(10)]
    bundle = BUILTINS.get(source)(cfg)  # the classification set (e.g. fashion-mnist: its own error if absent)
    out = {s: make_canvases(CANVAS_COUNTS[s], size, seed * 10 + _SPLIT_STREAM[s], bundle.split(s),
                            scale=spec.scale, threshold=spec.threshold, fill_holes=spec.fill_holes)
           for s in ("train", "val", "test")}
    return out, list(bundle.info.classes)


def _detect_bundle(name: str, source: str, cfg: Config) -> DataBundle:
    canvases, classes = canvas_splits(source, cfg)
    return canvas_bundle(name, "detect", source, cfg, {s: c.to_split(s) for s, c in canvases.items()}, classes)


def canvas_bundle(name: str, task: str, source: str, cfg: Config, splits: dict, classes: list[str],
                  **extra) -> DataBundle:
    """The `DataBundle` of a built-in canvas set (one-channel canvases of side `data.canvas_size`)."""
    info = DatasetInfo(task=task, classes=classes, channels=1, image_size=int(cfg.data.canvas_size), name=name,
                       hflip_ok=False,
                       extra={"counts": {s: len(v) for s, v in splits.items()}, "n_train": len(splits["train"]),
                              "source": CANVAS_SOURCES[source].description,
                              "canvas_seed": int(cfg.data.split_seed), **extra})
    return DataBundle(splits["train"], splits["val"], splits["test"], info)


@BUILTINS.register("digits-detect", task="detect")
def digits_detect(cfg: Config) -> DataBundle:
    return _detect_bundle("digits-detect", "digits", cfg)


@BUILTINS.register("fashion-detect", task="detect")
def fashion_detect(cfg: Config) -> DataBundle:
    """Canvases of Fashion-MNIST items (needs Fashion-MNIST, as `--data fashion-mnist` does)."""
    return _detect_bundle("fashion-detect", "fashion-mnist", cfg)
