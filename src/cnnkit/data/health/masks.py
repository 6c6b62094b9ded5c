"""Mask health reports for `cnnkit data inspect`: mask folders, VOC segmentation, built-in segment sets.

Every image/mask pair is decoded in full (not just its header) and each fault is listed
against its file, with a kind that `HealthReport.by_kind` counts:

- `unreadable`:     the image or the mask cannot be decoded (zero-byte, truncated, not an image,
                    a colour mask with no class indices);
- `missing-mask` /  an image without a mask, a mask without an image, a listed id without files;
  `missing-image`
- `size-mismatch`:  the mask's width x height differs from its image's;
- `unknown-class`:  mask values that are neither a class index (0..K-1) nor 255 (ignore);
- `empty-mask`:     no pixel of any foreground class (only background and/or ignore).
Counts give images per subset, pixels and images per class, so imbalance shows too.
Classes and the reading of 255 come from `mask_folder.mask_reading`, as when the set is
loaded for training, so binary 0/255 (0/128, ..) masks are checked with that value as class 1
and the report carries the same note (`counts["notes"]`). Values that stop loading (blurred
levels, mixed 0/255 and 0/1 masks) do not stop the report: the masks are checked as stored and
`commands.inspect` adds the stop sentence as an "unusable" fault.
"""
from __future__ import annotations

from pathlib import Path

import torch

from cnnkit.config import Config
from cnnkit.data.base import BadFile
from cnnkit.data.formats import mask_folder, voc_seg
from cnnkit.data.health.report import HealthReport
from cnnkit.data.registry import INSPECTORS
from cnnkit.data.segmentation import IGNORE_INDEX, BadMask, SegSplit, read_mask, remap_mask
from cnnkit.data.sources import build_named


class _Tally:
    def __init__(self, classes: list[str]):
        self.classes = classes
        self.pixels = torch.zeros(len(classes), dtype=torch.int64)
        self.images = torch.zeros(len(classes), dtype=torch.int64)

    def add(self, mask: torch.Tensor) -> None:
        m = mask.reshape(-1).long()
        counts = torch.bincount(m[m < len(self.classes)], minlength=len(self.classes))
        self.pixels += counts
        self.images += (counts > 0).long()

    def to_dict(self) -> dict:
        return {"pixels_per_class": {c: int(v) for c, v in zip(self.classes, self.pixels)},
                "images_per_class": {c: int(v) for c, v in zip(self.classes, self.images)}}


def check_pair(report: HealthReport, tally: _Tally, name: str, image: torch.Tensor, mask: torch.Tensor,
               mask_name: str | None = None) -> None:
    """Add the size / class-value / emptiness faults of one decoded pair to `report`."""
    k = len(tally.classes)
    mask_name = mask_name or name
    if tuple(image.shape[-2:]) != tuple(mask.shape[-2:]):
        report.add("size-mismatch", name, f"image is {image.shape[-1]}x{image.shape[-2]} but its mask "
                                          f"{mask_name} is {mask.shape[-1]}x{mask.shape[-2]} (WxH)")
    values = mask.unique()
    unknown = values[(values >= k) & (values != IGNORE_INDEX)]
    if len(unknown):
        shown = ", ".join(str(int(v)) for v in unknown[:8])
        report.add("unknown-class", mask_name, f"mask values {shown} are not classes 0..{k - 1} "
                                               f"({', '.join(tally.classes[:4])}{', ...' if k > 4 else ''}) nor 255")
    if not ((values != 0) & (values != IGNORE_INDEX)).any():
        report.add("empty-mask", mask_name, "mask has no foreground pixels (only background or ignore)")
    tally.add(mask)


def inspect_split(report: HealthReport, tally: _Tally, split, channels: int | None,
                  remap: dict[int, int] | None = None) -> int:
    """Check every pair of a SegSplit / SegFileSplit (mask values read through `remap`); returns
    the number of pairs looked at."""
    from cnnkit.data.decode import BadImage, read_image

    for i in range(len(split)):
        if isinstance(split, SegSplit):
            name = split.names[i] if split.names else str(i)
            check_pair(report, tally, name, split.images[i], split.masks[i])
            continue
        img_path, mask_path = split.image_paths[i], split.mask_paths[i]
        image = mask = None
        try:
            image = read_image(img_path, channels)
        except BadImage as e:
            report.add("unreadable", img_path, str(e))
        try:
            mask = remap_mask(read_mask(mask_path, split.colours), remap)
        except BadMask as e:
            report.add("unreadable", mask_path, f"mask {e}")
        if image is not None and mask is not None:
            check_pair(report, tally, img_path, image, mask, mask_path)
    return len(split)


def _listing_faults(report: HealthReport, bad: list[BadFile]) -> None:
    for b in bad:  # reasons written by mask_folder.scan / voc_seg.scan
        kind = "missing-mask" if ("no mask" in b.reason or "mask is missing" in b.reason) else "missing-image"
        report.add(kind, b.path, b.reason)


def _report(source: str, subsets: dict, bad: list[BadFile], classes: list[str], channels: int | None,
            remap: dict[int, int] | None = None, notes: dict[str, str] | None = None) -> HealthReport:
    report = HealthReport(source)
    _listing_faults(report, bad)
    tally = _Tally(classes)
    per_split = {s: inspect_split(report, tally, split, channels, remap) for s, split in subsets.items()}
    report.counts = {"images": sum(per_split.values()), "subsets": per_split, "classes": len(classes),
                     **tally.to_dict()}
    if notes:
        report.counts["notes"] = dict(notes)
    return report


def _files_report(root: Path, source: str, found: dict, bad: list[BadFile], cfg: Config,
                  default: list[str] | None = None, default_name: str = "the default") -> HealthReport:
    """Mask-folder / VOC layouts: classes and the reading of 255 as the reader decides them."""
    found, classes, colour_note = mask_folder.with_labelmap(root, found, mask_folder.read_classes(root))
    hists = mask_folder.value_histograms(found)
    total = sum(len(s) for s in found.values())
    classes, remap, notes = mask_folder.mask_reading(hists, total, classes,
                                                     cfg.data.mask_255, source, default, check=False,
                                                     default_name=default_name)
    return _report(source, found, bad, classes, None, remap, {**colour_note, **notes})


@INSPECTORS.register("mask-folder")
def inspect_mask_folder(path: Path, cfg: Config) -> HealthReport:
    found, bad = mask_folder.scan(path)
    return _files_report(path, str(path), found, bad, cfg)


@INSPECTORS.register("voc-seg")
def inspect_voc_seg(path: Path, cfg: Config) -> HealthReport:
    root = voc_seg.voc_root(path) or path
    if voc_seg.wants_detection(root, cfg):  # a full VOC folder: boxes unless segment is asked
        return INSPECTORS.get("voc")(path, cfg)
    found, bad = voc_seg.scan(root, cfg.data.allow_outside_root)
    return _files_report(root, str(path), found, bad, cfg, list(voc_seg.VOC_CLASSES), voc_seg.DEFAULT_NAME)


@INSPECTORS.register("segment")
def inspect_segment_builtin(path: Path, cfg: Config) -> HealthReport:
    """A built-in segmentation set (digits-seg): the same checks on the generated tensors."""
    bundle = build_named(str(path), cfg, check=False)
    splits = {s: bundle.split(s) for s in ("train", "val", "test")}
    return _report(str(path), splits, list(bundle.info.bad_files), bundle.info.classes, bundle.info.channels)
