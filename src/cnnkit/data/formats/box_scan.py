"""The load path of every box format: parsed annotations (`Scan`) -> checked, cleaned `DetectionSplit`s.

Readers (coco.py, yolo.py, voc.py) parse their files into `Scan`s: class names plus one
`RawImage` per image with its boxes exactly as written (xyxy pixels), unknown classes
marked -1, the annotations they could not read (`RawImage.faults`) and the file problems
they met. `walk` checks every image (missing or unreadable, duplicate id) and box (unknown
class, zero or negative size, outside the image, exact repeat) and serves two callers:

- `scan_to_bundle` (the readers' `load`) builds the splits. A box past the border by at most
  `edge_tolerance(side)` = max(2 px, 2 % of that side) is clipped to it and counted (tools
  export `h=1.01`, corners 1-2 px out, float corners); only boxes that overshoot by more, or
  lie outside, are bad. An image with a bad box is left out whole and listed in
  `info.bad_files` with the reason, so its objects never silently become background, and
  the run stops when more images are bad than `data.max_bad` allows. Class names that differ
  only in case stay separate classes, with a warning (`case_clashes`). Exact duplicate boxes
  (same class, same coordinates) are dropped and counted. A set without a single box, or a
  class whose every training box was in a left-out image, stops with one sentence. What was
  clipped, dropped or worked around is one line each in `info.extra["notes"]` (key -> text,
  "warning: ..." when loud), which `build_data` prints on stderr (`health/coverage.py`, which
  also checks every class has training boxes).
- `cnnkit.data.health.boxes.inspect_scan` lists every fault with its file for
  `cnnkit data inspect`.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnkit.config import Config
from cnnkit.data.base import BadFile, DataBundle, DatasetInfo
from cnnkit.data.decode import BadImage, exif_orientation, probe_image, read_image
from cnnkit.data.detection import DetectionSplit, complete_splits, segmentation_problem
from cnnkit.data.splits import check_bad_files
from cnnkit.errors import CnnkitError

EDGE_PX, EDGE_FRACTION = 2.0, 0.02  # overshoot clipped to the border: max(2 px, 2 % of the image side)
ROUNDING_PX = 0.01  # overshoot below this is float rounding of a box that ends at the border: clipped, not counted
CLIP_RULE = f"max({EDGE_PX:g} px, {EDGE_FRACTION:.0%} of the image side)"


class AnnotationError(CnnkitError):
    """An annotation file a reader cannot make sense of (a category without id, a data.yaml
    that is not a mapping, ...): one sentence naming `file`, which inspect reports as
    `bad_annotation` and loading raises."""

    def __init__(self, file: str | Path, message: str):
        super().__init__(message)
        self.file = str(file)


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
    faults: list[tuple[str, str]] = field(default_factory=list)  # (kind, problem) of annotations not readable


@dataclass
class Scan:
    classes: list[str]
    splits: dict[str, list[RawImage]]
    issues: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, file, problem): data lost while parsing
    hflip_ok: bool = True
    category_ids: list[int] | None = None  # COCO ids per class index (for results files)
    remarks: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, file, problem) worked around
    notes: dict[str, str] = field(default_factory=dict)  # how the files were read: key -> one line
    labels_hint: str = ""  # where the annotations were looked for (for the "no boxes" error)


@dataclass
class Checked:
    """What `walk` found for one image."""

    split: str
    rec: RawImage
    fault: tuple[str, str] | None  # (kind, problem) when the image itself cannot be used
    bad_boxes: list[tuple[int | None, tuple[str, str]]] = field(default_factory=list)  # (box index or None, fault)
    clipped: list[int] = field(default_factory=list)  # boxes within the edge tolerance, clipped to the border
    duplicates: list[int] = field(default_factory=list)  # exact repeats of an earlier box of the image


def edge_tolerance(side: float) -> float:
    """Pixels a box may overshoot an image side of `side` pixels and still be clipped (not a fault)."""
    return max(EDGE_PX, EDGE_FRACTION * side)


def _overshoot(box: list[float], width: float, height: float) -> tuple[float, float]:
    x1, y1, x2, y2 = box
    return max(0.0, -x1, x2 - width), max(0.0, -y1, y2 - height)


def box_faults(box: list[float], label: int, name: str, num_classes: int, width: float | None,
               height: float | None) -> tuple[str, str] | None:
    """(kind, problem) for a bad box, or None when it can be used (after clipping to the border)."""
    x1, y1, x2, y2 = box
    if label < 0 or label >= num_classes:
        return "unknown_class", f"class {name!r} is not in the class list"
    if not all(math.isfinite(v) for v in box):
        return "bad_annotation", f"box {_fmt(box)} has a coordinate that is not a finite number"
    if not x2 > x1 or not y2 > y1:
        return "degenerate_box", f"box {_fmt(box)} has zero or negative size"
    if width is None or height is None:
        return None
    ox, oy = _overshoot(box, width, height)
    if min(x2, width) <= max(x1, 0.0) or min(y2, height) <= max(y1, 0.0):
        return "box_outside", f"box {_fmt(box)} lies outside the {width:g}x{height:g} image"
    tx, ty = edge_tolerance(width), edge_tolerance(height)
    if ox > tx or oy > ty:
        return "box_outside", (f"box {_fmt(box)} extends {max(ox, oy):.1f} px outside the {width:g}x{height:g} "
                               f"image (only overshoots up to {CLIP_RULE} are clipped)")
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
        said = f"annotation says {rec.width:g}x{rec.height:g} but the image is {w}x{h}"
        if (round(rec.width), round(rec.height)) == (h, w) and exif_orientation(rec.file) in (5, 6, 7, 8):
            # Phone photos: the tool measured (and probably drew on) the stored pixels, cnnkit shows the photo
            # turned upright as its EXIF orientation asks, so the boxes would land on the wrong pixels.
            return "size_mismatch", (f"{said} once turned upright by its EXIF orientation ({h}x{w} as stored): the "
                                     "annotation tool ignored the orientation, so its boxes fit the unrotated "
                                     "pixels; turn the files upright (e.g. `mogrify -auto-orient`) and annotate "
                                     "them again")
        return "size_mismatch", said
    return None


def _check_boxes(c: Checked, num_classes: int) -> None:
    rec = c.rec
    c.bad_boxes = [(None, f) for f in rec.faults]
    first: dict[tuple, int] = {}
    for j, (b, lab, nm) in enumerate(zip(rec.boxes, rec.labels, rec.names)):
        if f := box_faults(b, lab, nm, num_classes, rec.width, rec.height):
            c.bad_boxes.append((j, f))
        elif rec.width is not None and max(_overshoot(b, rec.width, rec.height)) > ROUNDING_PX:
            c.clipped.append(j)
        seg = rec.segmentations[j] if rec.segmentations and j < len(rec.segmentations) else None
        if seg and rec.width is not None and (problem := segmentation_problem(seg, round(rec.height),
                                                                              round(rec.width))):
            c.bad_boxes.append((j, ("bad_annotation", f"the mask of box {_fmt(b)} cannot be used: {problem}")))
        key = (nm, lab, tuple(b))
        if key in first:
            c.duplicates.append(j)
        else:
            first[key] = j


def walk(scan: Scan, decode: bool, files: bool = True) -> Iterator[Checked]:
    """A `Checked` for every record (`files=False`: the images are in memory, so only ids and boxes are checked)."""
    seen: set = set()
    for split, records in scan.splits.items():
        for rec in records:
            key = (split, rec.image_id)
            fault = ("duplicate_image_id", f"image id {rec.image_id!r} appears more than once") \
                if key in seen else (_check_image(rec, decode) if files else None)
            seen.add(key)
            c = Checked(split, rec, fault)
            _check_boxes(c, len(scan.classes))
            yield c


def case_clashes(classes: list[str]) -> list[str]:
    """One sentence per group of class names that differ only in case ("Cat" and "cat"): they stay
    separate classes, as written (merging would guess which spelling the labeller meant)."""
    groups: dict[str, list[str]] = {}
    for c in classes:
        groups.setdefault(c.casefold(), []).append(c)
    return [f"class names {' and '.join(repr(c) for c in same)} differ only in case, so they are "
            f"{len(same)} separate classes; if they are one, write it one way in every annotation file"
            for same in groups.values() if len(same) > 1]


def clip_note(clipped: int) -> str:
    return f"{clipped} boxes clipped to the image border (each overshot it by at most {CLIP_RULE})"


def scan_to_bundle(scan: Scan, cfg: Config, source: str) -> DataBundle:
    """Clean the scan (see module docstring) into train/val/test `DetectionSplit`s."""
    bad: list[BadFile] = [BadFile(f, p) for kind, f, p in scan.issues if kind != "no_labels"]
    kept: dict[str, list[RawImage]] = {}
    lost: Counter = Counter()  # class index -> training boxes in images left out for a bad box
    left_out: list[BadFile] = []
    n_images = n_boxes = clipped = duplicates = bad_boxes = 0
    first_train_bad = None  # why the first train image was left out, should none be left
    for c in walk(scan, decode=False):
        n_images += 1
        n_boxes += len(c.rec.boxes)
        if c.split == "train" and first_train_bad is None and (c.fault or c.bad_boxes):
            first_train_bad = BadFile(c.rec.file, f"{c.fault[0]}: {c.fault[1]}") if c.fault else _left_out(c)
        if c.fault:
            bad.append(BadFile(c.rec.file, f"{c.fault[0]}: {c.fault[1]}"))
        elif c.bad_boxes:
            bad_boxes += len(c.bad_boxes)
            left_out.append(_left_out(c))
            if c.split in ("train", "all"):
                lost.update(lab for lab, crowd in zip(c.rec.labels, c.rec.iscrowd) if lab >= 0 and not crowd)
        else:
            clipped += len(c.clipped)
            duplicates += len(c.duplicates)
            kept.setdefault(c.split, []).append(_keep_boxes(c.rec, set(c.duplicates)))
    bad += left_out
    unlisted = sum(kind != "no_labels" for kind, _, _ in scan.issues)  # entries that never became images
    check_bad_files(bad, n_images + unlisted, cfg.data.max_bad, source)
    if n_images == 0:
        why = "; ".join(f"{file}: {problem}" for kind, file, problem in scan.remarks if kind == "no_images")
        raise CnnkitError(f"{source} holds no images{f' ({why})' if why else ''}: a detector cannot learn from it; "
                          f"check the paths with `cnnkit data inspect {source}`.")
    if n_boxes == 0 and not bad_boxes:
        raise CnnkitError(f"{source} holds {n_images} images but not a single box "
                          f"({scan.labels_hint or 'no annotation was found'}): a detector cannot learn from it; "
                          f"check the layout with `cnnkit data inspect {source}`.")
    notes = {**scan.notes, **_remark_notes(scan.remarks, source)}
    for k, clash in enumerate(case_clashes(scan.classes)):
        notes[f"boxes:class_name_case:{k}"] = f"warning: {source}: {clash}"
    if left_out:
        notes["boxes:left_out"] = (f"warning: left out {len(left_out)} of {n_images} images with {bad_boxes} unusable "
                                   f"boxes, so that their objects do not become background (first: {left_out[0].path}: "
                                   f"{left_out[0].reason}); `cnnkit data inspect {source}` lists them all")
    if clipped:
        notes["boxes:clipped"] = clip_note(clipped)
    if duplicates:
        notes["boxes:duplicates"] = (f"dropped {duplicates} duplicate boxes (the same class and coordinates twice "
                                     "in one image)")
    if not kept and bad:
        raise CnnkitError(f"No image of {source} can be used: all {n_images} were left out (first: {bad[0].path}: "
                          f"{bad[0].reason}); `cnnkit data inspect {source}` lists why.")
    if "train" in scan.splits and "train" not in kept:  # else complete_splits asks for a train subset it has
        n = len(scan.splits["train"])
        why = (f"all {n} of its images were left out (first: {first_train_bad.path}: {first_train_bad.reason})"
               if n and first_train_bad else "its annotations list no image")
        raise CnnkitError(f"The train subset of {source} has no usable image: {why}; `cnnkit data inspect "
                          f"{source}` lists why.")
    channels, side = _image_facts(kept)
    splits = {s: _to_split(recs, channels) for s, recs in kept.items() if recs}
    train, val, test = complete_splits(splits, cfg, source)
    _check_lost_classes(scan.classes, train, lost, left_out, source)
    extra: dict[str, Any] = {"n_train": len(train), "skipped_boxes": bad_boxes, "clipped_boxes": clipped,
                             "duplicate_boxes": duplicates, "notes": notes}
    if scan.category_ids is not None:
        extra["category_ids"] = list(scan.category_ids)
    info = DatasetInfo(task="detect", classes=list(scan.classes), channels=channels, image_size=side,
                       name=source, hflip_ok=scan.hflip_ok, bad_files=bad, extra=extra)
    return DataBundle(train, val, test, info)


def _left_out(c: Checked) -> BadFile:
    j, (kind, problem) = c.bad_boxes[0]
    where = f"box {j + 1}: " if j is not None else ""
    more = f" (and {len(c.bad_boxes) - 1} more bad boxes)" if len(c.bad_boxes) > 1 else ""
    return BadFile(c.rec.file, f"{kind}: {c.rec.source}: {where}{problem}{more}")


def _remark_notes(remarks: list[tuple[str, str, str]], source: str) -> dict[str, str]:
    """One line per kind of problem the reader worked around (inspect lists each one)."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for kind, file, problem in remarks:
        by_kind.setdefault(kind, []).append((file, problem))
    out = {}
    for kind, found in by_kind.items():
        file, problem = found[0]
        more = f" and {len(found) - 1} more like it" if len(found) > 1 else ""
        out[f"remarks:{kind}"] = f"{kind}: {file}: {problem}{more}; `cnnkit data inspect {source}` lists them"
    return out


def _check_lost_classes(classes: list[str], train: DetectionSplit, lost: Counter, left_out: list[BadFile],
                        source: str) -> None:
    """Stop when a class lost every training box with the images left out for a bad box (the
    generic coverage check in `health/coverage.py` would only see a class without boxes)."""
    counts = _boxes_per_class(train)
    for k, name in enumerate(classes):
        if lost[k] and not counts[k]:
            raise CnnkitError(f"class {name} has no training box left after leaving out {len(left_out)} images "
                              f"with unusable boxes (first: {left_out[0].path}: {left_out[0].reason}); fix those "
                              f"boxes (`cnnkit data inspect {source}` lists them).")


def _boxes_per_class(split: DetectionSplit) -> Counter:
    out: Counter = Counter()
    for i in range(len(split)):
        crowd = split.iscrowd[i] if split.iscrowd is not None else torch.zeros_like(split.labels[i])
        out.update(split.labels[i][crowd == 0].tolist())
    return out


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
