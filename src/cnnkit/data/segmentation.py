"""Semantic segmentation data: split types, mask files, mask-aware augmentation and the loader.

A sample is an image (uint8 C x H x W) and a mask (uint8 H x W) whose value is the class
index of each pixel; 255 means "ignore" (VOC's void border), never a class — unless the
reader found binary 0/255 (0/128, ..) masks and read that value as class 1 (`SegFileSplit.remap`, decided by
`formats/mask_folder.mask_reading` from `data.mask_255`). Splits come
in two forms, like classification's: `SegSplit` holds tensors in memory (the generated
digits-seg canvases), `SegFileSplit` holds paths decoded by DataLoader workers (folders,
VOC). A detection `DetectionSplit` whose objects carry masks (COCO polygons/RLE) is read
as class masks too (`semantic_from_instances`). All go through the same Dataset, so
augmentation is identical.

Training augmentation (`cnnkit.data.seg_augment.SegBatchAugment`) runs on whole batches after
collation: one affine warp (+ optional crop) per batch, masks nearest-neighbour, uncovered
corners filled with the ignore index. Epoch contract (tasks.base.Loader): batch k of epoch e
is augmented from a generator seeded by (seed, e, k), so the result is the same with 0 or N
workers, on resume, and leaves the trainer's own RNG stream untouched.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from cnnkit.data.base import BadFile
from cnnkit.data.loader import EpochOrder, collate_usable, usable_batches
from cnnkit.data.seg_augment import SegBatchAugment
from cnnkit.data.transforms import resize_uint8, to_model_input
from cnnkit.errors import CnnkitError

IGNORE_INDEX = 255
MASK_EXTS = (".png", ".bmp", ".tif", ".tiff", ".gif")  # lossless formats only: JPEG would blend class values


@dataclass
class SegSplit:
    """In memory: images uint8 N x C x H x W and masks uint8 N x H x W (or lists, for mixed sizes)."""

    images: torch.Tensor | list[torch.Tensor]
    masks: torch.Tensor | list[torch.Tensor]
    names: list[str] | None = None
    instances: Any = None  # optional DetectionSplit of the same images (generated sets), for COCO/instance use

    def __len__(self) -> int:
        return len(self.masks)


@dataclass
class MaskValues:
    """Pixels per raw mask value (int64, 256 bins) summed over `read` of a split's masks: all of
    them, or the evenly spaced sample its reader decoded (`formats/mask_folder.value_histograms`)."""

    pixels: torch.Tensor
    read: int


@dataclass
class SegFileSplit:
    """Streamed: one image file and one mask file per sample (mask values are the class indices,
    after `remap`: raw value -> class index, e.g. {255: 1} for binary 0/255 masks)."""

    image_paths: list[str]
    mask_paths: list[str]
    names: list[str] | None = None
    remap: dict[int, int] | None = None
    values: MaskValues | None = None  # raw values seen by the reader; saves decoding masks again
    colours: dict[tuple[int, int, int], int] | None = None  # RGB masks: colour -> class (formats/labelmap.py)

    def __len__(self) -> int:
        return len(self.image_paths)

    def mask(self, i: int) -> torch.Tensor:
        """uint8 H x W class indices of sample i; raises BadMask."""
        return remap_mask(read_mask(self.mask_paths[i], self.colours), self.remap)


def remap_mask(mask: torch.Tensor, remap: dict[int, int] | None) -> torch.Tensor:
    """uint8 H x W mask with each raw value in `remap` replaced by its class index."""
    if not remap:
        return mask
    lut = torch.arange(256, dtype=torch.uint8)
    for raw, cls in remap.items():
        lut[raw] = cls
    return lut[mask.long()]


def remap_counts(pixels: torch.Tensor, remap: dict[int, int] | None) -> torch.Tensor:
    """Per-value pixel counts (256) as `remap_mask` would leave them."""
    if not remap:
        return pixels
    out = pixels.clone()
    for raw, cls in remap.items():
        out[raw] -= pixels[raw]
        out[cls] += pixels[raw]
    return out


# ---- mask files -------------------------------------------------------------------------------
def palette() -> list[int]:
    """The Pascal VOC colour map (256 RGB triples, flattened): class 0 black, 255 (ignore) cream."""
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


def read_mask(path: str | Path, colours: dict[tuple[int, int, int], int] | None = None) -> torch.Tensor:
    """An index or palette PNG -> uint8 H x W class indices; with `colours` (a labelmap.txt) a colour
    (RGB, or palette) mask is read by its colours instead. Raises BadMask with the reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = im.mode
            if colours is not None and mode not in ("L", "LA", "I", "I;16", "1"):
                return _colour_classes(np.array(im.convert("RGB")), colours)
            arr = np.array(im)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadMask(f"cannot be read as an image ({type(e).__name__})") from None
    if arr.ndim == 3 and mode in ("LA", "La", "PA"):
        arr = arr[..., 0]  # gray (or palette index) + alpha, as image editors export: the values are the first band
    if arr.ndim == 3:
        # Gray masks saved as RGB are common; a truly coloured mask has no class indices to read.
        if arr.shape[2] >= 3 and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            arr = arr[..., 0]
        else:
            raise BadMask(f"is a colour ({mode}) image; save masks as index (L) or palette (P) PNGs")
    if arr.dtype != np.uint8:
        if arr.size and (arr.max() > 255 or arr.min() < 0):
            raise BadMask(f"holds values up to {int(arr.max())}; mask values must be class indices 0..254")
        arr = arr.astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _colour_classes(rgb: np.ndarray, colours: dict[tuple[int, int, int], int]) -> torch.Tensor:
    """uint8 H x W class indices of an H x W x 3 colour mask; BadMask naming a colour `colours` lacks."""
    keys = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    found, inverse = np.unique(keys, return_inverse=True)
    lut = np.empty(len(found), np.uint8)
    for k, key in enumerate(found.tolist()):
        colour = (key >> 16, (key >> 8) & 255, key & 255)
        if colour not in colours:
            raise BadMask(f"holds the colour {','.join(map(str, colour))}, which labelmap.txt does not list "
                          f"(it lists {len(colours)} colours)")
        lut[k] = colours[colour]
    return torch.from_numpy(np.ascontiguousarray(lut[inverse.reshape(keys.shape)]))


def write_mask(mask: torch.Tensor, path: str | Path) -> None:
    """uint8 H x W class indices -> palette PNG (values stay the indices; the palette is for eyes)."""
    from PIL import Image

    im = Image.fromarray(mask.to(torch.uint8).cpu().numpy(), mode="P")
    im.putpalette(palette())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


class BadMask(Exception):
    """A mask file that cannot be used; str() is the reason."""


def overlay(image: torch.Tensor, mask: torch.Tensor, num_classes: int, alpha: float = 0.5) -> torch.Tensor:
    """uint8 3 x H x W image with each non-background class painted in its palette colour."""
    from torchvision.utils import draw_segmentation_masks

    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    pal = palette()
    present = [c for c in range(1, num_classes) if bool((mask == c).any())]
    if not present:
        return image.clone()
    masks = torch.stack([mask == c for c in present])
    colors = [tuple(pal[3 * c:3 * c + 3]) for c in present]
    return draw_segmentation_masks(image, masks, alpha=alpha, colors=colors)


def colorize(mask: torch.Tensor) -> torch.Tensor:
    """uint8 H x W indices -> uint8 3 x H x W palette colours (for plots)."""
    pal = torch.tensor(palette(), dtype=torch.uint8).view(256, 3)
    return pal[mask.long()].permute(2, 0, 1)


def pixel_counts(split, num_classes: int, limit: int = 2000) -> torch.Tensor:
    """Pixels per class over (up to `limit` samples of) a split; ignore and unreadable masks skipped."""
    return value_counts(split, limit)[0][:num_classes].clone()


def value_counts(split, limit: int | None = None) -> tuple[torch.Tensor, int]:
    """(int64 pixels per mask value (256 bins) after the split's remap, masks counted) over all
    or the first `limit` samples; unreadable masks are skipped. An in-memory split is one bincount."""
    if isinstance(split, SegSplit):
        masks = split.masks[:limit] if limit is not None else split.masks
        if isinstance(masks, torch.Tensor):  # uint8 N x H x W: bincount takes uint8, no int64 copy
            return torch.bincount(masks.reshape(-1), minlength=256), len(masks)
    elif isinstance(split, SegFileSplit):  # only the mask files: images are not needed for counting
        masks = _readable_masks(split, len(split) if limit is None else min(limit, len(split)))
    else:  # a DetectionSplit with instance masks: decoded and painted per image
        masks = (m for _, img, m in samples(split, 1, limit) if img is not None)
    pixels, n = torch.zeros(256, dtype=torch.int64), 0
    for m in masks:
        pixels += torch.bincount(m.reshape(-1), minlength=256)
        n += 1
    return pixels, n


def _readable_masks(split: SegFileSplit, n: int):
    for i in range(n):
        try:
            yield split.mask(i)
        except BadMask:
            continue


def semantic_from_instances(target: dict[str, torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """One class mask from instance masks: 1 + label under each object, 255 under crowd regions.

    Crowd regions are painted first so that a counted object inside one keeps its class.
    """
    out = torch.zeros(tuple(size), dtype=torch.uint8)
    masks, labels = target["masks"].bool(), target["labels"]
    crowd = target.get("iscrowd", torch.zeros_like(labels)).bool()
    for m in masks[crowd]:
        out[m] = IGNORE_INDEX
    for m, lab in zip(masks[~crowd], labels[~crowd]):
        out[m] = int(lab) + 1
    return out


def segment_view(bundle):
    """The bundle as segmentation data: as it is, or detection data with instance masks seen as
    class masks ("background" + its classes; see `semantic_from_instances`)."""
    from cnnkit.data.base import DataBundle

    info = bundle.info
    splits = (bundle.train, bundle.val, bundle.test)
    if all(isinstance(s, (SegSplit, SegFileSplit)) for s in splits):
        return bundle
    if not all(getattr(s, "masks", None) is not None for s in splits):
        raise CnnkitError(f"{info.name} has no masks: segmentation needs mask PNGs, VOC SegmentationClass "
                          "or COCO polygons/RLE.")
    seg_info = replace(info, task="segment", classes=["background", *info.classes],
                       extra={**info.extra, "from_instances": True})
    return DataBundle(bundle.train, bundle.val, bundle.test, seg_info)


def detection_view(bundle):
    """digits-seg as detection data (its `SegSplit.instances`), e.g. for the COCO and VOC box writers."""
    from cnnkit.data.base import DataBundle

    info = bundle.info
    splits = [bundle.train, bundle.val, bundle.test]
    if not all(isinstance(s, SegSplit) and s.instances is not None for s in splits):
        return bundle
    det_info = replace(info, task="detect", classes=[c for c in info.classes if c != "background"])
    return DataBundle(*(s.instances for s in splits), det_info)


# ---- augmentation -----------------------------------------------------------------------------
def resize_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """uint8 H x W -> h x w, nearest neighbour (class values are never interpolated)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return v2.functional.resize(tv_tensors.Mask(mask[None]), list(size)).as_subclass(torch.Tensor)[0]


# ---- loader -----------------------------------------------------------------------------------
class _SegDataset(Dataset):
    def __init__(self, split, channels: int, size: Sequence[int], num_classes: int | None = None):
        self.split, self.channels, self.size, self.num_classes = split, channels, list(size), num_classes

    def __len__(self) -> int:
        return len(self.split)

    def read(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.split
        if isinstance(s, SegSplit):
            return s.images[i], s.masks[i]
        from cnnkit.data.decode import read_image

        if isinstance(s, SegFileSplit):
            return read_image(s.image_paths[i], self.channels), s.mask(i)
        image = s.image(i)  # a DetectionSplit with instance masks (COCO polygons / RLE)
        return image, semantic_from_instances(s.target(i, masks=True), image.shape[-2:])

    def __getitem__(self, i: int):
        from cnnkit.data.decode import BadImage

        try:
            image, mask = self.read(i)
        except (BadImage, BadMask) as e:
            return None, None, BadFile(self._name(i), str(e))
        problem = mask_problem(image, mask, self.num_classes)
        if problem:
            return None, None, BadFile(self._name(i), problem)
        return resize_uint8(image, self.size), resize_mask(mask, self.size), None

    def _name(self, i: int) -> str:
        s = self.split
        if isinstance(s, (SegSplit, SegFileSplit)):
            return s.names[i] if s.names is not None else (s.image_paths[i] if isinstance(s, SegFileSplit) else str(i))
        return s.name(i)


def mask_problem(image: torch.Tensor, mask: torch.Tensor, num_classes: int | None) -> str | None:
    """Why an (image, mask) pair cannot train a model, or None: size mismatch, values outside the classes."""
    if tuple(image.shape[-2:]) != tuple(mask.shape[-2:]):
        return (f"image is {image.shape[-1]}x{image.shape[-2]} (WxH) but its mask is "
                f"{mask.shape[-1]}x{mask.shape[-2]}")
    if num_classes is not None:
        values = mask.unique()
        bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
        if len(bad):
            shown = ", ".join(str(int(v)) for v in bad[:5])
            return f"mask has values {shown} outside the {num_classes} classes (0..{num_classes - 1}, 255 = ignore)"
    return None


def samples(split, channels: int | None, limit: int | None = None):
    """(name, image, mask) per sample at its stored size, or (name, None, BadFile) when unreadable."""
    from cnnkit.data.decode import BadImage

    ds = _SegDataset(split, channels, [1, 1])
    for i in range(len(split) if limit is None else min(limit, len(split))):
        try:
            image, mask = ds.read(i)
        except (BadImage, BadMask) as e:
            yield ds._name(i), None, BadFile(ds._name(i), str(e))
            continue
        yield ds._name(i), image, mask


class SegLoader(EpochOrder):
    """Yields (normalised float images N x C x h x w, int64 masks N x h x w); bad samples are
    skipped and kept in `bad_files` for the run report."""

    def __init__(self, split, preprocess: dict, batch_size: int, train: bool, seed: int,
                 augment: str = "none", hflip: bool = False, workers: int = 0, num_classes: int | None = None,
                 crop: int | None = None):
        super().__init__(len(split), batch_size, shuffle=train, seed=seed, drop_last=train)
        self.augment = SegBatchAugment(augment, hflip, crop) if train and (augment != "none" or crop) else None
        self.dataset = _SegDataset(split, preprocess["channels"], preprocess["size"], num_classes)
        # Training crops are already at their size: the model input keeps them (no resize back).
        self.preprocess = {**preprocess, "size": [crop, crop]} if self.augment is not None and crop else preprocess
        self.workers = workers
        self.bad_files: list[BadFile] = []

    def __iter__(self):
        # An own generator: DataLoader otherwise draws its worker base seed from the global RNG.
        loader = DataLoader(self.dataset, batch_sampler=[b.tolist() for b in self.batches()],
                            num_workers=self.workers, collate_fn=collate_usable, persistent_workers=False,
                            generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        for k, (images, masks) in enumerate(usable_batches(loader, self.bad_files)):
            if self.augment is not None:
                images, masks = self.augment(images, masks, self.batch_generator(k))
            yield to_model_input(images, self.preprocess), masks.long()
