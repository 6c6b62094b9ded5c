"""`--worst N`: the test images a classifier gets wrong most confidently, with what it looked
at (Grad-CAM of the predicted class, one grid PNG), and the class pairs it confuses most.

The test split is rebuilt from the run's own config (`build_data(Config.from_dict(meta["config"]))`),
so it is exactly the split the run was scored on. Confusion counts come from torchmetrics.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnkit.errors import CnnkitError
from cnnkit.explain.subject import Subject, read_images
from cnnkit.explain.targets import model_logits

BATCH = 256
TOP_PAIRS = 5


def test_split(subject: Subject) -> tuple[list[str], Any, torch.Tensor]:
    """(names, images: N x C x H x W uint8 tensor or list of paths, labels) of the run's test split."""
    from cnnkit.config import Config
    from cnnkit.data import build_data

    if not subject.meta.get("config"):
        raise CnnkitError(f"{subject.source} holds no training config, so its test split cannot be rebuilt "
                          "for --worst: pass image files instead.")
    test = build_data(Config.from_dict(subject.meta["config"])).test
    if test is None or len(test) == 0:
        raise CnnkitError(f"The run {subject.source} has an empty test split: --worst has nothing to review.")
    if hasattr(test, "images"):
        names = list(test.names) if getattr(test, "names", None) else [f"test[{i}]" for i in range(len(test))]
        return names, test.images, torch.as_tensor(test.labels).long()
    if hasattr(test, "paths"):
        return list(test.paths), list(test.paths), torch.as_tensor(test.labels).long()
    raise CnnkitError("--worst reviews classification test splits; this run's test split is of another kind.")


def _batch(subject: Subject, images: Any, lo: int) -> list[torch.Tensor]:
    chunk = images[lo:lo + BATCH]
    if isinstance(images, torch.Tensor):
        return list(chunk)
    return [img for _, img in read_images(chunk, subject.channels)]


@torch.no_grad()
def predict_split(subject: Subject, images: Any, n: int) -> torch.Tensor:
    """Softmax probabilities N x K over the split, a batch at a time."""
    probs = []
    for lo in range(0, n, BATCH):
        x = subject.preprocess(_batch(subject, images, lo)).to(subject.device).float()
        probs.append(model_logits(subject.model, x).softmax(1).cpu())
    return torch.cat(probs)


def confused_pairs(labels: torch.Tensor, preds: torch.Tensor, classes: list[str], top: int = TOP_PAIRS
                   ) -> tuple[list[dict[str, Any]], torch.Tensor]:
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    cm = multiclass_confusion_matrix(preds, labels, num_classes=len(classes))
    off = cm.clone()
    off.fill_diagonal_(0)
    flat = off.flatten()
    order = torch.argsort(flat, descending=True)[:top]
    k = len(classes)
    pairs = [{"true": classes[int(i) // k], "predicted": classes[int(i) % k], "count": int(flat[i])}
             for i in order if flat[i] > 0]
    return pairs, cm


def review_worst(subject: Subject, n: int, out_dir: Path, options: dict[str, Any]
                 ) -> tuple[dict[str, Any], list[tuple[str, torch.Tensor]]]:
    """JSON part for --worst and the worst images (name, uint8 image) for further methods."""
    from cnnkit.explain.overlay import save_grid
    from cnnkit.explain.runner import run

    if subject.output != "logits":
        raise CnnkitError(f"--worst reviews classifiers; this is a {subject.task} model: pass image files instead.")
    names, images, labels = test_split(subject)
    probs = predict_split(subject, images, len(labels))
    conf, preds = probs.max(1)
    wrong = torch.nonzero(preds != labels).flatten()
    pairs, _ = confused_pairs(labels, preds, subject.classes)
    info: dict[str, Any] = {"test_images": len(labels), "wrong": int(len(wrong)),
                            "accuracy": float((preds == labels).float().mean()), "confused_pairs": pairs,
                            "images": []}
    if len(wrong) == 0:
        return info, []
    worst = wrong[torch.argsort(conf[wrong], descending=True)][:n]
    picked: list[tuple[str, torch.Tensor]] = []
    for i in worst.tolist():
        img = images[i] if isinstance(images, torch.Tensor) else read_images([images[i]], subject.channels)[0][1]
        picked.append((names[i], img))
    explanations = []
    for (name, img), i in zip(picked, worst.tolist()):
        expl, _ = run(subject, [(name, img)], ["gradcam"], str(int(preds[i])), None, options)
        explanations += expl
    titles, rows = [], []
    cols = min(5, len(explanations))
    for k, (e, i) in enumerate(zip(explanations, worst.tolist())):
        true, pred = subject.classes[int(labels[i])], subject.classes[int(preds[i])]
        info["images"].append({"image": names[i], "index": int(i), "true": true, "predicted": pred,
                               "confidence": round(float(conf[i]), 4), "peak": e.stats()["peak"]})
        if k % cols == 0:
            rows.append([])
            titles.append([])
        rows[-1].append(e)
        titles[-1].append(f"true {true} / pred {pred} ({float(conf[i]):.2f})")
    info["png"] = str(save_grid(rows, out_dir / "worst.png", titles=titles, with_image=False))
    return info, picked
