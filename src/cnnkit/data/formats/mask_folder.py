"""Image + mask-PNG folders (format "mask-folder", task segment): reader and the "masks" writer.

Layouts (a mask pairs with the image of the same file stem):

    ROOT/images/*.jpg   ROOT/masks/*.png                    one pool: val/test carved out by seed
    ROOT/{train,val,test}/images   ROOT/{train,val,test}/masks    given subsets
    ROOT/images/{train,val,test}   ROOT/masks/{train,val,test}    given subsets, the other nesting
    ROOT/classes.txt (optional)    one class name per line; line i names mask value i

Masks are index PNGs (gray values = classes) or palette PNGs (palette indices = classes);
255 is "ignore". Without classes.txt the classes are "background", "1", .., up to the
largest value found. Images without a mask, masks without an image and pairs whose
sizes differ are skipped and listed in `info.bad_files` (never dropped silently).
Val/test subsets that are missing are carved out of train with `data.split_seed`.

Binary masks saved as 0/255 (what most drawing tools and tutorials write) would leave no
pixel in any class, so `mask_reading` looks at the values: when the masks read hold only 0
and 255, 255 is read as class 1, with a note (`data.mask_255`: auto | class | ignore).
The values come from every mask, or from `SCAN_LIMIT` evenly spaced ones in a larger set
(the note says which); a mask outside that sample with other values fails `mask_problem`
at load time and is skipped as a bad file, as any mask with values outside the classes is.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnkit.config import Config
from cnnkit.data.base import BadFile, DataBundle, DatasetInfo
from cnnkit.data.decode import IMAGE_EXTENSIONS, data_files
from cnnkit.data.registry import WRITERS, register_format
from cnnkit.data.segmentation import (IGNORE_INDEX, MASK_EXTS, BadMask, MaskValues, SegFileSplit, read_mask,
                                      remap_counts, samples, segment_view, write_mask)
from cnnkit.data.splits import carve_splits, check_bad_files
from cnnkit.errors import CnnkitError

SPLITS = ("train", "val", "test")
# Masks whose values are read when a set is loaded: ~1-2 ms each for VOC-sized PNGs, so at most a
# couple of seconds; every mask is read below this, an evenly spaced sample above it.
SCAN_LIMIT = 1000


def subsets(root: Path) -> dict[str, tuple[Path, Path]]:
    """split name ("all" for a single pool) -> (images dir, masks dir) in any of the layouts."""
    if (root / "images").is_dir() and (root / "masks").is_dir():
        nested = {s: (root / "images" / s, root / "masks" / s) for s in SPLITS if (root / "images" / s).is_dir()}
        return nested or {"all": (root / "images", root / "masks")}
    return {s: (root / s / "images", root / s / "masks") for s in SPLITS
            if (root / s / "images").is_dir() and (root / s / "masks").is_dir()}


def detect(path: Path) -> bool:
    return path.is_dir() and bool(subsets(path))


def _files(folder: Path, exts: tuple[str, ...]) -> dict[str, Path]:
    return {p.stem: p for p in data_files(folder, exts, recursive=False)}


def pairs(images_dir: Path, masks_dir: Path) -> tuple[SegFileSplit, list[BadFile]]:
    """Images matched to masks by stem; the unmatched on either side come back as BadFiles."""
    images, masks = _files(images_dir, IMAGE_EXTENSIONS), _files(masks_dir, MASK_EXTS)
    stems = sorted(set(images) & set(masks))
    bad = [BadFile(str(images[s]), f"has no mask {masks_dir / (s + '.png')}") for s in sorted(set(images) - set(masks))]
    bad += [BadFile(str(masks[s]), f"is a mask without an image in {images_dir}")
            for s in sorted(set(masks) - set(images))]
    split = SegFileSplit([str(images[s]) for s in stems], [str(masks[s]) for s in stems],
                         names=[str(images[s]) for s in stems])
    return split, bad


def scan(root: Path) -> tuple[dict[str, SegFileSplit], list[BadFile]]:
    """Subset -> (image, mask) pairs in any of the layouts; unmatched files as BadFiles."""
    found, bad = {}, []
    for key, (images_dir, masks_dir) in subsets(root).items():
        found[key], missing = pairs(images_dir, masks_dir)
        bad += missing
    return found, bad


def read_classes(root: Path) -> list[str] | None:
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise CnnkitError(f"{path} lists no classes: write one class name per line (line 1 = mask value 0).")
    return names


def value_histograms(splits: dict[str, SegFileSplit], limit: int = SCAN_LIMIT) -> dict[str, torch.Tensor]:
    """mask path -> int64 pixels per raw value (256 bins), for every mask of `splits`, or for
    `limit` evenly spaced ones when there are more; unreadable masks are left out."""
    paths = [p for s in splits.values() for p in s.mask_paths]
    if len(paths) > limit:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    out = {}
    for p in paths:
        try:
            out[p] = torch.bincount(read_mask(p).reshape(-1), minlength=256)
        except BadMask:
            continue
    return out


def mask_reading(hists: dict[str, torch.Tensor], total: int, classes: list[str] | None, mode: str,
                 source: str, default: list[str] | None = None) -> tuple[list[str], dict[int, int] | None, str | None]:
    """(classes, remap, note) for a set whose masks read gave `hists` (of `total` masks).

    mode is `data.mask_255`: "auto" reads 255 as class 1 when the masks read hold only 0 and 255
    (and says so in `note`), "class" always does, "ignore" never does. Classes: `classes` (a
    classes.txt) when given, else `default` (VOC's names) for masks that are not binary, else
    "background", "1", .. up to the largest class value. Raises CnnkitError for "class" on masks
    that hold other values too.
    """
    pixels = sum(hists.values(), torch.zeros(256, dtype=torch.int64))
    values = set(torch.nonzero(pixels).flatten().tolist())
    binary = IGNORE_INDEX in values and values <= {0, IGNORE_INDEX}
    remap = {IGNORE_INDEX: 1} if mode == "class" or (mode == "auto" and binary) else None
    if mode == "class" and values - {0, 1, IGNORE_INDEX}:
        shown = ", ".join(str(v) for v in sorted(values - {0, 1, IGNORE_INDEX})[:5])
        raise CnnkitError(f"data.mask_255=class reads 255 as class 1 of binary masks, but the masks in {source} "
                          f"also hold the values {shown}: set data.mask_255=auto (or ignore) for these masks.")
    note = None
    if remap and mode == "auto":
        read = f"all {total} masks read" if len(hists) >= total else f"{len(hists)} of {total} masks read"
        note = (f"{source}: masks hold only 0 and 255: 255 read as class 1 "
                f"(set data.mask_255=ignore to keep 255 as ignore; {read})")
    if classes is None:
        top = max(torch.nonzero(remap_counts(pixels, remap)[:IGNORE_INDEX]).flatten().tolist(), default=0)
        classes = default if default and not remap else ["background"] + [str(i) for i in range(1, max(top, 1) + 1)]
    return classes, remap, note


def header_check(split: SegFileSplit) -> tuple[SegFileSplit, list[BadFile], list[tuple[int, int, int]]]:
    """Keep pairs whose image and mask headers open and agree in size; (kept, bad, (h, w, c) per kept)."""
    from PIL import Image

    from cnnkit.data.decode import BadImage, probe_image

    keep, bad, shapes = [], [], []
    for i, (img, msk) in enumerate(zip(split.image_paths, split.mask_paths)):
        try:
            gray, (h, w) = probe_image(img)
        except BadImage as e:
            bad.append(BadFile(img, e.reason))
            continue
        c = 1 if gray else 3
        try:
            with Image.open(msk) as im:
                mw, mh = im.size
        except OSError as e:
            bad.append(BadFile(msk, f"mask cannot be read ({type(e).__name__})"))
            continue
        if (mh, mw) != (h, w):
            bad.append(BadFile(img, f"image is {w}x{h} but its mask {msk} is {mw}x{mh}"))
            continue
        keep.append(i)
        shapes.append((h, w, c))
    kept = SegFileSplit([split.image_paths[i] for i in keep], [split.mask_paths[i] for i in keep],
                        [split.names[i] for i in keep] if split.names else None)
    return kept, bad, shapes


def take(split: SegFileSplit, idx) -> SegFileSplit:
    idx = [int(i) for i in idx]
    return SegFileSplit([split.image_paths[i] for i in idx], [split.mask_paths[i] for i in idx],
                        [split.names[i] for i in idx] if split.names else None)


def carve(splits: dict[str, SegFileSplit], cfg: Config) -> tuple[SegFileSplit, SegFileSplit, SegFileSplit]:
    """train/val/test from the subsets given; missing val/test are carved out of train (`carve_missing`)."""
    train = splits.get("train", splits.get("all"))
    if train is None:
        train = SegFileSplit([], [])
    return carve_splits(train, splits, cfg, take)


def finish(root: Path, found: dict[str, SegFileSplit], bad: list[BadFile], classes: list[str] | None,
           cfg: Config, fmt: str, default: list[str] | None = None) -> DataBundle:
    """Header-check every pair, read the mask values (`mask_reading`), carve missing splits, and
    describe the data (shared with voc_seg; `default`: class names when there is no classes.txt)."""
    checked, shapes = {}, []
    total = sum(len(s) for s in found.values()) + len(bad)
    for key, split in found.items():
        kept, more_bad, sh = header_check(split)
        checked[key] = kept
        bad += more_bad
        shapes += sh
    check_bad_files(bad, total, cfg.data.max_bad, str(root))
    if not shapes:
        raise CnnkitError(f"{root} holds no usable image + mask pairs; see `cnnkit data inspect {root}`.")
    hists = value_histograms(checked)
    classes, remap, note = mask_reading(hists, len(shapes), classes, cfg.data.mask_255, str(root), default)
    train, val, test = carve(checked, cfg)
    for split in (train, val, test):
        seen = [hists[p] for p in split.mask_paths if p in hists]
        split.remap = remap
        split.values = MaskValues(sum(seen, torch.zeros(256, dtype=torch.int64)), len(seen))
    sides = sorted(max(h, w) for h, w, _ in shapes)
    info = DatasetInfo(task="segment", classes=classes, channels=3 if any(c == 3 for *_, c in shapes) else 1,
                       image_size=sides[len(sides) // 2], name=str(root), hflip_ok=True, bad_files=bad,
                       extra={"counts": {"train": len(train), "val": len(val), "test": len(test)}, "format": fmt})
    if note:
        info.extra["notes"] = {"mask_255": note}
    return DataBundle(train, val, test, info)


@register_format("mask-folder", task="segment", detect=detect, priority=20)
def load(path: Path, cfg: Config) -> DataBundle:
    found, bad = scan(path)
    return finish(path, found, bad, read_classes(path), cfg, "mask-folder")


@WRITERS.register("masks")
def write_masks(bundle: DataBundle, out: Path) -> None:
    """OUT/{train,val,test}/{images,masks}/<name>.png and OUT/classes.txt (palette masks, lossless images)."""
    from PIL import Image

    bundle = segment_view(bundle)  # detection data with instance masks becomes class masks
    out = Path(out)
    for key in SPLITS:
        split = bundle.split(key)
        for i, (name, image, mask) in enumerate(samples(split, bundle.info.channels)):
            if image is None:
                continue  # unreadable in the source: already listed by its reader
            stem = Path(name).stem if name else f"{key}_{i:05d}"
            (out / key / "images").mkdir(parents=True, exist_ok=True)
            arr = image.permute(1, 2, 0).numpy()
            Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(out / key / "images" / f"{stem}.png")
            write_mask(mask, out / key / "masks" / f"{stem}.png")
    (out / "classes.txt").write_text("\n".join(bundle.info.classes) + "\n")
