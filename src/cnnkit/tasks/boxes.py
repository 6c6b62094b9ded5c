"""What the two box tasks (detect, instance) do the same way, as plain functions they compose.

A batch is `(images, targets)` from `cnnkit.data.detection.DetectionLoader`: uint8 images of
any size and per-image {boxes, labels, iscrowd, image_id[, masks]}. `to_device` turns images
into float 0..1 — torchvision-style detectors resize, normalise and pad for themselves and
return boxes in the input's coordinates, so metrics compare them with the untouched ground
truth. The loss is the sum of the detector's loss dict (its parts are logged).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DatasetInfo
from cnnkit.tasks.base import listed


def side(value) -> int:
    """`data.image_size` (an int or [h, w]) -> the longer side."""
    return int(value if isinstance(value, int) else max(value))


def preprocessing(cfg: Config, info: DatasetInfo) -> dict[str, Any]:
    s = side(cfg.data.image_size or info.image_size)
    n = info.num_classes
    # No mean/std: detectors take float 0..1 images of any size and resize/normalise inside.
    return {"size": [s, s], "channels": info.channels, "input": "list of float C x H x W images in 0..1",
            "category_ids": list(info.extra.get("category_ids", range(1, n + 1)))}


def loader(split, cfg: Config, info: DatasetInfo, train: bool, masks: bool):
    from cnnkit.data.detection import detection_loader

    return detection_loader(split, cfg.train.batch_size, train, cfg.train.seed, cfg.data.augment or "none",
                            info.hflip_ok, side(cfg.data.image_size or info.image_size), info.channels,
                            masks=masks, workers=cfg.data.workers, bad_files=info.bad_files)


def to_device(batch, device: torch.device):
    images, targets = batch
    return ([img.to(device, non_blocking=True).float().div_(255) for img in images],
            [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets])


def loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    images, targets = batch
    losses = model(images, targets)
    return sum(losses.values()), {k: float(v.detach()) for k, v in losses.items()}


@torch.no_grad()
def predict(model: nn.Module, batch) -> list[dict[str, torch.Tensor]]:
    return model(batch[0])


def model_input(images: list[torch.Tensor], preprocess: dict[str, Any]) -> torch.Tensor:
    """uint8 images of one size -> float 0..1 N x C x H x W at their own size (the detector resizes)."""
    return torch.stack([img.float() / 255 for img in images])


def predict_one(model: nn.Module, x: torch.Tensor, image: torch.Tensor, conf: float = 0.25, iou: float = 0.5,
                **options: Any) -> dict[str, torch.Tensor]:
    """The detections of one image scoring >= conf, on the CPU; `iou` is the NMS threshold."""
    if hasattr(model, "set_thresholds"):
        model.set_thresholds(score=min(conf, 0.05), iou=iou)
    det = model(list(x))[0]
    keep = det["scores"] >= conf
    return {k: v[keep].cpu() for k, v in det.items()}


def coco_bbox(box: torch.Tensor) -> list[float]:
    """x1, y1, x2, y2 -> COCO's x, y, w, h in pixels (2 decimals)."""
    b = [float(v) for v in box]
    return [round(b[0], 2), round(b[1], 2), round(b[2] - b[0], 2), round(b[3] - b[1], 2)]


def category_ids(meta: dict[str, Any]) -> list[int]:
    return meta["preprocess"].get("category_ids") or list(range(1, len(meta["classes"]) + 1))


def objects_text(objects: list[dict[str, Any]], nouns: tuple[str, str]) -> str:
    """A box record's line in the predict table: "3 boxes: 7 (0.91), 1 (0.88), 4 (0.52)", best score
    first (at most 4 named); `nouns` is (one, several)."""
    if not objects:
        return f"no {nouns[1]}"
    best = sorted(objects, key=lambda o: -(o["score"] if o["score"] == o["score"] else -1.0))  # NaN last
    named = listed([f"{o['category']} ({o['score']:.2f})" for o in best])
    return f"{len(objects)} {nouns[len(objects) > 1]}: {named}"


def size_fields(index: int, image: torch.Tensor) -> dict[str, int]:
    return {"image_id": index, "height": int(image.shape[1]), "width": int(image.shape[2])}


@torch.no_grad()
def legible_predictions(model: nn.Module, split, device: torch.device, count: int
                        ) -> Iterator[tuple[int, torch.Tensor, dict[str, torch.Tensor]]]:
    """(index, uint8 image, detections on the CPU) for the first `count` readable images of a split.

    For legibility the detections keep, among those overlapping by IoU > 0.5, only the
    highest-scoring one whatever its class (the metrics see them all)."""
    from torchvision.ops import nms

    from cnnkit.data.decode import BadImage

    model.eval()
    for i in range(min(count, len(split))):
        try:
            img = split.image(i)
        except BadImage:
            continue
        det = model([img.to(device).float() / 255])[0]
        keep = nms(det["boxes"], det["scores"], 0.5)
        yield i, img, {k: v[keep].cpu() for k, v in det.items()}
