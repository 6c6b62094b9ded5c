"""Detection data in memory and on the move: `DetectionSplit`, box-aware augmentation, the loader.

A `DetectionSplit` holds images (one uint8 N x C x H x W tensor for generated sets, or
file paths decoded on demand) and per-image targets: boxes (xyxy float pixels), labels
(0-based class index), `iscrowd` (1 = crowd / VOC difficult: ignored by training, matched
as crowd by COCOeval) and optional instance masks (uint8 k x H x W tensors, or raw COCO
polygons/RLE decoded on demand). Readers (coco/yolo/voc) and the canvas generator build
it; detection and instance segmentation both read it through `DetectionLoader`.

A batch is `(images, targets)`: a list of uint8 C x H x W tensors (sizes may differ —
torchvision's detectors resize and pad them themselves) and a list of target dicts.
Augmentation is transforms.v2 on tv_tensors (Image + BoundingBoxes [+ Mask]) so boxes
and masks follow the pixels, each sample seeded by (seed, epoch, index) — except the default
"light" preset, which `DetBatchAugment` (data/det_augment.py) applies to whole batches from a
generator seeded by (seed, epoch, batch): either way epochs repeat whatever the number of workers.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from cnnkit.config import Config
from cnnkit.data.base import BadFile
from cnnkit.data.decode import BadImage, read_image
from cnnkit.data.det_augment import LIGHT_JITTER, LIGHT_SCALE_RANGE, DetBatchAugment
from cnnkit.data.loader import EpochOrder, collate_usable, usable_batches
from cnnkit.data.splits import carve_splits
from cnnkit.data.transforms import check_preset
from cnnkit.errors import CnnkitError


@dataclass
class DetectionSplit:
    """Images + per-image boxes/labels (see module docstring)."""

    images: torch.Tensor | list[str]
    boxes: list[torch.Tensor]  # per image: (k, 4) float32 xyxy pixels
    labels: list[torch.Tensor]  # per image: (k,) int64 class index
    iscrowd: list[torch.Tensor] | None = None  # per image: (k,) int64, 1 = ignore in training
    masks: list[Any] | None = None  # per image: (k, H, W) uint8, or a list of COCO segmentations
    sizes: list[tuple[int, int]] | None = None  # (H, W) per image
    names: list[str] | None = None  # file name per image (reports, writers)
    channels: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.images, torch.Tensor)

    def size(self, i: int) -> tuple[int, int]:
        if self.in_memory:
            return tuple(self.images.shape[-2:])
        return tuple(self.sizes[i])

    def name(self, i: int) -> str:
        if self.names is not None:
            return self.names[i]
        return self.images[i] if not self.in_memory else f"image_{i:06d}.png"

    def image(self, i: int) -> torch.Tensor:
        """uint8 C x H x W; raises `cnnkit.data.decode.BadImage` for a file that cannot be decoded."""
        if self.in_memory:
            return self.images[i]
        return read_image(self.images[i], self.channels)

    def target(self, i: int, masks: bool = False) -> dict[str, torch.Tensor]:
        t = {"boxes": self.boxes[i], "labels": self.labels[i],
             "iscrowd": self.iscrowd[i] if self.iscrowd is not None else torch.zeros_like(self.labels[i])}
        if masks:
            t["masks"] = self.instance_masks(i)
        return t

    def instance_masks(self, i: int) -> torch.Tensor:
        """(k, H, W) uint8 masks of image i (zeros where the data has none)."""
        h, w = self.size(i)
        m = None if self.masks is None else self.masks[i]
        if isinstance(m, torch.Tensor):
            return m
        if m is None:
            return torch.zeros((len(self.labels[i]), h, w), dtype=torch.uint8)
        return decode_segmentations(m, h, w)

    def subset(self, idx: Sequence[int]) -> DetectionSplit:
        idx = [int(i) for i in idx]

        def pick(xs):
            return None if xs is None else [xs[i] for i in idx]

        images = self.images[idx] if self.in_memory else [self.images[i] for i in idx]
        return replace(self, images=images, boxes=pick(self.boxes), labels=pick(self.labels),
                       iscrowd=pick(self.iscrowd), masks=pick(self.masks), sizes=pick(self.sizes),
                       names=pick(self.names))


def decode_segmentations(segs: list, h: int, w: int) -> torch.Tensor:
    """COCO polygons / RLE (one entry per instance, None = no mask) -> (k, H, W) uint8, via pycocotools.
    Each is checked first (`segmentation_problem`): pycocotools writes past its buffer on an RLE whose
    size or counts disagree with the image, so such a mask raises CnnkitError instead of being decoded."""
    from pycocotools import mask as mask_utils

    out = torch.zeros((len(segs), h, w), dtype=torch.uint8)
    for j, seg in enumerate(segs):
        if not seg:
            continue
        if problem := segmentation_problem(seg, h, w):
            raise CnnkitError(f"Mask {j + 1} of a {w}x{h} image cannot be decoded: {problem}; fix its annotation "
                              "(`cnnkit data inspect` lists every such mask).")
        if isinstance(seg, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = seg
        out[j] = torch.from_numpy(mask_utils.decode(rle).astype("uint8"))
    return out


def segmentation_problem(seg: Any, h: int, w: int) -> str | None:
    """Why pycocotools must not decode `seg` (COCO polygons or RLE) for an h x w image, or None.

    An RLE must state the image's own [h, w] and run lengths (a list, or COCO's compressed string)
    that are non-negative and add up to h * w; polygon coordinates must be finite and within one
    image size of the image (pycocotools rasterises the outline at 5x, so a far point costs memory)."""
    if isinstance(seg, list):
        coords = [v for poly in seg for v in (poly if isinstance(poly, list) else [None])]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in coords):
            return "a polygon holds something other than numbers"
        xs, ys = coords[0::2], coords[1::2]
        if not all(-w <= x <= 2 * w for x in xs) or not all(-h <= y <= 2 * h for y in ys):
            return f"a polygon has points far outside the {w}x{h} image (or not finite)"
        return None
    if not isinstance(seg, dict):
        return f"segmentation of type {type(seg).__name__}, not polygons or RLE"
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and [_as_int(v) for v in size] == [h, w]):
        return f"its RLE size {str(size)[:40]} is not the image's [{h}, {w}]"
    runs = _rle_runs(counts)
    if runs is None:
        return "its RLE counts are neither a list of run lengths nor a COCO compressed RLE string"
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        return f"its RLE run lengths add up to {sum(runs)} pixels (or hold a negative run), not the image's {h * w}"
    return None


def _as_int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() else None


def _rle_runs(counts: Any) -> list[int] | None:
    """Run lengths of an RLE's counts: a list of integers, or pycocotools' compressed string (decoded as
    its rleFrString does, 5 bits per character with a continuation bit, runs after the second as deltas)."""
    if isinstance(counts, list):
        runs = [_as_int(c) for c in counts]
        return None if any(r is None for r in runs) else runs
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if not isinstance(counts, str):
        return None
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x = k = 0
        more = True
        while more:
            if p >= len(counts) or not 48 <= ord(counts[p]) < 112 or k > 12:
                return None  # cut short, a character outside the alphabet, or a run past any image size
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        runs.append(x + runs[-2] if len(runs) > 2 else x)
    return runs


# ---- writing (shared by the coco / yolo / voc writers) -----------------------------------
def unique_names(split: DetectionSplit, prefix: str = "") -> list[str]:
    """A distinct file name per image: its own name (PNG for in-memory images), de-duplicated."""
    out, seen = [], set()
    for i in range(len(split)):
        name = prefix + os.path.basename(split.name(i))
        if split.in_memory and not name.lower().endswith(".png"):
            name = os.path.splitext(name)[0] + ".png"
        stem, ext = os.path.splitext(name)
        k = 1
        while name in seen:
            k += 1
            name = f"{stem}_{k}{ext}"
        seen.add(name)
        out.append(name)
    return out


def box_splits(bundle, fmt: str) -> Iterator[tuple[str, DetectionSplit]]:
    """(name, split) of each non-empty split of `bundle` for the `fmt` writer; CnnkitError naming the set
    when a split holds no boxes (classification or plain segmentation data)."""
    for s in ("train", "val", "test"):
        split = bundle.split(s)
        if not isinstance(split, DetectionSplit):
            raise CnnkitError(f"{bundle.info.name} is not a detection dataset; {fmt} output needs boxes.")
        if len(split):
            yield s, split


def save_image(split: DetectionSplit, i: int, dest: str | os.PathLike) -> None:
    """Write image i to `dest`: files are copied byte for byte, in-memory images become PNG."""
    import shutil

    from PIL import Image

    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    if not split.in_memory:
        shutil.copyfile(split.images[i], dest)
        return
    img = split.images[i]
    arr = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(dest)


# ---- splits ------------------------------------------------------------------------------
def complete_splits(splits: dict[str, DetectionSplit], cfg: Config, source: str):
    """train/val/test from the subsets a dataset names; missing ones are carved out of train (`carve_splits`)."""
    if not splits:
        raise CnnkitError(f"{source} holds no images with annotations.")
    if "train" not in splits:
        if len(splits) > 1:
            raise CnnkitError(f"{source} has {' and '.join(sorted(splits))} subsets but no train subset; "
                              "name one of them train.")
        splits = {"train": next(iter(splits.values()))}
    return carve_splits(splits["train"], splits, cfg, DetectionSplit.subset)


# ---- augmentation ------------------------------------------------------------------------
def detection_transform(augment: str, hflip: bool, size: int, channels: int) -> v2.Transform | None:
    """Per-sample box-aware training augmentation for a preset (None for "none"; "flip": horizontal
    flips only, where the data allows them).

    light: scale jitter 0.75-1.25 then a random crop/pad back to `size` (so the model's own
    resize does not undo the jitter), brightness/contrast jitter, flips only where the data
    allows. strong: wider jitter (0.5-1.5) plus zoom-out and, for colour data, photometric
    distortion. SanitizeBoundingBoxes drops boxes the crop made (nearly) empty, with their
    labels and masks.
    """
    check_preset(augment, "data.augment")
    if augment == "none" or augment == "flip" and not hflip:
        return None
    if augment == "flip":
        return v2.RandomHorizontalFlip()
    strong = augment == "strong"
    steps: list[v2.Transform] = []
    if strong:
        steps.append(v2.RandomZoomOut(fill=0, side_range=(1.0, 1.6), p=0.3))
    steps += [v2.ScaleJitter((size, size), scale_range=(0.5, 1.5) if strong else LIGHT_SCALE_RANGE),
              v2.RandomCrop((size, size), pad_if_needed=True, fill=0)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if strong and channels == 3:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    else:
        steps.append(v2.RandomApply([v2.ColorJitter(brightness=LIGHT_JITTER, contrast=LIGHT_JITTER)], p=0.5))
    steps.append(v2.SanitizeBoundingBoxes(min_size=2.0, min_area=4.0,
                                          labels_getter=lambda s: (s["labels"], s["iscrowd"])))
    return v2.Compose(steps)


def apply_transform(transform: v2.Transform | None, image: torch.Tensor, target: dict[str, torch.Tensor]):
    """Run a v2 transform over (uint8 image, target) with boxes/masks wrapped as tv_tensors."""
    if transform is None:
        return image, target
    h, w = image.shape[-2:]
    sample = {"image": tv_tensors.Image(image),
              "boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(h, w)),
              "labels": target["labels"], "iscrowd": target["iscrowd"]}
    if "masks" in target:
        sample["masks"] = tv_tensors.Mask(target["masks"])
    out = transform(sample)
    new = {k: v.as_subclass(torch.Tensor) for k, v in out.items() if k != "image"}
    return out["image"].as_subclass(torch.Tensor), {**target, **new}


# ---- loading -----------------------------------------------------------------------------
class _Samples(Dataset):
    """(index, augmentation seed) -> (image, target, None), or (None, None, BadFile); also used by workers."""

    def __init__(self, split: DetectionSplit, transform, masks: bool, drop_crowd: bool):
        self.split, self.transform, self.masks, self.drop_crowd = split, transform, masks, drop_crowd

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]):
        i, seed = key
        try:
            image = self.split.image(i)
        except BadImage as e:
            return None, None, BadFile(self.split.name(i), e.reason)
        target = self.split.target(i, masks=self.masks)
        if self.drop_crowd and target["iscrowd"].any():
            keep = target["iscrowd"] == 0
            target = {k: v[keep] for k, v in target.items()}
        if self.transform is not None:
            # torch.manual_seed also seeds CUDA (measured: the loader's epoch 20 % slower); same CPU stream.
            torch.default_generator.manual_seed(seed)
            image, target = apply_transform(self.transform, image, target)
        target["image_id"] = torch.tensor(i)
        return image, target, None


def _collate(items: list) -> tuple[list | None, list[BadFile]]:
    return collate_usable(items, stack=False)  # images differ in size: lists, not stacks


class DetectionLoader(EpochOrder):
    """Epoch-aware loader over a `DetectionSplit` yielding `(images, targets)` (see module docstring).

    Unreadable files met while loading are skipped and appended to `bad_files` (pass
    `info.bad_files` so the run report lists them).
    """

    def __init__(self, split: DetectionSplit, batch_size: int, train: bool, seed: int = 0,
                 transform: v2.Transform | None = None, masks: bool = False, workers: int = 0,
                 bad_files: list[BadFile] | None = None, batch_augment: DetBatchAugment | None = None):
        super().__init__(len(split), batch_size, shuffle=train, seed=seed, drop_last=train)
        self.split, self.train = split, train
        self.batch_augment = batch_augment if train else None  # in place of the per-sample `transform`
        per_sample = transform if train and self.batch_augment is None else None
        self.samples = _Samples(split, per_sample, masks, drop_crowd=train)
        self.workers = workers
        self.bad_files = bad_files if bad_files is not None else []

    def _batches(self) -> list[list[tuple[int, int]]]:
        """Batches of (index, augmentation seed): the `EpochOrder` of the epoch, with one seed per index
        drawn from the same generator right after the permutation (0 when not training)."""
        order, g = self.epoch_order()
        seeds = torch.randint(0, 2**62, (self.n,), generator=g).tolist() if g is not None else [0] * self.n
        return self.chunk([(i, seeds[i]) for i in order.tolist()])

    def __iter__(self) -> Iterator[tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]]:
        batches = self._batches()
        if self.workers > 0:
            stream = DataLoader(self.samples, batch_sampler=batches, num_workers=self.workers, collate_fn=_collate)
        else:
            stream = self._in_process(batches)
        for k, (images, targets) in enumerate(usable_batches(stream, self.bad_files)):
            if self.batch_augment is not None:
                images, targets = self.batch_augment(images, targets, self.batch_generator(k))
            yield images, targets

    def _in_process(self, batches):
        # The v2 transforms draw from torch's global generator: fork it so that seeding each
        # sample does not disturb the training loop's own random stream.
        for keys in batches:
            with torch.random.fork_rng(devices=[]):
                items = [self.samples[k] for k in keys]
            yield _collate(items)


def detection_loader(split: DetectionSplit, batch_size: int, train: bool, seed: int = 0, augment: str = "none",
                     hflip: bool = False, image_size: int = 96, channels: int = 3, masks: bool = False,
                     workers: int = 0, bad_files: list[BadFile] | None = None) -> DetectionLoader:
    """The loader detection and instance segmentation share (augmentation only when `train`): the
    "light" preset through `DetBatchAugment`, "strong" and "flip" through transforms.v2 per sample."""
    batched = DetBatchAugment(image_size, hflip) if train and augment == "light" else None
    transform = detection_transform(augment, hflip, image_size, channels) if train and batched is None else None
    return DetectionLoader(split, batch_size, train, seed, transform, masks, workers, bad_files, batched)
