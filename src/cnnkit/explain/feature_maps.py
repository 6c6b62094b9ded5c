"""Pictures of the network itself: a layer's feature maps for one image as a grid, and the
learned filters of conv layers as tiles (what a learner wants to watch in LeNet-5).

The activations come from `methods.featuremaps` (Captum's LayerActivation); this module
draws them. Filters of a layer whose inputs are the image's channels (the first conv)
are drawn as RGB or gray tiles; deeper layers as an output x input grid of kernels.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

MAX_MAPS = 64
MAX_KERNELS = 16  # per side of the output x input grid


def _unit(t: torch.Tensor) -> torch.Tensor:
    lo, hi = float(t.min()), float(t.max())
    return (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)


def save_feature_grid(features: torch.Tensor, path: str | Path, title: str = "", max_maps: int = MAX_MAPS) -> Path:
    """C x h x w activations -> a grid of the first `max_maps` channels, each scaled on its own."""
    feats = features.detach().float().cpu()[:max_maps]
    n = feats.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(_unit(feats[k]).numpy(), cmap="viridis", interpolation="nearest")
            ax.set_title(str(k), fontsize=6)
    shown = f" (first {n} of {features.shape[0]})" if features.shape[0] > n else ""
    fig.suptitle(f"{title}{shown}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def conv_weights(model: nn.Module, name: str) -> torch.Tensor:
    from cnnkit.explain.layers import get_layer
    from cnnkit.errors import CnnkitError

    layer = get_layer(model, name)
    if not isinstance(layer, nn.Conv2d):
        raise CnnkitError(f'Layer "{name}" is a {type(layer).__name__}, not a Conv2d: filters are drawn for conv '
                          "layers (name one with --layer).")
    return layer.weight.detach().float().cpu()


def save_filters(weights: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """out x in x k x k kernels -> tiles: colour (in == 3) or gray (in == 1) per filter, else a grid."""
    w = weights.detach().float().cpu()
    out_c, in_c = w.shape[:2]
    if in_c in (1, 3):
        n = min(out_c, MAX_MAPS)
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.1 * rows + 0.4), squeeze=False)
        for k, ax in enumerate(axes.ravel()):
            ax.axis("off")
            if k < n:
                tile = _unit(w[k])
                if in_c == 3:
                    ax.imshow(tile.permute(1, 2, 0).numpy(), interpolation="nearest")
                else:
                    ax.imshow(tile[0].numpy(), cmap="gray", interpolation="nearest")
    else:
        rows, cols = min(out_c, MAX_KERNELS), min(in_c, MAX_KERNELS)
        fig, axes = plt.subplots(rows, cols, figsize=(0.6 * cols + 0.4, 0.6 * rows + 0.6), squeeze=False)
        scale = _unit(w[:rows, :cols])  # one scale for the grid so kernels compare
        for i in range(rows):
            for j in range(cols):
                axes[i][j].imshow(scale[i, j].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                axes[i][j].axis("off")
    fig.suptitle(f"{title} ({out_c} x {in_c} x {w.shape[2]} x {w.shape[3]})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
