"""Semantic segmentation: a class per pixel; losses CE / Dice / focal / CE+Dice; mIoU, Dice, pixel accuracy.

The model is any registered segmenter (`unet`, `fcn`, `deeplabv3`) returning logits
N x C x H x W at the input size. The batch is (normalised images, int64 masks) from
`cnnkit.data.segmentation.SegLoader`; mask value 255 is ignored by every loss and metric.

Losses (`--set model.kwargs.loss=...`):
- `ce`: cross-entropy with ignore_index=255 (the default);
- `dice`: soft multi-class Dice on softmax probabilities, averaged over all classes with a
  +1 smoothing term, so a class absent from the batch costs nothing unless it is predicted;
- `focal`: softmax focal loss (Lin et al. 2017), (1 - p_t)^gamma * CE. torchvision only ships
  the sigmoid (binary) form, hence the few lines here; gamma from `model.kwargs.focal_gamma`;
- `ce+dice`: their sum (parts logged separately).
`model.kwargs.train_crop=N` trains on random N x N windows of the (augmented) images while
validation and test see them whole; the U-Net default crops 5/6 of the side (see `defaults`).
`data.class_weights=auto` weights classes by median-frequency balancing (Eigen & Fergus 2015)
of the training pixels: w_c = median(f) / f_c, so the mean class keeps weight 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.segmentation import IGNORE_INDEX, SegFileSplit, SegLoader, SegSplit, pixel_counts
from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.tasks import TASKS
from cnnkit.tasks.base import Drawing, Task, image_side, listed
from cnnkit.tasks.segmentation_metrics import SegmentationMetric

LOSSES = ("ce", "dice", "focal", "ce+dice")
TASK_KWARGS = ("loss", "focal_gamma", "train_crop")  # model.kwargs read by the task, not passed to the model builder
DEFAULT_MODEL = "unet"


def dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
              ignore_index: int = IGNORE_INDEX, smooth: float = 1.0) -> torch.Tensor:
    k = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    prob = logits.float().softmax(1) * valid
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0).clamp(0, k - 1), k).permute(0, 3, 1, 2) * valid
    inter = (prob * onehot).sum((0, 2, 3))
    card = (prob + onehot).sum((0, 2, 3))
    per_class = 1 - (2 * inter + smooth) / (card + smooth)
    if weight is None:
        return per_class.mean()
    return (per_class * weight).sum() / weight.sum()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
               gamma: float = 2.0, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    ce = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    pt = torch.exp(-ce)  # probability of the true class, from the unweighted CE
    valid = target != ignore_index
    w = torch.ones_like(ce) if weight is None else weight[torch.where(valid, target, 0)]
    # Normalised by the summed weights of the counted pixels, as F.cross_entropy(weight=...) is.
    return ((1 - pt) ** gamma * ce * w)[valid].sum() / w[valid].sum().clamp(min=1e-12)


@TASKS.register("segment")
class SegmentTask(Task):
    name = "segment"
    output, target = "pixel_logits", "mask"
    monitor = ("miou", "max")
    headline = ("miou", "pixel_accuracy")

    def __init__(self):
        self.class_weights: torch.Tensor | None = None
        self.loss_name, self.focal_gamma = "ce", 2.0

    # -- configuration ----------------------------------------------------------------
    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        native = max(image_side(info.image_size))
        side = native if native <= 256 else 256
        n_train = int(info.extra.get("n_train", 1000))
        own = (cfg.model.name or DEFAULT_MODEL) == DEFAULT_MODEL
        # Before: concat U-Net, full 96 px images, 24 epochs. On digits-seg 16 epochs gave test mIoU
        # 0.861 / 0.847 (seeds 0 / 1), 24 gave 0.872 / 0.868. Measured levers (step time on one thread,
        # same loader, interleaved A/B; val mIoU of full runs): batched augmentation instead of per-sample
        # v2, 0.91x; LinkNet add + one conv per decoder step, 0.66x; 80 px training crops of the 96 px
        # canvases (eval stays at full size), a further 0.68x; 64 px crops, 0.53x, but val mIoU 0.916
        # against 0.922 at 24 epochs. Add + 1 conv + 80 px crops for 26 epochs: val 0.923, 0.45x the time
        # per image (interleaved A/B); whole runs on a quiet core, same day: 593 s vs ~1,106 s (0.54x).
        # channels_last (NHWC weights and activations, oneDNN): 0.86x the training step of the U-Net
        # (157.7 vs 183.3 ms per batch of 16 at 80 px, interleaved A/B, one thread); the whole run: see
        # the README's results table.
        fast = {"model.kwargs.fuse": "add", "model.kwargs.decoder_convs": 1,
                "model.kwargs.train_crop": side * 5 // 6} if own else {}
        return {
            "model.name": DEFAULT_MODEL,
            "model.kwargs.loss": "ce+dice",
            **fast,
            "data.image_size": side,
            "data.augment": "light",
            "train.epochs": (26 if own else 24) if n_train <= 2000 else 12,
            "train.batch_size": 16,
            "train.channels_last": True,
            "train.lr": 0.05 if cfg.train.optimizer == "sgd" else 2e-3,
            "train.weight_decay": 1e-4 if cfg.train.optimizer == "sgd" else 0.01,
        }

    def setup(self, cfg: Config, info: DatasetInfo) -> None:
        if info.task == "detect":
            # Detection data with instance masks (COCO polygons/RLE) trains as class masks: "background"
            # joins the classes here, once, so model, metric and checkpoint all see the same list.
            info.classes, info.task = ["background", *info.classes], "segment"
            info.extra["from_instances"] = True
        super().setup(cfg, info)
        self.loss_name = str(cfg.model.kwargs.get("loss") or "ce").lower()
        if self.loss_name not in LOSSES:
            raise CnnkitError(f'Unknown segmentation loss "{self.loss_name}" (model.kwargs.loss).'
                              f"{did_you_mean(self.loss_name, LOSSES)} Use one of {', '.join(LOSSES)}.")
        self.focal_gamma = float(cfg.model.kwargs.get("focal_gamma", 2.0))
        crop = cfg.model.kwargs.get("train_crop")
        if crop is not None and (not isinstance(crop, int) or isinstance(crop, bool) or crop < 1):
            raise CnnkitError(f"model.kwargs.train_crop must be a positive side in pixels, got {crop!r}.")
        if cfg.data.class_weights not in (None, "none", "auto"):
            raise CnnkitError(f'data.class_weights must be "none" or "auto", got "{cfg.data.class_weights}".')

    def preprocessing(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        c = info.channels
        return {"size": image_side(cfg.data.image_size or info.image_size), "channels": c,
                "mean": list(info.extra.get("mean", [0.5] * c)), "std": list(info.extra.get("std", [0.25] * c)),
                "ignore_index": IGNORE_INDEX}

    # -- data -------------------------------------------------------------------------
    def loader(self, split, cfg: Config, info: DatasetInfo, train: bool) -> SegLoader:
        if not isinstance(split, (SegSplit, SegFileSplit)) and getattr(split, "masks", None) is None:
            raise CnnkitError(f"{info.name} has no masks to segment: use mask PNGs, VOC SegmentationClass, "
                              "COCO polygons/RLE or --data digits-seg.")
        if train and cfg.data.class_weights == "auto":
            self.class_weights = median_frequency_weights(pixel_counts(split, info.num_classes))
        return SegLoader(split, self.preprocessing(cfg, info), cfg.train.batch_size, train, cfg.train.seed,
                         cfg.data.augment or "none", info.hflip_ok, cfg.data.workers, info.num_classes,
                         crop=cfg.model.kwargs.get("train_crop") if train else None)

    # -- model and steps --------------------------------------------------------------
    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        import cnnkit.models.segmentation  # noqa: F401  registers unet / fcn / deeplabv3
        from cnnkit.models import MODELS

        name = cfg.model.name
        if name in MODELS and "segment" not in MODELS.meta(name).get("tasks", ()):
            choices = ", ".join(MODELS.list(task="segment"))
            raise CnnkitError(f'Model "{name}" does not segment images (model.name); use one of {choices}.')
        return super().build_model(cfg, info)

    def model_kwargs(self, cfg: Config) -> dict[str, Any]:
        return {k: v for k, v in cfg.model.kwargs.items() if k not in TASK_KWARGS}

    def loss(self, model: nn.Module, batch):
        x, y = batch
        logits = model(x).float()
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        if self.loss_name == "ce":
            return F.cross_entropy(logits, y, weight=w, ignore_index=IGNORE_INDEX), {}
        if self.loss_name == "dice":
            return dice_loss(logits, y, w), {}
        if self.loss_name == "focal":
            return focal_loss(logits, y, w, self.focal_gamma), {}
        ce = F.cross_entropy(logits, y, weight=w, ignore_index=IGNORE_INDEX)
        dice = dice_loss(logits, y, w)
        return ce + dice, {"ce": float(ce.detach()), "dice": float(dice.detach())}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch):
        return model(batch[0]).argmax(1)

    def new_metric(self, info: DatasetInfo) -> SegmentationMetric:
        return SegmentationMetric(info.classes)

    # -- one input: a class mask at the image's size -----------------------------------
    def predict_one(self, model: nn.Module, x: torch.Tensor, image: torch.Tensor, **options) -> torch.Tensor:
        """uint8 H x W class indices at the input image's size, on the CPU."""
        logits = model(x).float()
        # Upsample logits, not labels, so the mask follows the original outline smoothly.
        mask = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return mask.argmax(1)[0].to(torch.uint8).cpu()

    def record(self, mask: torch.Tensor, image: torch.Tensor, meta: dict[str, Any], index: int,
               **options) -> dict[str, Any]:
        classes = list(meta["classes"])
        counts = torch.bincount(mask.flatten().long(), minlength=len(classes))
        return {"height": int(mask.shape[0]), "width": int(mask.shape[1]),
                "pixels": {c: int(n) for c, n in zip(classes, counts)},
                "classes_present": [c for c, n in zip(classes, counts) if n > 0]}

    def describe(self, record: dict[str, Any], **options: Any) -> str:
        """"background 91.2%, 3 5.1%, 7 3.7%": the classes present and their share of the image's pixels,
        largest first (the counts, and the masks with --save-dir, are in the record)."""
        total = max(1, record["height"] * record["width"])
        present = sorted(((c, n) for c, n in record["pixels"].items() if n), key=lambda cn: -cn[1])
        return listed([f"{c} {100 * n / total:.1f}%" for c, n in present])

    def draw(self, image: torch.Tensor, mask: torch.Tensor, meta: dict[str, Any], name: str,
             **options) -> list[Drawing]:
        """The mask as a palette PNG (values = class indices) and the image with the classes painted on."""
        from cnnkit.report.draw import mask_overlay

        return [Drawing(mask, key="mask_png", suffix="_mask"),
                Drawing(mask_overlay(image, mask, len(meta["classes"])), key="overlay_png", suffix="_overlay")]

    # -- outputs ----------------------------------------------------------------------
    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        from cnnkit.report.charts import iou_bars
        from cnnkit.report.plots import plot_confusion

        out = run_dir / "plots"
        paths = []
        if test_metrics.get("per_class_iou"):
            paths.append(iou_bars(test_metrics["per_class_iou"], out / "per_class_iou.png", test_metrics.get("miou")))
        if test_metrics.get("confusion_matrix"):  # which classes the pixels are mistaken for
            paths.append(plot_confusion(test_metrics["confusion_matrix"], bundle.info.classes,
                                        out / "confusion_matrix.png", cells="share",
                                        title="Test pixels: share of each true class (row) per predicted class"))
        for key in ("val", "test"):
            split = bundle.split(key)
            if len(split):
                path = self._grid(model, split, bundle.info, device, out / f"predictions_{key}.png",
                                  title=f"{key}: image / truth / prediction")
                paths += [path] if path else []
        return paths

    def _grid(self, model: nn.Module, split, info: DatasetInfo, device: torch.device, path: Path, n: int = 6,
              title: str = "") -> Path | None:
        """Image / ground truth / prediction rows for the first `n` readable samples of a split."""
        from cnnkit.data.transforms import to_model_input
        from cnnkit.report.draw import segmentation_grid

        preprocess = self.preprocessing(self.cfg, info)
        loader = SegLoader(split, preprocess, batch_size=n, train=False, seed=0)
        samples = [loader.dataset[i] for i in range(min(n, len(split)))]
        images, masks = [img for img, _, bad in samples if bad is None], [m for _, m, bad in samples if bad is None]
        if not images:
            return None
        model.eval()
        with torch.no_grad():
            preds = model(to_model_input(torch.stack(images), preprocess).to(device)).argmax(1).cpu()
        return segmentation_grid(images, masks, preds, info.classes, path, title)


def median_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """w_c = median(f) / f_c over classes that occur; absent classes get weight 1 (they never appear)."""
    counts = counts.double()
    seen = counts > 0
    if not seen.any():
        return torch.ones(len(counts))
    freq = counts / counts.sum()
    w = torch.ones_like(freq)
    w[seen] = freq[seen].median() / freq[seen]
    return w.float()
