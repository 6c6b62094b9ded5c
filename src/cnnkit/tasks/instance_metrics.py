"""Instance segmentation's metric: COCO segm mAP (and box mAP) from pycocotools' COCOeval.

`iouType="segm"` gives `map`, `map_50`, `map_75` (mask IoU); `iouType="bbox"` gives `box_map`,
`box_map_50`, `box_map_75`. Masks are compared as RLE (pycocotools `mask.encode`) of the
predicted probabilities > 0.5, the threshold torchvision's `paste_masks_in_image` output is
meant for; `encode_masks` also writes `cnnkit predict --json`'s per-object masks.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch

from cnnkit.tasks.detection_metrics import coco_evaluate, coco_ground_truth, coco_stat

MASK_THRESHOLD = 0.5


def encode_masks(masks: torch.Tensor) -> list[dict[str, Any]]:
    """(k, H, W) binary masks -> COCO RLEs with text counts (JSON-able)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    arr = np.asfortranarray(masks.to(torch.uint8).permute(1, 2, 0).cpu().numpy())
    rles = mask_utils.encode(arr)
    return [{"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def binary_masks(pred: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mask R-CNN's (k, 1, H, W) probabilities -> (k, H, W) bool."""
    m = pred["masks"]
    return (m[:, 0] if m.ndim == 4 else m) > MASK_THRESHOLD


def coco_segm_evaluate(gt_rles: list[list[dict]], targets: list[dict[str, torch.Tensor]],
                       pred_rles: list[list[dict]], preds: list[dict[str, torch.Tensor]],
                       sizes: list[tuple[int, int]], num_classes: int) -> dict[str, float]:
    """COCOeval segm over per-image RLEs; areas are mask areas, as COCO's own annotations have."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset = coco_ground_truth(targets, num_classes)
    for img, (h, w) in zip(dataset["images"], sizes):  # COCO.annToRLE reads them
        img["height"], img["width"] = int(h), int(w)
    it = iter(dataset["annotations"])
    for rles in gt_rles:  # coco_ground_truth keeps the targets' order: one annotation per mask
        for rle in rles:
            ann = next(it)
            ann["segmentation"], ann["area"] = rle, float(mask_utils.area(rle))
    results = [{"image_id": i, "category_id": int(lab) + 1, "segmentation": rle, "score": float(s)}
               for i, (rles, p) in enumerate(zip(pred_rles, preds), start=1)
               for rle, lab, s in zip(rles, p["labels"].tolist(), p["scores"].tolist())]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes refuses an empty list; an empty result set evaluates the same
            dt = COCO()
            dt.dataset = {"images": dataset["images"], "annotations": [], "categories": dataset["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": coco_stat(ev.stats[0]), "map_50": coco_stat(ev.stats[1]), "map_75": coco_stat(ev.stats[2])}


class InstanceMetric:
    """Keeps boxes/labels/scores and RLE masks per image; `compute` runs COCOeval segm and bbox."""

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self.targets, self.preds = [], []
        self.gt_rles, self.pred_rles, self.sizes = [], [], []

    def update(self, preds: list[dict[str, torch.Tensor]], batch) -> None:
        for p, t in zip(preds, batch[1]):
            self.targets.append({k: t[k].detach().cpu() for k in ("boxes", "labels", "iscrowd") if k in t})
            self.preds.append({k: p[k].detach().cpu() for k in ("boxes", "labels", "scores")})
            self.sizes.append(tuple(t["masks"].shape[-2:]))
            self.gt_rles.append(encode_masks(t["masks"].detach().cpu() > 0))
            self.pred_rles.append(encode_masks(binary_masks(p).detach().cpu()))

    def compute(self) -> dict[str, Any]:
        if not self.targets:
            return {"map": float("nan"), "map_50": float("nan"), "box_map": float("nan")}
        out: dict[str, Any] = coco_segm_evaluate(self.gt_rles, self.targets, self.pred_rles, self.preds,
                                                 self.sizes, len(self.classes))
        box = coco_evaluate(self.targets, self.preds, self.classes)
        out.update({"box_map": box["map"], "box_map_50": box["map_50"], "box_map_75": box["map_75"],
                    "per_class_box_ap": box["per_class_ap"], "images": len(self.targets)})
        return out
