"""Detection metrics through pycocotools' COCOeval, so the numbers are the COCO reference's.

`coco_evaluate` turns per-image ground truth and predictions into pycocotools objects
(image ids 1..N, annotation ids from 1 — COCOeval reads a matched id of 0 as "no
match" — category id = class index + 1) and runs the standard bbox evaluation:
`map` (AP@[.5:.95]), `map_50`, `map_75`, AP by object size, AR@1/10/100 and per-class AP
(the precision array averaged over IoU thresholds and recall points, area "all",
100 detections, classes without ground truth left out). Crowd ground truth
(`iscrowd` = 1) is matched the way COCOeval does; an image may have no ground truth
and no predictions.

Undefined is None, never a number: pycocotools marks an AP/AR it cannot define (no ground
truth in the split, in a size range or of a class) with -1; `coco_stat` turns that marker into
None, and `DetectionMetric` adds a one-line `note` saying why. On a split without any
ground-truth box it also reports the false alarms: `detections` (all kept detections) and
`fp_per_image` (detections per image scoring >= `FP_SCORE` = 0.5).

Why the glue is hand-written rather than torchmetrics' `MeanAveragePrecision(backend=
"pycocotools", class_metrics=True)`, measured on 2 shared CPU cores, torchmetrics 1.9: on the
digits-detect val split (300 canvases, 100 detections each) it took 11.5-14.9 s against 6.1-7.7 s
here, because it re-runs COCOeval once per class for the per-class AP that this module reads
off the one precision array; and its map_small/map_medium differ from a direct pycocotools run
by up to 2.5e-4 (the `noisy` and `crowd_boxes` reference tests, tolerance 1e-4).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch

FP_SCORE = 0.5  # score from which a detection on an object-free split counts in `fp_per_image`
SIZE_RANGES = ("small", "medium", "large")  # COCO areas: < 32², 32²-96², > 96² pixels
STAT_NAMES = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
              "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


def coco_stat(value: float) -> float | None:
    """A pycocotools summary number, or None where pycocotools marks it undefined (-1)."""
    return None if value < 0 else float(value)


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    b = boxes.detach().cpu().double()
    return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], 1).tolist() if len(b) else []


def coco_ground_truth(targets: list[dict[str, torch.Tensor]], num_classes: int) -> dict[str, Any]:
    """A COCO 'instances' dict from per-image targets (boxes xyxy, labels, optional iscrowd/area)."""
    images, anns = [], []
    for i, t in enumerate(targets, start=1):
        images.append({"id": i})
        crowd = t.get("iscrowd")
        crowd = crowd.tolist() if crowd is not None else [0] * len(t["labels"])
        area = t.get("area")
        for j, (box, label) in enumerate(zip(_xywh(t["boxes"]), t["labels"].tolist())):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(label) + 1, "bbox": box,
                         "area": float(area[j]) if area is not None else box[2] * box[3],
                         "iscrowd": int(crowd[j])})
    return {"images": images, "annotations": anns, "categories": [{"id": c + 1} for c in range(num_classes)]}


def coco_results(preds: list[dict[str, torch.Tensor]]) -> list[dict[str, Any]]:
    """COCO results format: one {image_id, category_id, bbox (xywh), score} per detection."""
    out = []
    for i, p in enumerate(preds, start=1):
        for box, label, score in zip(_xywh(p["boxes"]), p["labels"].tolist(), p["scores"].tolist()):
            out.append({"image_id": i, "category_id": int(label) + 1, "bbox": box, "score": float(score)})
    return out


def coco_evaluate(targets: list[dict[str, torch.Tensor]], preds: list[dict[str, torch.Tensor]],
                  classes: list[str]) -> dict[str, Any]:
    """COCOeval bbox metrics for parallel lists of per-image targets (boxes xyxy (K, 4) float,
    labels (K,) int64, optional iscrowd/area) and predictions (boxes, labels, scores (D,)).

    Returns the `STAT_NAMES` floats in [0, 1] and `per_class_ap` {class: float}; any of them is
    None where undefined (no ground truth for it)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its table
        gt = COCO()
        gt.dataset = coco_ground_truth(targets, len(classes))
        gt.createIndex()
        results = coco_results(preds)
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list: an empty result set is the same evaluation
            dt = COCO()
            dt.dataset = {"images": gt.dataset["images"], "annotations": [],
                          "categories": gt.dataset["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out: dict[str, Any] = {name: coco_stat(v) for name, v in zip(STAT_NAMES, ev.stats)}
    precision = ev.eval["precision"]  # T x R x K x A x M
    per_class = {}
    for k, name in enumerate(classes):
        p = precision[:, :, k, 0, -1]
        per_class[name] = float(np.mean(p[p > -1])) if (p > -1).any() else None
    out["per_class_ap"] = per_class
    return out


def undefined_note(out: dict[str, Any], n_gt: int, n_images: int, scores: torch.Tensor) -> str | None:
    """One sentence saying why some of `out`'s AP/AR are None (None when all are defined)."""
    if n_gt == 0:
        undefined = "the split has no ground-truth boxes, so AP/AR are undefined"
        if len(scores) == 0:
            return f"{undefined}; no detections on its {n_images} images, so no false positives either"
        above = int((scores >= FP_SCORE).sum())
        return (f"{undefined}; {len(scores)} detections on {n_images} images ({above} with score >= {FP_SCORE}) "
                f"are all false positives")
    reasons = []
    sizes = [s for s in SIZE_RANGES if out.get(f"map_{s}") is None]
    if sizes:
        areas = {"small": "< 32²", "medium": "32²-96²", "large": "> 96²"}
        reasons.append(f"no ground-truth box is {' or '.join(f'{s} ({areas[s]} px)' for s in sizes)}, "
                       f"so AP/AR for {'/'.join(sizes)} are undefined")
    absent = [str(c) for c, v in out.get("per_class_ap", {}).items() if v is None]
    if absent:
        reasons.append(f"no ground-truth box of class {', '.join(absent)}, so per-class AP is undefined there")
    return "; ".join(reasons) or None


class DetectionMetric:
    """Collects predictions and targets over an evaluation, then runs `coco_evaluate` once."""

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self.targets: list[dict[str, torch.Tensor]] = []
        self.preds: list[dict[str, torch.Tensor]] = []

    def update(self, preds: list[dict[str, torch.Tensor]], batch) -> None:
        targets = batch[1]
        keys_t, keys_p = ("boxes", "labels", "iscrowd", "area"), ("boxes", "labels", "scores")
        self.targets += [{k: t[k].detach().cpu() for k in keys_t if k in t} for t in targets]
        self.preds += [{k: p[k].detach().cpu() for k in keys_p} for p in preds]

    def compute(self) -> dict[str, Any]:
        """`coco_evaluate`'s numbers plus `images`, `detections` and, where some are None, a `note`
        saying why; on a split without ground-truth boxes also `fp_per_image` (score >= FP_SCORE)."""
        if not self.targets:
            return {"map": None, "map_50": None, "map_75": None, "note": "the split has no images"}
        out = coco_evaluate(self.targets, self.preds, self.classes)
        scores = torch.cat([p["scores"].reshape(-1).float() for p in self.preds])
        n_gt = sum(len(t["labels"]) for t in self.targets)
        out["images"] = len(self.targets)
        out["detections"] = len(scores)
        if n_gt == 0:
            out["fp_per_image"] = int((scores >= FP_SCORE).sum()) / len(self.targets)
        note = undefined_note(out, n_gt, len(self.targets), scores)
        if note:
            out["note"] = note
        return out
