"""Pictures of the network itself: a layer's feature maps for one image as a grid, and the
learned filters of conv layers as tiles (what a learner wants to watch in LeNet-5).

The activations come from `methods.featuremaps` (Captum's LayerActivation); this module
draws them. Filters of a layer whose inputs are the image's channels (the first conv)
are drawn as RGB or gray tiles; deeper layers as an output x input grid of kernels.
"""
from __future__ import annotations

import math
from pathlib import Path

from cnnkit.report.plots import save_figure  # first: it selects matplotlib's Agg backend

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

MAX_MAPS = 64
MAX_KERNELS = 16  # per side of the output x input grid


def _mosaic(tiles: torch.Tensor, nrow: int, path: str | Path, title: str, cmap: str | None) -> Path:
    """N x C x h x w tiles (C = 1 or 3), each scaled to its own range, in one image: one
    matplotlib axes instead of one per tile (a 128-axes figure takes seconds to draw)."""
    from torchvision.utils import make_grid

    pad = max(1, tiles.shape[-1] // 8)
    grid = make_grid(tiles.float(), nrow=nrow, padding=pad, normalize=True, scale_each=True,
                     pad_value=float("nan"))  # NaN gaps draw as white, apart from any tile value
    gh, gw = grid.shape[-2:]
    width = min(10.0, max(4.0, gw / 40))
    fig, ax = plt.subplots(figsize=(width, width * gh / gw + 0.5))
    if cmap:
        colours = plt.get_cmap(cmap).with_extremes(bad="white")
        ax.imshow(grid[0].numpy(), cmap=colours, interpolation="nearest")
    else:
        ax.imshow(grid.nan_to_num(1.0).permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def save_feature_grid(features: torch.Tensor, path: str | Path, title: str = "", max_maps: int = MAX_MAPS) -> Path:
    """C x h x w activations -> a grid of the first `max_maps` channels (row-major), each scaled on its own."""
    feats = features.detach().float().cpu()[:max_maps]
    shown = f", first {len(feats)} of {features.shape[0]}" if features.shape[0] > len(feats) else ""
    return _mosaic(feats[:, None], math.ceil(math.sqrt(len(feats))), path,
                   f"{title}\n{features.shape[0]} channels{shown}, row by row", "viridis")


def conv_weights(model: nn.Module, name: str) -> torch.Tensor:
    from cnnkit.errors import CnnkitError
    from cnnkit.explain.layers import get_layer

    layer = get_layer(model, name)
    if not isinstance(layer, nn.Conv2d):
        raise CnnkitError(f'Layer "{name}" is a {type(layer).__name__}, not a Conv2d: filters are drawn for conv '
                          "layers (name one with --layer).")
    return layer.weight.detach().float().cpu()


def save_filters(weights: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """out x in x k x k kernels -> tiles: colour (in == 3) or gray (in == 1) per filter; deeper
    layers as a grid with one row per output channel and one column per input channel."""
    w = weights.detach().float().cpu()
    out_c, in_c, kh, kw = w.shape
    title = f"{title} ({out_c} x {in_c} x {kh} x {kw})"
    if in_c in (1, 3):
        w = w[:MAX_MAPS]
        return _mosaic(w, math.ceil(math.sqrt(len(w))), path, title, "gray" if in_c == 1 else None)
    rows, cols = min(out_c, MAX_KERNELS), min(in_c, MAX_KERNELS)
    tiles = w[:rows, :cols].reshape(rows * cols, 1, kh, kw)
    return _mosaic(tiles, cols, path, title + "\nrows: output channels, columns: input channels", "gray")
