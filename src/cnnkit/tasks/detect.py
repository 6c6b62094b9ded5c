"""Object detection: the model's own loss dict, COCO mAP, box drawings.

The engine sees only this `Task` (DESIGN rule 1). A batch is `(images, targets)` from
`cnnkit.data.detection.DetectionLoader`: uint8 images of any size and per-image
{boxes, labels, iscrowd, image_id}. `to_device` turns images into float 0..1 — the
detectors (`cnnkit.models.detection`) resize, normalise and pad for themselves and
return boxes in the input's coordinates, so the metric compares them with the
untouched ground truth. Loss = the sum of the detector's loss dict (its parts are logged).
Metrics are pycocotools' (`detection_metrics`); `map` picks the best checkpoint.

Defaults (`cnnkit train --data digits-detect`): `tinydet`, SGD + one-cycle, light
box-aware augmentation; sized to pass test mAP@.5 >= 0.90 and mAP@[.5:.95] >= 0.60
within 15 minutes on 2 CPU cores (see README for the measured run).
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.decode import BadImage, read_image
from cnnkit.data.detection import detection_loader
from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.tasks import TASKS
from cnnkit.tasks.base import Task
from cnnkit.tasks.detection_metrics import DetectionMetric

DEFAULT_MODEL = "tinydet"
GT_COLOR, PRED_COLOR = "lime", "red"


def _side(value) -> int:
    return int(value if isinstance(value, int) else max(value))


def _detectors() -> list[str]:
    from cnnkit.models import MODELS
    from cnnkit.models import detection as _registers_detectors  # noqa: F401

    return MODELS.list(task="detect")


@TASKS.register("detect")
class DetectTask(Task):
    name = "detect"
    monitor = ("map", "max")
    headline = ("map", "map_50")

    # -- configuration ----------------------------------------------------------------
    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        model = cfg.model.name or DEFAULT_MODEL
        own = model == DEFAULT_MODEL
        n_train = int(info.extra.get("n_train", 2000))
        sgd = cfg.train.optimizer == "sgd"
        # tinydet on digits-detect, measured end to end on a 2-core machine shared with other jobs:
        # 20 epochs 7.7 min (load 1.6-4.4), test mAP 0.82 / mAP@.5 0.97; 24 epochs were no better
        # and took 14.3 min at load 4-7, too close to the 15-minute promise. Batch 8 costs ~15 % more
        # per image than 32 on a CPU but gives 4x the steps, which a short schedule needs.
        epochs = 20 if own else max(12, min(50, 40_000 // max(1, n_train)))
        return {
            "model.name": model,
            "data.image_size": _side(info.image_size),
            "data.augment": "light",
            "train.epochs": epochs,
            "train.batch_size": 8,
            "train.lr": 0.02 if sgd else (1e-3 if own else 1e-4),
            "train.weight_decay": 5e-4 if sgd else 0.05,
        }

    def preprocessing(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        s = _side(cfg.data.image_size or info.image_size)
        n = info.num_classes
        # No mean/std: detectors take float 0..1 images of any size and resize/normalise inside.
        return {"size": [s, s], "channels": info.channels, "input": "list of float C x H x W images in 0..1",
                "category_ids": list(info.extra.get("category_ids", range(1, n + 1)))}

    # -- data -------------------------------------------------------------------------
    def loader(self, split, cfg: Config, info: DatasetInfo, train: bool):
        return detection_loader(split, cfg.train.batch_size, train, cfg.train.seed, cfg.data.augment or "none",
                                info.hflip_ok, _side(cfg.data.image_size or info.image_size), info.channels,
                                masks=False, workers=cfg.data.workers, bad_files=info.bad_files)

    def to_device(self, batch, device: torch.device):
        images, targets = batch
        return ([img.to(device, non_blocking=True).float().div_(255) for img in images],
                [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets])

    def batch_size_of(self, batch) -> int:
        return len(batch[0])

    # -- model and steps --------------------------------------------------------------
    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        from cnnkit.models import MODELS

        name = cfg.model.name or DEFAULT_MODEL
        known = _detectors()
        if name not in known:
            raise CnnkitError(f'Model "{name}" is not a detector.{did_you_mean(name, known)} '
                              f"Detectors: {', '.join(known)}.")
        builder = MODELS.get(name)
        kwargs = dict(cfg.model.kwargs)
        params = inspect.signature(builder).parameters
        if cfg.model.attention and cfg.model.attention != "none":
            if "attention" not in params:
                raise CnnkitError(f'Detector "{name}" has no attention option; use fcos, retinanet, fasterrcnn '
                                  "or ssdlite (their backbones take it) or set model.attention to none.")
            kwargs["attention"] = cfg.model.attention
        options = [p for p in params if p not in ("num_classes", "in_channels", "image_size")]
        for key in kwargs:
            if key not in options:
                raise CnnkitError(f'Detector "{name}" has no option "{key}" (model.kwargs).'
                                  f"{did_you_mean(key, options)} Its options: {', '.join(options)}.")
        return builder(num_classes=info.num_classes, in_channels=info.channels,
                       image_size=_side(cfg.data.image_size or info.image_size), **kwargs)

    def loss(self, model: nn.Module, batch):
        images, targets = batch
        losses = model(images, targets)
        return sum(losses.values()), {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch):
        return model(batch[0])

    def new_metric(self, info: DatasetInfo) -> DetectionMetric:
        return DetectionMetric(info.classes)

    # -- outputs ----------------------------------------------------------------------
    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        out = Path(run_dir) / "plots"
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        classes = bundle.info.classes
        for split_name in ("val", "test"):
            split = bundle.split(split_name)
            if len(split):
                paths.append(prediction_grid(model, split, device, out / f"predictions_{split_name}.png",
                                             partial(_truth_and_predictions, split=split, classes=classes)))
        if test_metrics.get("per_class_ap"):
            paths.append(_ap_bars(test_metrics["per_class_ap"], test_metrics.get("map"), out / "per_class_ap.png"))
        return paths

    def predict_files(self, model: nn.Module, meta: dict[str, Any], paths: Iterable[str], save_dir: Path | None,
                      conf: float = 0.25, iou: float = 0.5, **options: Any) -> list[dict[str, Any]]:
        """Boxes per file: COCO-results entries (bbox = x, y, w, h in pixels) plus drawings in save_dir."""
        pre, classes = meta["preprocess"], meta["classes"]
        cat_ids = pre.get("category_ids") or list(range(1, len(classes) + 1))
        device = next(model.parameters()).device
        if hasattr(model, "set_thresholds"):
            model.set_thresholds(score=min(conf, 0.05), iou=iou)
        model.eval()
        records, flat = [], []
        if save_dir is not None:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
        for n, path in enumerate(paths, start=1):
            try:
                img = read_image(str(path), pre["channels"])
            except BadImage as e:
                records.append({"file": str(path), "error": e.reason})
                continue
            with torch.no_grad():
                det = model([img.to(device).float() / 255])[0]
            keep = det["scores"] >= conf
            boxes, labels, scores = det["boxes"][keep].cpu(), det["labels"][keep].cpu(), det["scores"][keep].cpu()
            dets = [{"image_id": n, "category_id": int(cat_ids[int(lab)]), "category": classes[int(lab)],
                     "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2),
                              round(float(b[3] - b[1]), 2)], "score": round(float(s), 4)}
                    for b, lab, s in zip(boxes, labels, scores)]
            flat += [{k: d[k] for k in ("image_id", "category_id", "bbox", "score")} for d in dets]
            record = {"file": str(path), "image_id": n, "height": int(img.shape[1]), "width": int(img.shape[2]),
                      "detections": dets}
            if save_dir is not None:
                drawn = draw_detections(img, boxes, [f"{classes[int(lab)]} {float(s):.2f}"
                                                     for lab, s in zip(labels, scores)], PRED_COLOR)
                record["drawing"] = str(save_png(drawn, Path(save_dir) / f"{n:04d}_{Path(path).stem}.png"))
            records.append(record)
        if save_dir is not None:
            (Path(save_dir) / "detections.json").write_text(json.dumps(flat))
        return records


# ---- drawing ---------------------------------------------------------------------------
def _upscale(img: torch.Tensor, min_side: int = 288) -> tuple[torch.Tensor, int]:
    """Small images are enlarged by an integer factor (nearest) so labels stay legible."""
    f = max(1, -(-min_side // min(img.shape[-2:])))
    img = img.repeat_interleave(f, -2).repeat_interleave(f, -1) if f > 1 else img
    return (img.expand(3, -1, -1) if img.shape[0] == 1 else img[:3]).contiguous(), f


def _font() -> str | None:
    """matplotlib's bundled DejaVu Sans: a scalable font that is always there (PIL's default is tiny)."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except Exception:  # noqa: BLE001 - drawing without a font only loses the label size
        return None


def class_colors(labels: torch.Tensor | list[int]) -> list[tuple[int, int, int]]:
    """A saturated colour per class index: matplotlib's tab10 (tab20 past ten classes).

    tab10's gray goes last: on gray-scale images it would vanish."""
    from matplotlib import colormaps

    labels = [int(c) for c in labels]
    many = max(labels, default=0) >= 10
    cmap = colormaps["tab20" if many else "tab10"]
    order = list(range(20)) if many else [0, 1, 2, 3, 4, 5, 6, 8, 9, 7]
    return [tuple(int(255 * v) for v in cmap(order[c % len(order)])[:3]) for c in labels]


def draw_detections(img: torch.Tensor, boxes: torch.Tensor, captions: list[str], color,
                    extra: tuple[torch.Tensor, str] | None = None,
                    masks: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 3 x H' x W' image with `boxes` (and optionally `extra` = (boxes, color)) drawn.

    `color` is one colour or one per box; `masks` (bool N x H x W, one per box) are painted
    under the boxes in the boxes' colours. Captions sit on a filled tag so they stay legible
    over any background."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    canvas, f = _upscale(img)
    colors = color if isinstance(color, list) else [color] * len(boxes)
    if masks is not None and len(masks):
        big = masks.bool().repeat_interleave(f, -2).repeat_interleave(f, -1)
        canvas = draw_segmentation_masks(canvas, big, alpha=0.5, colors=colors)
    if extra is not None and len(extra[0]):
        canvas = draw_bounding_boxes(canvas, extra[0].float() * f, colors=extra[1], width=1)
    if len(boxes):
        font = _font()
        size = {"font": font, "font_size": max(11, min(canvas.shape[-2:]) // 24)} if font else {}
        canvas = draw_bounding_boxes(canvas, boxes.float() * f, labels=captions, colors=colors, width=2,
                                     fill_labels=True, label_colors="white", **size)
    return canvas


def _truth_and_predictions(img: torch.Tensor, det: dict[str, torch.Tensor], i: int, split, classes: list[str],
                           conf: float = 0.5) -> torch.Tensor:
    """Ground truth (thin green) and predictions scoring >= conf with class and score (red)."""
    keep = det["scores"] >= conf
    caps = [f"{classes[int(lab)]} {float(s):.2f}" for lab, s in zip(det["labels"][keep], det["scores"][keep])]
    return draw_detections(img, det["boxes"][keep], caps, PRED_COLOR, (split.boxes[i], GT_COLOR))


def save_png(img: torch.Tensor, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
    return path


@torch.no_grad()
def prediction_grid(model: nn.Module, split, device: torch.device, path: Path, draw, count: int = 12) -> Path:
    """`draw(image, detections, index)` -> tile for the first `count` images of `split`, saved as a grid.

    For legibility the detections handed to `draw` keep, among those overlapping by IoU > 0.5,
    only the highest-scoring one whatever its class (the metrics see them all)."""
    from torchvision.ops import nms
    from torchvision.utils import make_grid

    model.eval()
    tiles = []
    for i in range(min(count, len(split))):
        try:
            img = split.image(i)
        except BadImage:
            continue
        det = model([img.to(device).float() / 255])[0]
        keep = nms(det["boxes"], det["scores"], 0.5)
        tile = draw(img, {k: v[keep].cpu() for k, v in det.items()}, i)
        if tile.shape[-2:] != (288, 288):  # make_grid needs equal tiles
            tile = torch.nn.functional.interpolate(tile[None].float(), size=(288, 288))[0].to(torch.uint8)
        tiles.append(tile)
    grid = make_grid(tiles, nrow=4, padding=4, pad_value=255) if tiles else torch.zeros((3, 8, 8), dtype=torch.uint8)
    return save_png(grid, path)


def _ap_bars(per_class: dict[str, float], mean_ap: float | None, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_class)
    values = [max(0.0, per_class[n]) for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(names) + 1.5), 3.2))
    ax.bar(range(len(names)), values, color="tab:blue")
    if mean_ap is not None and mean_ap >= 0:
        ax.axhline(mean_ap, color="tab:red", linestyle="--", label=f"mAP {mean_ap:.3f}")
        ax.legend(loc="lower right")
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 12 else 0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AP@[.5:.95]")
    ax.set_title("Per-class AP (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
