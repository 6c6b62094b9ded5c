"""Plots every task shares: train-vs-val curves, a confusion matrix, a titled image grid.

matplotlib with the Agg backend (no display needed); every function returns the PNG path.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_history(rows: list[dict[str, Any]], out_dir: Path, headline: Sequence[str] = ()) -> list[Path]:
    """loss.png (train vs val: overfitting shows as the gap opening) and one PNG per val metric."""
    if not rows:
        return []
    epochs = [r["epoch"] for r in rows]
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        pts = [(e, r[key]) for e, r in zip(epochs, rows) if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=label)
    parts = sorted({k for r in rows for k in r if k.startswith("train_") and k != "train_loss"})
    for key in parts:
        pts = [(e, r[key]) for e, r in zip(epochs, rows) if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot(*zip(*pts), ls="--", lw=1, marker="x", ms=3, label=key[6:])
    ax.set(xlabel="epoch", ylabel="loss", title="Loss (train: mean over the epoch's augmented batches,\n"
                                                "with its regularisers; val: the plain task loss)")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(_save(fig, out_dir / "loss.png"))
    metric_keys = [k for k in sorted({k for r in rows for k in r if k.startswith("val_") and k != "val_loss"})]
    if metric_keys:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in metric_keys:
            pts = [(e, r[key]) for e, r in zip(epochs, rows) if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, lw=2 if key[4:] in headline else 1, label=key[4:])
        ax.set(xlabel="epoch", ylabel="value", title="Validation metrics")
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(_save(fig, out_dir / "metrics.png"))
    lr = [(e, r["lr"]) for e, r in zip(epochs, rows) if "lr" in r]
    if lr:
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ax.plot(*zip(*lr))
        ax.set(xlabel="epoch", ylabel="lr", title="Learning rate (end of epoch)")
        paths.append(_save(fig, out_dir / "lr.png"))
    return paths


def plot_confusion(matrix, classes: Sequence[str], path: Path, normalize: bool = True, cells: str = "count",
                   title: str = "Confusion matrix (rows: true class; counts in cells)") -> Path:
    """Rows coloured by share of the true class; cells print the count, or (`cells="share"`, for pixel
    counts too long to read) the row share."""
    cm = np.asarray(matrix, dtype=float)
    shown = cm / np.clip(cm.sum(1, keepdims=True), 1, None) if normalize else cm
    k = len(classes)
    size = min(14, 2 + 0.5 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xticks=range(k), yticks=range(k), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title=title)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j] and (cells == "count" or shown[i, j] >= 0.005):
                    text = int(cm[i, j]) if cells == "count" else f"{shown[i, j]:.2f}".lstrip("0")
                    ax.text(j, i, text, ha="center", va="center", fontsize=7,
                            color="white" if shown[i, j] > 0.5 else "black")
    return _save(fig, path)


def image_grid(images: Sequence[torch.Tensor], titles: Sequence[str], path: Path, ncols: int = 5,
               title: str | None = None) -> Path:
    """uint8 C x H x W images (gray or RGB) with a caption each."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.5 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, titles):
        arr = img.detach().cpu()
        if arr.shape[0] == 1:
            ax.imshow(arr[0].numpy(), cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(arr[:3].permute(1, 2, 0).numpy())
        ax.set_title(cap, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
