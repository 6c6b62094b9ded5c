"""PNG pictures of explanations (matplotlib, Agg backend): a heatmap over the image with a
colour bar, side-by-side grids (images x methods/targets), and faithfulness curves."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnkit.report.plots import save_figure  # first: it selects matplotlib's Agg backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cnnkit.report.fonts import fonts_for  # noqa: E402  titles carry class names (CJK, accents)

CMAP = "jet"
ALPHA = 0.5


def _img(image: torch.Tensor) -> tuple[np.ndarray, str | None]:
    arr = image.detach().cpu()
    if arr.shape[0] == 1:
        return arr[0].numpy(), "gray"
    return arr[:3].permute(1, 2, 0).numpy(), None


def _draw(ax, expl, title: str | None = None, show_map: bool = True):
    """Image, heatmap on top, the explained box for detections; returns the heatmap artist."""
    img, cmap = _img(expl.image)
    ax.imshow(img, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    art = None
    if show_map and expl.map is not None:
        art = ax.imshow(expl.map.numpy(), cmap=CMAP, alpha=ALPHA, vmin=0, vmax=1, interpolation="bilinear")
    box = expl.target.get("box") if isinstance(expl.target, dict) else None
    if box:
        x1, y1, x2, y2 = box
        ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color="white", lw=1.5))
    ax.set_title(title if title is not None else expl.label(), fontsize=8)
    ax.axis("off")
    return art


def save_overlay(expl, path: str | Path, title: str | None = None) -> Path:
    with fonts_for([title if title is not None else expl.label()]):
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        art = _draw(ax, expl, title)
        if art is not None:
            fig.colorbar(art, ax=ax, fraction=0.046, pad=0.04, label="importance (scaled to 0..1)")
        fig.tight_layout()
        return save_figure(fig, Path(path))


def save_grid(rows: list[list[Any]], path: str | Path, row_labels: list[str] | None = None,
              titles: list[list[str]] | None = None, with_image: bool = True) -> Path:
    """One row per image (or target), one column per method; the first column is the plain
    image when `with_image`. One shared colour bar."""
    texts = [*(row_labels or []), *(t for row in titles or [] for t in row),
             *(e.label() for row in rows for e in row), *(row[0].name for row in rows if row)]
    with fonts_for(texts):
        return _save_grid(rows, Path(path), row_labels, titles, with_image)


def _save_grid(rows, path: Path, row_labels, titles, with_image: bool) -> Path:
    nrows = len(rows)
    ncols = max(len(r) for r in rows) + (1 if with_image else 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols + 0.8, 2.3 * nrows), squeeze=False)
    art = None
    for i, row in enumerate(rows):
        for ax in axes[i]:
            ax.axis("off")
        offset = 0
        if with_image and row:
            _draw(axes[i][0], row[0], (row_labels or [""] * nrows)[i] or row[0].name, show_map=False)
            offset = 1
        for j, expl in enumerate(row):
            title = titles[i][j] if titles else expl.label()
            art = _draw(axes[i][j + offset], expl, title) or art
    if art is not None:
        fig.colorbar(art, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02, label="importance (0..1)")
    return save_figure(fig, path)


def save_curves(methods: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Mean deletion and insertion curves per method, random-order baselines dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn: list[np.ndarray] = []
    for k, (name, res) in enumerate(methods.items()):
        c = colors[k % len(colors)]
        for ax, kind in zip(axes, ("deletion", "insertion")):
            curve = np.asarray(res[f"{kind}_curve"])
            xs = np.linspace(0, 1, len(curve))
            ax.plot(xs, curve, color=c, label=f"{name} (AUC {res[f'{kind}_auc']:.3f})")
        rand = np.asarray(res["deletion_curve_random"] + res["insertion_curve_random"])
        if not any(np.array_equal(rand, d) for d in drawn):  # methods share one random order per image
            drawn.append(rand)
            for ax, kind in zip(axes, ("deletion", "insertion")):
                r = np.asarray(res[f"{kind}_curve_random"])
                ax.plot(np.linspace(0, 1, len(r)), r, color="gray", ls="--",
                        label=f"random order (AUC {res[f'{kind}_auc_random']:.3f})")
    for ax, kind in zip(axes, ("deletion", "insertion")):
        verb = "removed" if kind == "deletion" else "added"
        ax.set_title(f"{kind} (lower is better)" if kind == "deletion" else f"{kind} (higher is better)")
        ax.set_xlabel(f"fraction of pixels {verb}, most important first")
        ax.set_ylabel("target score")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, Path(path))
