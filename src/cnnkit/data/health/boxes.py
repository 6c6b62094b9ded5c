"""Box health reports for `cnnkit data inspect`: COCO, YOLO and VOC folders, and built-in box sets.

`inspect_scan` lists every fault `formats.box_scan.walk` finds, with its file — missing or
unreadable images (fully decoded), duplicate image ids, boxes outside the image, boxes of
zero or negative size, unknown class ids, unparsable annotations, exact duplicate boxes
(`duplicate_box`), a set without a single box (`no_boxes`), class names that differ only in
case (`class_name_case`) and what the reader worked around — and images without labels
(reported, not an error: they are background samples). Boxes a hair past
the border are clipped when loading, so they are counted (`clipped_boxes`), not listed;
how the files were read (label files beside the images, ...) is in `counts["notes"]`
(keyed as the loaded bundle's `info.extra["notes"]`, which `cnnkit data inspect` merges in).
The counts (images, boxes, splits, per_class) are what training uses: images loading leaves
out (`left_out_images`) and dropped duplicate boxes (`duplicate_boxes`) are not in them.
Built-in sets are checked in memory by the "detect" inspector. A class with boxes in val/test
but none in train is `health.coverage`'s `class-not-in-train` (added by `cnnkit data inspect`
for every format), so it is not listed here a second time.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.detection import DetectionSplit
from cnnkit.data.formats import coco, voc, yolo
from cnnkit.data.formats.box_scan import AnnotationError, Checked, RawImage, Scan, case_clashes, clip_note, walk
from cnnkit.data.health.report import HealthReport
from cnnkit.data.registry import INSPECTORS
from cnnkit.data.sources import build_named


def inspect_scan(scan: Scan, source: str, files: bool = True) -> HealthReport:
    report = HealthReport(source=source)
    for kind, file, problem in scan.issues + scan.remarks:
        report.add(kind, file, problem)
    for clash in case_clashes(scan.classes):
        report.add("class_name_case", source, clash)
    per_class: Counter = Counter()
    n_images = n_boxes = listed_boxes = clipped = duplicates = left_out = 0
    splits: dict[str, int] = {}
    background: list[str] = []
    for c in walk(scan, decode=True, files=files):
        listed_boxes += len(c.rec.boxes)
        if _report_image(report, c) and not c.fault:  # a missing or broken image is no background sample
            background.append(c.rec.file)
        if c.fault or c.bad_boxes:  # loading leaves the image out whole: the counts are what training uses
            left_out += 1
            continue
        splits[c.split] = splits.get(c.split, 0) + 1
        n_images += 1
        n_boxes += len(c.rec.boxes) - len(c.duplicates)
        clipped += len(c.clipped)
        duplicates += len(c.duplicates)
        per_class.update(scan.classes[lab] for j, lab in enumerate(c.rec.labels)
                         if 0 <= lab < len(scan.classes) and j not in c.duplicates)
    if (n_images or left_out) and not listed_boxes:  # one fault for the set, not a background sample per image
        report.add("no_boxes", source, f"no image has a box ({scan.labels_hint or 'no annotation was found'})")
    else:
        for file in background:
            report.add("no_labels", file, "image has no boxes (used as a background sample)")
    notes = {**scan.notes, **({"boxes:clipped": clip_note(clipped)} if clipped else {})}
    report.counts = {"images": n_images, "boxes": n_boxes, "classes": len(scan.classes), "splits": splits,
                     "per_class": {c: per_class.get(c, 0) for c in scan.classes}, "left_out_images": left_out,
                     "clipped_boxes": clipped, "duplicate_boxes": duplicates}
    if notes:
        report.counts["notes"] = notes
    return report


def _report_image(report: HealthReport, c: Checked) -> bool:
    """Report the image's faults; True when it has no boxes at all (a background sample)."""
    rec, name = c.rec, Path(c.rec.file).name
    if c.fault:
        report.add(c.fault[0], rec.file, c.fault[1])
    for j, (kind, problem) in c.bad_boxes:
        report.add(kind, rec.source, f"{name}: box {j + 1}: {problem}" if j is not None else f"{name}: {problem}")
    for j in c.duplicates:
        first = next(k for k in range(j) if (rec.names[k], rec.labels[k], rec.boxes[k]) ==
                     (rec.names[j], rec.labels[j], rec.boxes[j]))
        report.add("duplicate_box", rec.source, f"{name}: box {j + 1} repeats box {first + 1} "
                                                f"(same class and coordinates; loading drops the copy)")
    return not rec.boxes and not c.bad_boxes


def _file_inspector(scan):
    def inspect(path: Path, cfg: Config) -> HealthReport:
        try:
            found = scan(path, cfg.data.allow_outside_root)
        except AnnotationError as e:  # the file cannot be read at all: its one sentence is the report
            report = HealthReport(source=str(path))
            report.add("bad_annotation", e.file, str(e))
            return report
        return inspect_scan(found, str(path))

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
