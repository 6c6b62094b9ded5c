"""Detection metrics through pycocotools' COCOeval, so the numbers are the COCO reference's.

`coco_evaluate` turns per-image ground truth and predictions into pycocotools objects
(image ids 1..N, annotation ids from 1 — COCOeval reads a matched id of 0 as "no
match" — category id = class index + 1) and runs the standard bbox evaluation:
`map` (AP@[.5:.95]), `map_50`, `map_75`, AP by object size, AR@1/10/100 and per-class AP
(the precision array averaged over IoU thresholds and recall points, area "all",
100 detections, classes without ground truth left out). Crowd ground truth
(`iscrowd` = 1) is matched the way COCOeval does; an image may have no ground truth
and no predictions. A value of -1 means "not defined" (no ground truth at all),
exactly as pycocotools reports it.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch

STAT_NAMES = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
              "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


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
    """COCOeval bbox metrics for parallel lists of per-image targets and predictions."""
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
    out: dict[str, Any] = {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}
    precision = ev.eval["precision"]  # T x R x K x A x M
    per_class = {}
    for k, name in enumerate(classes):
        p = precision[:, :, k, 0, -1]
        per_class[name] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    out["per_class_ap"] = per_class
    return out


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
        if not self.targets:
            return {"map": float("nan"), "map_50": float("nan"), "map_75": float("nan")}
        out = coco_evaluate(self.targets, self.preds, self.classes)
        out["images"] = len(self.targets)
        out["detections"] = int(sum(len(p["scores"]) for p in self.preds))
        return out
