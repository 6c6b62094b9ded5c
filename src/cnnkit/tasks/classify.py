"""Image classification: cross-entropy on logits; accuracy, top-5 (with more than 5 classes), macro-F1,
confusion matrix.

Metrics come from torchmetrics (DESIGN rule 7). The model is any registered classifier
(or a layer-list spec) returning N x num_classes logits.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import (MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score,
                                         MulticlassPrecision, MulticlassRecall)

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.loader import classification_loader
from cnnkit.data.transforms import to_model_input
from cnnkit.errors import CnnkitError
from cnnkit.tasks import TASKS
from cnnkit.tasks.base import Drawing, Task, image_side


TOP_K = 5  # the "top5" metric's k


def label_text(record: dict[str, Any], top_k: int = 1) -> str:
    """A classification record's line in the predict table: "8 (0.905)", the top class and its score, or
    with `top_k` > 1 that many of the record's "top" classes: "8 (0.905), 3 (0.061), 5 (0.012)"."""
    shown = record.get("top", [])[:top_k] if top_k > 1 else []
    return ", ".join(f"{t['label']} ({t['score']:.3f})" for t in shown or [record])


class ClassificationMetric:
    """accuracy, top5, macro_f1, loss, per-class precision/recall/F1 and the confusion matrix; `top5`
    only with more than TOP_K classes: with fewer every label is among the top 5, so it is 1.0 by
    definition and says nothing. Its absence here keeps it out of every log, table, file and plot."""

    def __init__(self, classes: list[str]):
        k = len(classes)
        self.classes = classes
        # Under torchrun only rank 0 evaluates (the val/test splits are not sharded): torchmetrics must
        # not wait for the other ranks' states, or compute() blocks forever in its all-gather.
        local = {"sync_on_compute": False}
        self.acc = MulticlassAccuracy(k, average="micro", **local)
        self.top5 = MulticlassAccuracy(k, top_k=TOP_K, average="micro", **local) if k > TOP_K else None
        self.f1 = MulticlassF1Score(k, average="macro", **local)
        self.per_p = MulticlassPrecision(k, average=None, **local)
        self.per_r = MulticlassRecall(k, average=None, **local)
        self.per_f1 = MulticlassF1Score(k, average=None, **local)
        self.cm = MulticlassConfusionMatrix(k, **local)
        self.loss_sum, self.n = 0.0, 0

    def update(self, logits: torch.Tensor, batch) -> None:
        logits, target = logits.float().cpu(), batch[1].cpu()
        self.loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        self.n += len(target)
        for m in (self.acc, self.top5, self.f1, self.per_p, self.per_r, self.per_f1, self.cm):
            if m is not None:
                m.update(logits, target)

    def compute(self) -> dict[str, Any]:
        top5 = {} if self.top5 is None else {"top5": float(self.top5.compute()) if self.n else float("nan")}
        if self.n == 0:
            return {"accuracy": float("nan"), **top5, "macro_f1": float("nan"), "loss": float("nan")}
        per_class = {
            name: {"precision": float(p), "recall": float(r), "f1": float(f)}
            for name, p, r, f in zip(self.classes, self.per_p.compute(), self.per_r.compute(), self.per_f1.compute())
        }
        return {
            "accuracy": float(self.acc.compute()),
            **top5,
            "macro_f1": float(self.f1.compute()),
            "loss": self.loss_sum / self.n,
            "per_class": per_class,
            "confusion_matrix": self.cm.compute().tolist(),
        }


# Images of training the `smallcnn` default is given: the epochs are this over the training images
# (at least 2, at most SMALLCNN_MAX_EPOCHS: an explicit --model smallcnn on a 42-image folder would
# otherwise get 3,857 epochs, on digits 129; 40 is what small sets get with LeNet-5). Measured on
# Fashion-MNIST (54,000 train images, 1 thread of a 2 GHz AVX2 core):
# 3 epochs = 145 s of training to val accuracy 0.921, test 0.918 (2 epochs of the wider (32, 64)
# net: val 0.914, test 0.9147 in 152 s, short of the 91.5 % bar). See README "Results".
SMALLCNN_IMAGES = 162_000
SMALLCNN_MAX_EPOCHS = 40


def default_model(native: int, n_train: int) -> str:
    """The classifier picked when none is given, from the training set's size and the images' side (px).

    Few images (< 5,000, e.g. digits' 1,258): LeNet-5 at 32x32, which 40 epochs fit in seconds.
    Many small images (side <= 32 px, e.g. Fashion-MNIST): `smallcnn`, the best accuracy per FLOP
    measured at that size (models/smallcnn.py). Larger images: LeNet-5 at their own size, as before.
    """
    if n_train >= 5_000 and native <= 32:
        return "smallcnn"
    return "lenet5"


def smallcnn_defaults(cfg: Config, n_train: int, native: int) -> dict[str, Any]:
    """The time-to-accuracy recipe for `smallcnn` (issue 14); each value measured on Fashion-MNIST's val split."""
    sgd = cfg.train.optimizer == "sgd"
    return {
        "model.name": "smallcnn",
        "data.image_size": native,  # native size: upscaling 28 -> 32 would cost 1.3x the pixels
        "data.augment": "none",  # translations and flips need 10+ epochs to pay off (see above)
        "train.epochs": cfg.train.epochs or min(SMALLCNN_MAX_EPOCHS, max(2, round(SMALLCNN_IMAGES / max(1, n_train)))),
        # Batch 64 vs 128 vs 32 (1 epoch, widths 32-64): val 0.905 / 0.899 / 0.904, and batch 64 ran
        # more images per second on one CPU thread than 128 or 256 (819 / 707 / 754 img/s).
        "train.batch_size": 64,
        "train.lr": 0.1 if sgd else 2e-3,  # lr 0.05 and 0.1 tied after 1 epoch (val 0.905)
        "train.label_smoothing": 0.1,  # 1 epoch: val 0.905 with 0.1, 0.900 without
        "train.weight_decay": 5e-4 if sgd else 0.05,
        "train.channels_last": True,  # 1.2-1.3x faster convs on a CPU (oneDNN), same accuracy
    }


@TASKS.register("classify")
class ClassifyTask(Task):
    name = "classify"
    output, target = "logits", "label"
    monitor = ("accuracy", "max")
    headline = ("accuracy", "macro_f1")
    honours = ("data.augment_start_epoch", "model.flip_tta", "data.mixup", "data.cutmix", "data.random_erasing")

    def __init__(self):
        self.class_weights: torch.Tensor | None = None

    # -- configuration ----------------------------------------------------------------
    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        native = max(image_side(info.image_size))
        n_train = int(info.extra.get("n_train", 10_000))
        model = cfg.model.name or default_model(native, n_train)
        if model == "smallcnn":  # its own recipe, also when the user sets its widths or hidden units
            return smallcnn_defaults(cfg, n_train, native)
        size = 32 if model.startswith("lenet") or native < 16 else native
        small = n_train < 5_000
        epochs = cfg.train.epochs or (40 if small else 10)
        return {
            "model.name": model,
            "data.image_size": size,
            # Augmentation pays off only when there are epochs to fit the harder problem. Measured:
            # ResNet-20 on Fashion-MNIST, 3 epochs: val accuracy after epoch 2 was 0.849 with "light"
            # against 0.890 without (test after 3: 0.8998 with "light").
            "data.augment": "light" if epochs >= 10 else "none",
            # Measured on digits (LeNet-5, 3 seeds): 40 epochs of batch 32 with label smoothing 0.1
            # gave test accuracy 0.986-0.994; 30 epochs of batch 64 without smoothing 0.978-0.986.
            "train.epochs": epochs,
            "train.batch_size": 32 if small else 128,
            "train.label_smoothing": 0.1 if small else 0.0,
            "train.lr": 0.05 if cfg.train.optimizer == "sgd" else 2e-3,
            "train.weight_decay": 5e-4 if cfg.train.optimizer == "sgd" else 0.05,
        }

    def preprocessing(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        c = info.channels
        return {"size": image_side(cfg.data.image_size or info.image_size), "channels": c,
                "mean": list(info.extra.get("mean", [0.5] * c)), "std": list(info.extra.get("std", [0.5] * c))}

    # -- data -------------------------------------------------------------------------
    def loader(self, split, cfg: Config, info: DatasetInfo, train: bool):
        if train and cfg.data.class_weights == "auto":
            labels = torch.as_tensor(split.labels)
            counts = torch.bincount(labels, minlength=info.num_classes).float().clamp(min=1)
            self.class_weights = counts.sum() / (len(counts) * counts)
        return classification_loader(
            split, self.preprocessing(cfg, info), cfg.train.batch_size, train, cfg.train.seed, info.channels,
            cfg.data.augment or "none", info.hflip_ok, info.num_classes, cfg.data.mixup, cfg.data.cutmix,
            cfg.data.workers, cfg.data.augment_start_epoch, cfg.data.random_erasing)

    # -- model ------------------------------------------------------------------------
    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        """The registered model; wrapped in `FlipTTA` when `model.flip_tta` (CnnkitError when the data's
        mirror images may change the class, as for digits)."""
        model = super().build_model(cfg, info)
        if not cfg.model.flip_tta:
            return model
        if not info.hflip_ok:
            raise CnnkitError(f"model.flip_tta=true averages each image with its mirror image, but mirroring may "
                              f"change the class of {info.name or 'this data'} (e.g. digits); remove it.")
        from cnnkit.models.tta import FlipTTA

        return FlipTTA(model)

    # -- steps ------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch):
        x, y = batch
        logits = model(x)
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        smoothing = (self.cfg.train.label_smoothing or 0.0) if self.cfg is not None else 0.0
        loss = F.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing)
        return loss, {}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch):
        return model(batch[0])

    def new_metric(self, info: DatasetInfo) -> ClassificationMetric:
        return ClassificationMetric(info.classes)

    # -- outputs ----------------------------------------------------------------------
    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        from cnnkit.report.plots import image_grid, plot_confusion

        out = run_dir / "plots"
        paths = []
        if "confusion_matrix" in test_metrics:
            paths.append(plot_confusion(test_metrics["confusion_matrix"], bundle.info.classes,
                                        out / "confusion_matrix.png"))
        split = bundle.test
        if hasattr(split, "images") and len(split):
            cfg_pre = self.preprocessing(self.cfg, bundle.info)
            probs = []
            model.eval()
            with torch.no_grad():
                for i in range(0, len(split), 512):
                    x = to_model_input(split.images[i:i + 512], cfg_pre).to(device)
                    probs.append(model(x).float().softmax(1).cpu())
            probs = torch.cat(probs)
            conf, pred = probs.max(1)
            wrong = (pred != split.labels).nonzero().flatten()
            worst = wrong[conf[wrong].argsort(descending=True)][:25]
            if len(worst):
                cls = bundle.info.classes
                titles = [f"true {cls[int(split.labels[i])]}\npred {cls[int(pred[i])]} {float(conf[i]):.2f}"
                          for i in worst]
                paths.append(image_grid([split.images[i] for i in worst], titles, out / "worst_test.png",
                                        title="Most confidently wrong test images"))
        return paths

    # -- one input --------------------------------------------------------------------
    def predict_one(self, model: nn.Module, x: torch.Tensor, image: torch.Tensor, **options) -> torch.Tensor:
        """Class probabilities (K,)."""
        return model(x).float().softmax(1)[0].cpu()

    def describe(self, record: dict[str, Any], top_k: int = 1, **options: Any) -> str:
        return label_text(record, top_k)

    def record(self, prob: torch.Tensor, image: torch.Tensor, meta: dict[str, Any], index: int, top_k: int = 5,
               **options) -> dict[str, Any]:
        classes = meta["classes"]
        p, idx = prob.topk(min(top_k, len(classes)))
        return {"label": classes[int(idx[0])], "score": float(p[0]),
                "top": [{"label": classes[int(i)], "score": float(s)} for s, i in zip(p, idx)]}

    def draw(self, image: torch.Tensor, prob: torch.Tensor, meta: dict[str, Any], name: str,
             **options) -> list[Drawing]:
        """The image as a tile of predictions.png, captioned with file name, class and score."""
        score, idx = prob.max(0)
        return [Drawing(image, caption=f"{name}\n{meta['classes'][int(idx)]} {float(score):.2f}")]
