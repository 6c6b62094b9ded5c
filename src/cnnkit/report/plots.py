"""Plots every task shares: train-vs-val curves, a confusion matrix, a titled image grid.

matplotlib with the Agg backend (no display needed); every function returns the PNG path.
An undefined metric (None) is a gap in its curve, never a point; class names and captions are
drawn with a font that has their glyphs (`report/fonts.py`), or by index with a note.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnkit.report.fonts import class_labels, drawable, fonts_for, note_for

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _note_below(ax, text: str) -> None:
    """A small line of text under the x-axis label (kept in the PNG by the tight bounding box)."""
    ax.annotate(text, xy=(0.5, 0), xycoords=ax.xaxis.label, xytext=(0, -6), textcoords="offset points",
                ha="center", va="top", fontsize=7)


_COUNTS = ("images", "detections", "fp_per_image")  # counts, not scores: they would flatten the [0, 1] curves


def _series(rows: list[dict[str, Any]], key: str) -> list[tuple[Any, float]]:
    """(epoch, value) for the rows that hold `key`; an undefined value is NaN, so the line breaks there."""
    return [(r["epoch"], float("nan") if r[key] is None else r[key]) for r in rows
            if key in r and (r[key] is None or isinstance(r[key], (int, float)))]


def _defined(pts: list[tuple[Any, float]]) -> bool:
    return any(v == v for _, v in pts)


def plot_history(rows: list[dict[str, Any]], out_dir: Path, headline: Sequence[str] = ()) -> list[Path]:
    """loss.png (train vs val: overfitting shows as the gap opening) and one PNG per val metric.
    Epochs where a metric is undefined (None) leave a gap; a metric undefined at every epoch is
    named under the plot instead of drawn."""
    if not rows:
        return []
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        pts = _series(rows, key)
        if _defined(pts):
            ax.plot(*zip(*pts), marker="o", ms=3, label=label)
    parts = sorted({k for r in rows for k in r if k.startswith("train_") and k != "train_loss"})
    for key in parts:
        pts = _series(rows, key)
        if _defined(pts):
            ax.plot(*zip(*pts), ls="--", lw=1, marker="x", ms=3, label=key[6:])
    ax.set(xlabel="epoch", ylabel="loss", title="Loss (train: mean over the epoch's augmented batches,\n"
                                                "with its regularisers; val: the plain task loss)")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(save_figure(fig, out_dir / "loss.png"))
    metric_keys = sorted({k for r in rows for k in r
                          if k.startswith("val_") and k != "val_loss" and k[4:] not in _COUNTS})
    if metric_keys:
        fig, ax = plt.subplots(figsize=(6, 4))
        undefined = []
        for key in metric_keys:
            pts = _series(rows, key)
            if _defined(pts):
                ax.plot(*zip(*pts), marker="o", ms=3, lw=2 if key[4:] in headline else 1, label=key[4:])
            elif pts:
                undefined.append(key[4:])
        ax.set(xlabel="epoch", ylabel="value", title="Validation metrics")
        ax.grid(alpha=0.3)
        if len(undefined) < len(metric_keys):
            ax.legend()
        if undefined:
            _note_below(ax, f"undefined at every epoch (n/a, not drawn): {', '.join(undefined)}")
        paths.append(save_figure(fig, out_dir / "metrics.png"))
    lr = [(r["epoch"], r["lr"]) for r in rows if "lr" in r]
    if lr:
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ax.plot(*zip(*lr))
        ax.set(xlabel="epoch", ylabel="lr", title="Learning rate (end of epoch)")
        paths.append(save_figure(fig, out_dir / "lr.png"))
    return paths


def plot_confusion(matrix, classes: Sequence[str], path: Path, normalize: bool = True, cells: str = "count",
                   title: str = "Confusion matrix (rows: true class; counts in cells)") -> Path:
    """Rows coloured by share of the true class; cells print the count, or (`cells="share"`, for pixel
    counts too long to read) the row share. `matrix`: K x K counts (rows true, columns predicted)."""
    with fonts_for(classes):
        return _plot_confusion(np.asarray(matrix, dtype=float), classes, path, normalize, cells, title)


def _plot_confusion(cm: np.ndarray, classes: Sequence[str], path: Path, normalize: bool, cells: str,
                    title: str) -> Path:
    shown = cm / np.clip(cm.sum(1, keepdims=True), 1, None) if normalize else cm
    k = len(classes)
    labels = class_labels(classes)
    size = min(14, 2 + 0.5 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xticks=range(k), yticks=range(k), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="true", title=title)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j] and (cells == "count" or shown[i, j] >= 0.005):
                    text = int(cm[i, j]) if cells == "count" else f"{shown[i, j]:.2f}".lstrip("0")
                    ax.text(j, i, text, ha="center", va="center", fontsize=7,
                            color="white" if shown[i, j] > 0.5 else "black")
    note = note_for(classes)
    if note:
        _note_below(ax, note)
    return save_figure(fig, path)


def image_grid(images: Sequence[torch.Tensor], titles: Sequence[str], path: Path, ncols: int = 5,
               title: str | None = None) -> Path:
    """uint8 C x H x W images (gray or RGB) with a caption each (a character no installed font has
    is written as its code point, U+1F436)."""
    with fonts_for([*titles, title or ""]):
        return _image_grid(images, [drawable(t) for t in titles], path, ncols, drawable(title) if title else None)


def _image_grid(images: Sequence[torch.Tensor], titles: Sequence[str], path: Path, ncols: int,
                title: str | None) -> Path:
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
    return save_figure(fig, path)
