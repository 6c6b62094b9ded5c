"""Box health reports for `cnnkit data inspect`: COCO, YOLO and VOC folders, and built-in box sets.

`inspect_scan` lists every fault `formats.box_scan.walk` finds, with its file — missing or
unreadable images (fully decoded), duplicate image ids, boxes outside the image, boxes of
zero or negative size, unknown class ids, unparsable annotations — and images without
labels (reported, not an error: they are background samples). Built-in sets are checked
in memory by the "detect" inspector.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.detection import DetectionSplit
from cnnkit.data.formats import coco, voc, yolo
from cnnkit.data.formats.box_scan import RawImage, Scan, walk
from cnnkit.data.health.report import HealthReport
from cnnkit.data.registry import INSPECTORS
from cnnkit.data.sources import build_named


def inspect_scan(scan: Scan, source: str, files: bool = True) -> HealthReport:
    report = HealthReport(source=source)
    for kind, file, problem in scan.issues:
        report.add(kind, file, problem)
    per_class: Counter = Counter()
    n_images = n_boxes = 0
    splits: dict[str, int] = {}
    for split, rec, fault, bad_boxes in walk(scan, decode=True, files=files):
        splits[split] = splits.get(split, 0) + 1
        n_images += 1
        n_boxes += len(rec.boxes)
        per_class.update(scan.classes[lab] for lab in rec.labels if 0 <= lab < len(scan.classes))
        if fault:
            report.add(fault[0], rec.file, fault[1])
        for j, (kind, problem) in bad_boxes:
            report.add(kind, rec.source, f"{Path(rec.file).name}: box {j + 1}: {problem}")
        if not rec.boxes:
            report.add("no_labels", rec.file, "image has no boxes (used as a background sample)")
    report.counts = {"images": n_images, "boxes": n_boxes, "classes": len(scan.classes), "splits": splits,
                     "per_class": {c: per_class.get(c, 0) for c in scan.classes}}
    return report


def _file_inspector(scan):
    def inspect(path: Path, cfg: Config) -> HealthReport:
        return inspect_scan(scan(path), str(path))

    return inspect


for _name, _scan in (("coco", coco.scan), ("yolo", yolo.scan), ("voc", voc.scan)):
    INSPECTORS.register(_name)(_file_inspector(_scan))


# ---- built-in (in-memory) sets ----------------------------------------------------------
@INSPECTORS.register("detect")
def inspect_builtin(path: Path, cfg: Config) -> HealthReport:
    return inspect_scan(bundle_scan(build_named(str(path), cfg)), str(path), files=False)


def bundle_scan(bundle: DataBundle) -> Scan:
    """A Scan of in-memory splits, to check with `inspect_scan(..., files=False)`."""
    splits = {}
    for s in ("train", "val", "test"):
        split: DetectionSplit = bundle.split(s)
        recs = []
        for i in range(len(split)):
            h, w = split.size(i)
            labels = split.labels[i].tolist()
            recs.append(RawImage(split.name(i), (s, i), f"{bundle.info.name}:{s}", float(w), float(h),
                                 split.boxes[i].tolist(), labels, [str(lab) for lab in labels],
                                 split.target(i)["iscrowd"].tolist()))
        splits[s] = recs
    return Scan(list(bundle.info.classes), splits)
