"""Instance segmentation: a mask per detected object (torchvision Mask R-CNN), COCO segm mAP.

Data is detection data whose objects carry masks (`digits-detect`, COCO with polygons or
RLE): the detection loader is reused with `masks=True`, so boxes, labels and masks move
together through the same box-aware transforms.v2 augmentation. Images reach the model as
float 0..1 (the detector resizes and normalises for itself), as in the detect task.

Metrics come from pycocotools' COCOeval twice: `iouType="segm"` gives `map`, `map_50`,
`map_75` (mask IoU); `iouType="bbox"` gives `box_map`, `box_map_50`, `box_map_75`. Masks
are compared as RLE (pycocotools `mask.encode`) of the predicted probabilities > 0.5, the
threshold torchvision's `paste_masks_in_image` output is meant for. `cnnkit predict --json`
writes each object's mask as COCO RLE (counts as text) next to its box.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.tasks import TASKS
from cnnkit.tasks.detect import DetectTask, class_colors, draw_detections, prediction_grid, save_png
from cnnkit.tasks.detection_metrics import coco_evaluate, coco_ground_truth

DEFAULT_MODEL = "maskrcnn"
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
    return {"map": float(ev.stats[0]), "map_50": float(ev.stats[1]), "map_75": float(ev.stats[2])}


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


@TASKS.register("instance")
class InstanceTask(DetectTask):
    """Detection's data path and drawing, Mask R-CNN's model and the COCO segm metric."""

    name = "instance"
    monitor = ("map", "max")
    headline = ("map", "map_50", "box_map")

    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        out = super().defaults(cfg, info)
        sgd = cfg.train.optimizer == "sgd"
        out.update({"model.name": cfg.model.name or DEFAULT_MODEL, "train.epochs": 12, "train.batch_size": 8,
                    "train.lr": 0.02 if sgd else 1e-4, "train.weight_decay": 1e-4 if sgd else 0.05})
        return out

    def loader(self, split, cfg: Config, info: DatasetInfo, train: bool):
        from cnnkit.data.detection import DetectionSplit, detection_loader

        if not isinstance(split, DetectionSplit) or split.masks is None:
            raise CnnkitError(f"Instance segmentation needs objects with masks, and {info.name} has none: use "
                              "--data digits-seg (or digits-detect), or COCO annotations with polygon/RLE segmentations.")
        size = cfg.data.image_size or info.image_size
        side = int(size if isinstance(size, int) else max(size))
        return detection_loader(split, cfg.train.batch_size, train, cfg.train.seed, cfg.data.augment or "none",
                                info.hflip_ok, side, info.channels, masks=True, workers=cfg.data.workers,
                                bad_files=info.bad_files)

    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        import cnnkit.models.segmentation  # noqa: F401  registers maskrcnn
        from cnnkit.models import MODELS, build_model

        name = cfg.model.name or DEFAULT_MODEL
        known = MODELS.list(task="instance")
        if name not in known:
            raise CnnkitError(f'Model "{name}" does not segment instances (model.name).{did_you_mean(name, known)} '
                              f"Use one of {', '.join(known)}.")
        size = cfg.data.image_size or info.image_size
        return build_model(name, num_classes=info.num_classes, in_channels=info.channels, image_size=size,
                           attention=cfg.model.attention, **cfg.model.kwargs)

    def new_metric(self, info: DatasetInfo) -> InstanceMetric:
        return InstanceMetric(info.classes)

    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        if not len(bundle.test):
            return []
        out = Path(run_dir) / "plots"
        out.mkdir(parents=True, exist_ok=True)
        classes = bundle.info.classes
        return [prediction_grid(model, bundle.test, device, out / "instance_predictions_test.png",
                                lambda img, det, i: self._draw(img, det, classes, conf=0.5), count=8)]

    def predict_files(self, model: nn.Module, meta: dict[str, Any], paths, save_dir: Path | None,
                      conf: float = 0.25, iou: float = 0.5, **options: Any) -> list[dict[str, Any]]:
        """Detections with boxes, class, score and the mask as COCO RLE; drawings in save_dir."""
        from cnnkit.data.decode import BadImage, read_image

        pre, classes = meta["preprocess"], meta["classes"]
        cat_ids = pre.get("category_ids") or list(range(1, len(classes) + 1))
        device = next(model.parameters()).device
        if hasattr(model, "set_thresholds"):
            model.set_thresholds(score=min(conf, 0.05), iou=iou)
        model.eval()
        records = []
        for n, path in enumerate(paths, start=1):
            try:
                img = read_image(str(path), pre["channels"])
            except BadImage as e:
                records.append({"file": str(path), "error": e.reason})
                continue
            with torch.no_grad():
                det = model([img.to(device).float() / 255])[0]
            keep = det["scores"] >= conf
            det = {k: v[keep].cpu() for k, v in det.items()}
            rles = encode_masks(binary_masks(det))
            objs = [{"category_id": int(cat_ids[int(lab)]), "category": classes[int(lab)], "score": round(float(s), 4),
                     "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2),
                              round(float(b[3] - b[1]), 2)], "segmentation": rle}
                    for b, lab, s, rle in zip(det["boxes"], det["labels"], det["scores"], rles)]
            rec = {"file": str(path), "image_id": n, "height": int(img.shape[1]), "width": int(img.shape[2]),
                   "instances": objs}
            if save_dir is not None:
                Path(save_dir).mkdir(parents=True, exist_ok=True)
                rec["drawing"] = str(save_png(self._draw(img, det, classes, conf),
                                           Path(save_dir) / f"{n:04d}_{Path(path).stem}_instances.png"))
            records.append(rec)
        return records

    @staticmethod
    def _draw(img: torch.Tensor, det: dict[str, torch.Tensor], classes: list[str], conf: float = 0.3):
        """Masks and boxes in their class's colour, captions "class score" on top.

        Drawn from the lowest score up, so where masks overlap the most confident one shows."""
        det = {k: v.cpu() for k, v in det.items()}
        order = torch.argsort(det["scores"])
        keep = order[det["scores"][order] >= conf]
        labels, scores = det["labels"][keep], det["scores"][keep]
        return draw_detections(img, det["boxes"][keep],
                               [f"{classes[int(lab)]} {float(s):.2f}" for lab, s in zip(labels, scores)],
                               class_colors(labels), masks=binary_masks({"masks": det["masks"][keep]}))
