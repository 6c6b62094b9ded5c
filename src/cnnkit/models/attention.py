"""Channel/spatial attention blocks chosen by a string: SE (Hu et al. 2018) and CBAM (Woo et al. 2018).

`make_attention(kind, channels)` is what residual and VGG blocks call; `None`/"none" gives an
`nn.Identity`, so a block needs no branch of its own.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import SqueezeExcitation

from cnnkit.errors import CnnkitError, did_you_mean

KINDS = ("se", "cbam")


def _reduced(channels: int, reduction: int) -> int:
    # At least 8 hidden units (as timm), so narrow layers (16 channels) keep a useful bottleneck.
    return max(8, channels // reduction)


class SE(SqueezeExcitation):
    """Squeeze-and-excitation: global-average-pool -> FC -> ReLU -> FC -> sigmoid, scaling channels."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__(channels, _reduced(channels, reduction))


class ChannelAttention(nn.Module):
    """CBAM's channel branch: a shared MLP over average- and max-pooled descriptors."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = _reduced(channels, reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM's spatial branch: a 7x7 conv over the channel-wise mean and max maps."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        desc = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(desc))


class CBAM(nn.Module):
    """Convolutional block attention module: channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


def check_attention(kind: str | None) -> str | None:
    """Normalise an attention name: None/"none"/"" -> None; unknown -> CnnkitError."""
    if kind is None or str(kind).lower() in ("", "none"):
        return None
    kind = str(kind).lower()
    if kind not in KINDS:
        raise CnnkitError(f'Unknown attention "{kind}".{did_you_mean(kind, KINDS)} '
                          f"Use one of: {', '.join(KINDS)} (or none).")
    return kind


def make_attention(kind: str | None, channels: int) -> nn.Module:
    """The attention module for `channels` feature channels ("se", "cbam", or None -> Identity)."""
    kind = check_attention(kind)
    if kind == "se":
        return SE(channels)
    if kind == "cbam":
        return CBAM(channels)
    return nn.Identity()
