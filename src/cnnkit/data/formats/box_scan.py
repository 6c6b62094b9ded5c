"""The load path of every box format: parsed annotations (`Scan`) -> checked, cleaned `DetectionSplit`s.

Readers (coco.py, yolo.py, voc.py) parse their files into `Scan`s: class names plus one
`RawImage` per image with its boxes exactly as written (xyxy pixels), unknown classes
marked -1, and the parse problems they met. `walk` applies the checks (missing or
unreadable images, duplicate image ids, boxes outside the image or of zero or negative
size, unknown class ids) and serves two callers:

- `scan_to_bundle` (the readers' `load`) drops the bad images and bad boxes (boxes at
  most `EDGE_TOLERANCE` px outside are clipped, not dropped), stops when more are bad
  than `data.max_bad` allows, puts bad images in `info.bad_files` and warns about skipped
  boxes;
- `cnnkit.data.health.boxes.inspect_scan` lists every fault with its file for
  `cnnkit data inspect`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnkit.config import Config
from cnnkit.data.base import BadFile, DataBundle, DatasetInfo
from cnnkit.data.decode import BadImage, probe_image, read_image
from cnnkit.data.detection import DetectionSplit, complete_splits
from cnnkit.data.splits import bad_file_limit, check_bad_files

EDGE_TOLERANCE = 1.0  # px: boxes this far past the border are rounding, clipped silently


@dataclass
class RawImage:
    """One image and its annotations as the file states them."""

    file: str  # image path
    image_id: Any  # the id the annotation uses (COCO id, file stem)
    source: str  # annotation file, for messages
    width: float | None = None  # declared size (COCO/VOC), else the header's
    height: float | None = None
    boxes: list[list[float]] = field(default_factory=list)  # xyxy pixels
    labels: list[int] = field(default_factory=list)  # class index, -1 = unknown
    names: list[str] = field(default_factory=list)  # class as written (for messages)
    iscrowd: list[int] = field(default_factory=list)
    segmentations: list | None = None  # COCO polygons / RLE per box


@dataclass
class Scan:
    classes: list[str]
    splits: dict[str, list[RawImage]]
    issues: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, file, problem) found while parsing
    hflip_ok: bool = True
    category_ids: list[int] | None = None  # COCO ids per class index (for results files)


def box_faults(box: list[float], label: int, name: str, num_classes: int, width: float | None,
               height: float | None) -> tuple[str, str] | None:
    """(kind, problem) for a bad box, or None when it can be used."""
    x1, y1, x2, y2 = box
    if label < 0 or label >= num_classes:
        return "unknown_class", f"class {name!r} is not in the class list"
    if not x2 > x1 or not y2 > y1:
        return "degenerate_box", f"box {_fmt(box)} has zero or negative size"
    if width is not None and height is not None:
        t = EDGE_TOLERANCE
        if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
            return "box_outside", f"box {_fmt(box)} extends outside the {width:g}x{height:g} image"
    return None


def _fmt(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in box) + "]"


def _check_image(rec: RawImage, decode: bool) -> tuple[str, str] | None:
    """(kind, problem) when the image is missing/unreadable; fills width/height from the header."""
    if not Path(rec.file).is_file():
        return "missing_image", "image file not found"
    try:
        if decode:
            img = read_image(rec.file)
            h, w = img.shape[-2:]
        else:
            _, (h, w) = probe_image(rec.file)
    except BadImage as e:
        return "unreadable_image", e.reason
    if rec.width is None or rec.height is None:
        rec.width, rec.height = float(w), float(h)
    elif (round(rec.width), round(rec.height)) != (w, h):
        return "size_mismatch", f"annotation says {rec.width:g}x{rec.height:g} but the image is {w}x{h}"
    return None


def walk(scan: Scan, decode: bool, files: bool = True):
    """Yield (split, record, image fault, [(box index, fault)]) for every record
    (`files=False`: the images are in memory, so only ids and boxes are checked)."""
    seen: set = set()
    k = len(scan.classes)
    for split, records in scan.splits.items():
        for rec in records:
            key = (split, rec.image_id)
            fault = ("duplicate_image_id", f"image id {rec.image_id!r} appears more than once") \
                if key in seen else (_check_image(rec, decode) if files else None)
            seen.add(key)
            boxes = [(j, f) for j, (b, lab, nm) in enumerate(zip(rec.boxes, rec.labels, rec.names))
                     if (f := box_faults(b, lab, nm, k, rec.width, rec.height))]
            yield split, rec, fault, boxes


def scan_to_bundle(scan: Scan, cfg: Config, source: str) -> DataBundle:
    """Clean the scan (see module docstring) into train/val/test `DetectionSplit`s."""
    bad: list[BadFile] = [BadFile(f, p) for kind, f, p in scan.issues if kind != "no_labels"]
    skipped: list[str] = []
    kept: dict[str, list[RawImage]] = {}
    n_images = n_boxes = 0
    for split, rec, fault, bad_boxes in walk(scan, decode=False):
        n_images += 1
        n_boxes += len(rec.boxes)
        if fault:
            bad.append(BadFile(rec.file, f"{fault[0]}: {fault[1]}"))
            continue
        drop = {j for j, _ in bad_boxes}
        skipped += [f"{rec.source}: {Path(rec.file).name}: {p}" for _, (_, p) in bad_boxes]
        kept.setdefault(split, []).append(_keep_boxes(rec, drop))
    check_bad_files(bad, n_images, cfg.data.max_bad, source)
    if len(skipped) > bad_file_limit(n_boxes, cfg.data.max_bad):
        raise _too_many_boxes(skipped, n_boxes, cfg.data.max_bad, source)
    if skipped:
        warnings.warn(f"{len(skipped)} of {n_boxes} boxes in {source} were skipped (first: {skipped[0]}); "
                      f"`cnnkit data inspect {source}` lists them all.", stacklevel=2)
    channels, side = _image_facts(kept)
    splits = {s: _to_split(recs, channels) for s, recs in kept.items() if recs}
    train, val, test = complete_splits(splits, cfg, source)
    extra: dict[str, Any] = {"n_train": len(train), "skipped_boxes": len(skipped)}
    if scan.category_ids is not None:
        extra["category_ids"] = list(scan.category_ids)
    info = DatasetInfo(task="detect", classes=list(scan.classes), channels=channels, image_size=side,
                       name=source, hflip_ok=scan.hflip_ok, bad_files=bad, extra=extra)
    return DataBundle(train, val, test, info)


def _too_many_boxes(skipped: list[str], total: int, max_bad: float, source: str):
    from cnnkit.errors import CnnkitError

    return CnnkitError(f"{len(skipped)} of {total} boxes in {source} are unusable, more than data.max_bad allows "
                       f"(first: {skipped[0]}); run `cnnkit data inspect {source}` for the list, fix them, "
                       f"or accept them with `--set data.max_bad={len(skipped)}`.")


def _keep_boxes(rec: RawImage, drop: set[int]) -> RawImage:
    idx = [j for j in range(len(rec.boxes)) if j not in drop]
    boxes = [[min(max(v, 0.0), lim) for v, lim in zip(rec.boxes[j], (rec.width, rec.height) * 2)] for j in idx]
    segs = None if rec.segmentations is None else [rec.segmentations[j] for j in idx]
    return RawImage(rec.file, rec.image_id, rec.source, rec.width, rec.height, boxes,
                    [rec.labels[j] for j in idx], [rec.names[j] for j in idx], [rec.iscrowd[j] for j in idx], segs)


def _image_facts(kept: dict[str, list[RawImage]]) -> tuple[int, int]:
    """(channels, model side): gray only when the first images are all gray; the median longer
    side rounded up to a multiple of 32 (at most 1024) so the model neither blows up small
    images nor shrinks typical ones."""
    recs = [r for rs in kept.values() for r in rs]
    grays = []
    for r in recs[:16]:
        try:
            grays.append(probe_image(r.file)[0])
        except BadImage:
            continue
    sides = sorted(max(r.width or 0, r.height or 0) for r in recs) or [96]
    median = sides[len(sides) // 2]
    return (1 if grays and all(grays) else 3), min(1024, max(32, 32 * math.ceil(median / 32)))


def _to_split(recs: list[RawImage], channels: int) -> DetectionSplit:
    def boxes(r):
        return torch.tensor(r.boxes, dtype=torch.float32).reshape(-1, 4)

    has_masks = any(r.segmentations and any(r.segmentations) for r in recs)
    return DetectionSplit(images=[r.file for r in recs], boxes=[boxes(r) for r in recs],
                          labels=[torch.tensor(r.labels, dtype=torch.int64) for r in recs],
                          iscrowd=[torch.tensor(r.iscrowd, dtype=torch.int64) for r in recs],
                          masks=[r.segmentations for r in recs] if has_masks else None,
                          sizes=[(round(r.height), round(r.width)) for r in recs],
                          names=[Path(r.file).name for r in recs], channels=channels)
