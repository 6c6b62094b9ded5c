"""Instance segmentation: a mask per detected object (torchvision Mask R-CNN), COCO segm mAP.

Data is detection data whose objects carry masks (`digits-seg`, `digits-detect`, COCO with
polygons or RLE): the box helpers (`cnnkit.tasks.boxes`) load it with `masks=True`, so boxes,
labels and masks move together through the same box-aware transforms.v2 augmentation, and
images reach the model as float 0..1 (the detector resizes and normalises for itself).
The metric is `instance_metrics.InstanceMetric` (pycocotools segm and bbox). `cnnkit predict
--json` writes each object's mask as COCO RLE (counts as text) next to its box.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.tasks import TASKS, boxes
from cnnkit.tasks.base import Drawing, Task
from cnnkit.tasks.instance_metrics import InstanceMetric, binary_masks, encode_masks

DEFAULT_MODEL = "maskrcnn"


def _with_binary_masks(det: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**det, "masks": binary_masks(det)}


@TASKS.register("instance")
class InstanceTask(Task):
    """The box helpers' data path and steps, Mask R-CNN's model and the COCO segm metric."""

    name = "instance"
    output, target = "boxes", "boxes"
    monitor = ("map", "max")
    headline = ("map", "map_50", "box_map")

    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        sgd = cfg.train.optimizer == "sgd"
        return {"model.name": cfg.model.name or DEFAULT_MODEL, "data.image_size": boxes.side(info.image_size),
                "data.augment": "light", "train.epochs": 12, "train.batch_size": 8,
                "train.lr": 0.02 if sgd else 1e-4, "train.weight_decay": 1e-4 if sgd else 0.05}

    preprocessing = staticmethod(boxes.preprocessing)

    # -- data and steps ---------------------------------------------------------------
    def loader(self, split, cfg: Config, info: DatasetInfo, train: bool):
        from cnnkit.data.detection import DetectionSplit

        if not isinstance(split, DetectionSplit) or split.masks is None:
            raise CnnkitError(f"Instance segmentation needs objects with masks, and {info.name} has none: use "
                              "--data digits-seg (or digits-detect), or COCO annotations with polygon/RLE "
                              "segmentations.")
        return boxes.loader(split, cfg, info, train, masks=True)

    to_device = staticmethod(boxes.to_device)
    model_input = staticmethod(boxes.model_input)
    loss = staticmethod(boxes.loss)
    predict = staticmethod(boxes.predict)

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

    # -- one input: boxes, class, score and the mask as COCO RLE -----------------------
    predict_one = staticmethod(boxes.predict_one)

    def record(self, det: dict[str, torch.Tensor], image: torch.Tensor, meta: dict[str, Any], index: int,
               **options: Any) -> dict[str, Any]:
        classes, cat_ids = meta["classes"], boxes.category_ids(meta)
        rles = encode_masks(binary_masks(det))
        objs = [{"category_id": int(cat_ids[int(lab)]), "category": classes[int(lab)], "score": round(float(s), 4),
                 "bbox": boxes.coco_bbox(b), "segmentation": rle}
                for b, lab, s, rle in zip(det["boxes"], det["labels"], det["scores"], rles)]
        return {**boxes.size_fields(index, image), "instances": objs}

    def describe(self, record: dict[str, Any], **options: Any) -> str:
        return boxes.objects_text(record["instances"], ("object", "objects"))

    def draw(self, image: torch.Tensor, det: dict[str, torch.Tensor], meta: dict[str, Any], name: str,
             conf: float = 0.25, **options: Any) -> list[Drawing]:
        from cnnkit.report.draw import draw_instances

        return [Drawing(draw_instances(image, _with_binary_masks(det), meta["classes"], conf), suffix="_instances")]

    # -- outputs ----------------------------------------------------------------------
    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        """Test canvases: objects scoring >= 0.5, the best of overlapping ones (see `boxes.legible_predictions`)."""
        from cnnkit.report.draw import draw_instances, tile_grid

        if not len(bundle.test):
            return []
        classes = bundle.info.classes
        with torch.no_grad():
            tiles = [draw_instances(img, _with_binary_masks(det), classes, conf=0.5)
                     for _, img, det in boxes.legible_predictions(model, bundle.test, device, 8)]
        return [tile_grid(tiles, Path(run_dir) / "plots" / "instance_predictions_test.png")]
