"""VGG-style networks (Simonyan & Zisserman 2014) built from a list like `[32, 32, "M", 64, 64, "M"]`.

An int is a 3x3 conv-BN-ReLU with that many output channels; "M" is a 2x2 max-pool that halves
the feature map. The convs between two pools form a *stage* (`features.stage1`, ...), which is
also what the backbone returns, one map per stage. The head is global average pooling + dropout
+ linear (the CIFAR-style VGG head) instead of the 224x224 model's three 4096-unit layers, so any
image size works and the parameter count stays in the convs.

Named presets: vgg_tiny / vgg_small for small images on a CPU, and vgg11/13/16 with the paper's
channel plans (configurations A, B, D); `width=0.25` shrinks any preset.

`tiny` is the same plain conv-BN-ReLU idea with stride-2 convs in place of pools: four stages
16/32/64/128 at strides 2/4/8/16, about 0.06 GFLOPs on a 96x96 image — the fast CPU backbone
for the detection and segmentation heads.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import BACKBONES, MODELS
from cnnkit.models.attention import check_attention, make_attention
from cnnkit.models.layers import Backbone, ClassifierHead, ConvBNAct, image_hw, init_weights

PRESETS: dict[str, list[int | str]] = {
    "vgg_tiny": [16, "M", 32, "M", 64, "M"],
    "vgg_small": [32, 32, "M", 64, 64, "M", 128, 128, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
DOCS = {
    "vgg_tiny": "VGG-style 16-32-64, three pools; seconds per epoch on a CPU",
    "vgg_small": "VGG-style 2x(32-64-128) convs, three pools; a CIFAR-sized baseline",
    "vgg11": "VGG-11 channel plan (config A) with batchnorm and a global-pool head",
    "vgg13": "VGG-13 channel plan (config B) with batchnorm and a global-pool head",
    "vgg16": "VGG-16 channel plan (config D) with batchnorm and a global-pool head",
}


def check_cfg(cfg: Sequence[int | str]) -> list[int | str]:
    """The cfg as a list, or CnnkitError naming the first bad entry."""
    if isinstance(cfg, (str, bytes)) or not isinstance(cfg, Sequence) or len(cfg) == 0:
        raise CnnkitError(f"VGG cfg must be a non-empty list like [32, 32, \"M\", 64], got {cfg!r}.")
    out: list[int | str] = []
    for i, v in enumerate(cfg):
        if isinstance(v, str) and v.upper() == "M":
            out.append("M")
        elif isinstance(v, int) and not isinstance(v, bool) and v > 0:
            out.append(v)
        else:
            raise CnnkitError(f'VGG cfg entry {i} is {v!r}; use a positive channel count or "M" for max-pool.')
    if not any(isinstance(v, int) for v in out):
        raise CnnkitError(f"VGG cfg {cfg!r} has no conv layer; add at least one channel count.")
    return out


def make_stages(cfg: Sequence[int | str], in_channels: int, batchnorm: bool = True,
                attention: str | None = None, width: float = 1.0, image_size: int | None = None):
    """(stages, channels, strides): one `nn.Sequential` per group of convs ending in a pool.

    With `image_size`, pools that would shrink a 1x1 map are left out, so vgg16's five pools
    still run on 8x8 digits. Convs after the last pool join the last stage (same stride).
    """
    size = min(image_hw(image_size)) if image_size else None
    stages: list[nn.Sequential] = []
    channels: list[int] = []
    strides: list[int] = []
    layers: list[tuple[str, nn.Module]] = []
    c, stride = in_channels, 1

    def close_convs() -> None:
        if any(name.startswith("conv") for name, _ in layers) and attention:
            layers.append(("attn", make_attention(attention, c)))

    for v in check_cfg(cfg):
        if v == "M":
            close_convs()
            if size is None or size >= 2:
                layers.append(("pool", nn.MaxPool2d(kernel_size=2, stride=2)))
                stride *= 2
                size = size // 2 if size is not None else None
            stages.append(nn.Sequential(OrderedDict(layers)))
            channels.append(c)
            strides.append(stride)
            layers = []
        else:
            out = max(1, round(v * width))
            layers.append((f"conv{sum(n.startswith('conv') for n, _ in layers) + 1}",
                           ConvBNAct(c, out, 3, act="relu", bn=batchnorm)))
            c = out
    if layers:
        close_convs()
        if stages:  # trailing convs: keep them in the last stage so strides stay increasing
            prev = list(stages[-1].named_children())
            names = [n for n, _ in prev] + [f"{n}_post" for n, _ in layers]
            stages[-1] = nn.Sequential(OrderedDict(zip(names, [m for _, m in prev] + [m for _, m in layers])))
            channels[-1] = c
        else:
            stages.append(nn.Sequential(OrderedDict(layers)))
            channels.append(c)
            strides.append(stride)
    return stages, channels, strides


class VGG(nn.Module):
    """features (stage1..stageN of conv-BN-ReLU + max-pool) -> global pool -> dropout -> linear."""

    def __init__(self, cfg: Sequence[int | str], num_classes: int = 10, in_channels: int = 3,
                 image_size: int | Sequence[int] | None = None, batchnorm: bool = True,
                 attention: str | None = None, dropout: float = 0.0, width: float = 1.0):
        super().__init__()
        stages, channels, _ = make_stages(cfg, in_channels, batchnorm, check_attention(attention), width,
                                          image_size)
        self.features = nn.Sequential(OrderedDict((f"stage{i + 1}", s) for i, s in enumerate(stages)))
        self.head = ClassifierHead(channels[-1], num_classes, dropout)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _register(name: str, preset: list[int | str] | None) -> None:
    doc = DOCS.get(name, 'VGG-style net from cfg=[32, 32, "M", 64, ...] (int = 3x3 conv, "M" = max-pool)')
    default_cfg = preset or PRESETS["vgg_small"]

    @MODELS.register(name, tasks=("classify",), backbone=True, attention=True, doc=doc)
    def build(num_classes: int, in_channels: int, image_size: int | Sequence[int], dropout: float = 0.0,
              attention: str | None = None, batchnorm: bool = True, width: float = 1.0,
              cfg: Sequence[int | str] | None = None) -> VGG:
        if cfg is not None and preset is not None:
            raise CnnkitError(f'Model "{name}" has a fixed layer plan; use model "vgg" with cfg=[...] instead.')
        return VGG(default_cfg if cfg is None else cfg, num_classes, in_channels, image_size, batchnorm, attention, dropout, width)

    @BACKBONES.register(name)
    def backbone(in_channels: int, attention: str | None = None, image_size: int | Sequence[int] | None = None,
                 batchnorm: bool = True, width: float = 1.0, cfg: Sequence[int | str] | None = None) -> Backbone:
        # image_size is accepted for a uniform call but unused: every pool is kept, so the
        # strides are the same whatever the image.
        if cfg is not None and preset is not None:
            raise CnnkitError(f'Backbone "{name}" has a fixed layer plan; use "vgg" with cfg=[...] instead.')
        stages, channels, strides = make_stages(default_cfg if cfg is None else cfg, in_channels, batchnorm,
                                                check_attention(attention), width)
        return init_weights(Backbone(nn.Identity(), stages, channels, strides))


class TinyNet(nn.Module):
    """Four stages, each a stride-2 3x3 conv then a 3x3 conv (+ attention); global pool head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64, 128),
                 attention: str | None = None, dropout: float = 0.0):
        super().__init__()
        attention = check_attention(attention)
        stages, c = [], in_channels
        for i, w in enumerate(widths):
            stages.append((f"stage{i + 1}", nn.Sequential(OrderedDict([
                ("down", ConvBNAct(c, w, 3, stride=2)), ("conv", ConvBNAct(w, w, 3)),
                ("attn", make_attention(attention, w))]))))
            c = w
        self.features = nn.Sequential(OrderedDict(stages))
        self.channels = list(widths)
        self.strides = [2 ** (i + 1) for i in range(len(widths))]
        self.head = ClassifierHead(c, num_classes, dropout)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@MODELS.register("tiny", tasks=("classify",), backbone=True, attention=True,
                 doc="4 stages of stride-2 conv + conv (16-128 ch); the fast CPU backbone for 96x96 images")
def tiny(num_classes: int, in_channels: int, image_size: int | Sequence[int], dropout: float = 0.0,
         attention: str | None = None, widths: Sequence[int] = (16, 32, 64, 128)) -> TinyNet:
    return TinyNet(num_classes, in_channels, widths, attention, dropout)


@BACKBONES.register("tiny")
def tiny_backbone(in_channels: int, attention: str | None = None, image_size: int | Sequence[int] | None = None,
                  widths: Sequence[int] = (16, 32, 64, 128)) -> Backbone:
    net = TinyNet(1, in_channels, widths, attention)
    return Backbone(nn.Identity(), list(net.features), net.channels, net.strides)


_register("vgg", None)
for _name, _cfg in PRESETS.items():
    _register(_name, _cfg)
