"""Semantic segmentation metrics from one confusion matrix: mIoU, per-class IoU, Dice, pixel accuracy.

Every number is read off a K x K confusion matrix accumulated over the whole split
(rows = ground truth, columns = prediction), so the result does not depend on batch size.
Pixels whose ground truth is the ignore index (255, VOC's "void") are left out entirely.
A class that appears neither in the ground truth nor in the predictions has no defined
IoU; it is reported as None and left out of the means (the convention of mmseg's
`nanmean`), which is what the tests check against a float64 numpy reference.

The matrix is counted with `torch.bincount` on `K * target + pred`, the same one-line
method as torchvision's `references/segmentation/utils.py` ConfusionMatrix, in int64
so large splits cannot overflow.
"""
from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """K x K int64 counts of (true class, predicted class) over pixels whose target is not ignored."""
    target = target.reshape(-1).long()
    pred = pred.reshape(-1).long()
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    idx = num_classes * target[keep] + pred[keep].clamp(0, num_classes - 1)
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def scores_from_confusion(cm: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """mIoU, mean Dice and pixel accuracy (floats) plus per-class IoU/Dice (None where undefined)."""
    cm = cm.double()
    tp = cm.diag()
    gt, pr = cm.sum(1), cm.sum(0)
    union = gt + pr - tp
    denom_dice = gt + pr
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    dice = torch.where(present, 2 * tp / denom_dice.clamp(min=1), torch.full_like(tp, float("nan")))
    total = cm.sum()
    nan = float("nan")
    return {
        "miou": float(iou[present].mean()) if present.any() else nan,
        "dice": float(dice[present].mean()) if present.any() else nan,
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else nan,
        "per_class_iou": {c: (float(v) if p else None) for c, v, p in zip(classes, iou, present)},
        "per_class_dice": {c: (float(v) if p else None) for c, v, p in zip(classes, dice, present)},
        "pixels_per_class": {c: int(v) for c, v in zip(classes, gt)},
    }


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
