"""Residual networks (He et al. 2016): CIFAR-style resnet20/32/44/56 and ImageNet-style resnet18/34/50.

A residual block computes `relu(F(x) + shortcut(x))`; F is two 3x3 convs (BasicBlock) or
1x1-3x3-1x1 convs (Bottleneck), optionally followed by SE or CBAM attention (`attention=`), and
the shortcut is the identity or, when the shape changes, a strided 1x1 conv + BN (the paper's
"option B"; the CIFAR paper used zero-padding "option A", which has no parameters but is rarely
used today).

The blocks are written here rather than taken from torchvision.models.resnet because they take
an attention module and use one ReLU per use (torchvision reuses one `relu` twice per block, which
confuses per-layer hooks and Captum).

Stems: "cifar" = 3x3 conv to 16 channels (stride 1); "imagenet" = 7x7 stride-2 conv + 3x3 stride-2
max-pool (stride 4); "small" = 3x3 stride-1 conv to 64 channels, no max-pool — used automatically
by the ImageNet-style nets when image_size < 64, so 32x32 images are not shrunk to 8x8 at once.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.models import BACKBONES, MODELS
from cnnkit.models.attention import check_attention, make_attention
from cnnkit.models.layers import Backbone, ClassifierHead, ConvBNAct, image_hw, init_weights


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return ConvBNAct(in_channels, out_channels, 1, stride, act=None)


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU -> 3x3 conv-BN -> attention, plus the shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, attention: str | None = None):
        super().__init__()
        out = width * self.expansion
        self.conv1 = ConvBNAct(in_channels, width, 3, stride)
        self.conv2 = ConvBNAct(width, out, 3, act=None)
        self.attn = make_attention(attention, out)
        self.shortcut = _shortcut(in_channels, out, stride)
        self.act = nn.ReLU()

    def last_bn(self) -> nn.BatchNorm2d:
        return self.conv2[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.attn(self.conv2(self.conv1(x))) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride, as torchvision's "ResNet v1.5") -> 1x1 expand x4."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, attention: str | None = None):
        super().__init__()
        out = width * self.expansion
        self.conv1 = ConvBNAct(in_channels, width, 1)
        self.conv2 = ConvBNAct(width, width, 3, stride)
        self.conv3 = ConvBNAct(width, out, 1, act=None)
        self.attn = make_attention(attention, out)
        self.shortcut = _shortcut(in_channels, out, stride)
        self.act = nn.ReLU()

    def last_bn(self) -> nn.BatchNorm2d:
        return self.conv3[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.attn(self.conv3(self.conv2(self.conv1(x)))) + self.shortcut(x))


def make_stem(kind: str, in_channels: int) -> tuple[nn.Module, int, int]:
    """(stem module, its output channels, its stride)."""
    if kind == "cifar":
        return ConvBNAct(in_channels, 16, 3), 16, 1
    if kind == "small":
        return ConvBNAct(in_channels, 64, 3), 64, 1
    if kind == "imagenet":
        stem = nn.Sequential(OrderedDict([("conv", ConvBNAct(in_channels, 64, 7, stride=2)),
                                          ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))]))
        return stem, 64, 4
    raise CnnkitError(f'Unknown ResNet stem "{kind}".{did_you_mean(kind, STEMS)} Use one of: {", ".join(STEMS)}.')


STEMS = ("cifar", "small", "imagenet")


class ResNet(nn.Module):
    """stem -> stages (stage1..stageN of residual blocks) -> global pool -> dropout -> linear.

    `.channels` / `.strides` describe each stage's output, which `backbone()` returns as a dict.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], depths: Sequence[int], widths: Sequence[int],
                 num_classes: int = 10, in_channels: int = 3, stem: str = "cifar", attention: str | None = None,
                 dropout: float = 0.0, zero_init_residual: bool = False):
        super().__init__()
        attention = check_attention(attention)
        self.stem, c, stride = make_stem(stem, in_channels)
        stages, self.channels, self.strides = [], [], []
        for i, (depth, width) in enumerate(zip(depths, widths)):
            step = 1 if i == 0 else 2  # the first stage keeps the stem's resolution
            blocks = []
            for j in range(depth):
                blocks.append(block(c, width, step if j == 0 else 1, attention))
                c = width * block.expansion
            stride *= step
            stages.append((f"stage{i + 1}", nn.Sequential(*blocks)))
            self.channels.append(c)
            self.strides.append(stride)
        self.stages = nn.Sequential(OrderedDict(stages))
        self.head = ClassifierHead(c, num_classes, dropout)
        init_weights(self)
        if zero_init_residual:
            # Each block starts as the identity (Goyal et al. 2017). Off by default: measured on digits
            # (ResNet-20, SGD lr 0.05, 2 epochs) it left the loss at 2.17 against 1.25 without it, because
            # at short CPU budgets the net starts as little more than a pooled linear model.
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def backbone(self) -> Backbone:
        """The stem and stages (sharing these modules), returning one feature map per stage."""
        return Backbone(self.stem, list(self.stages), self.channels, self.strides)


# name -> (family, block, blocks per stage)
ARCHS: dict[str, tuple[str, type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    "resnet20": ("cifar", BasicBlock, (3, 3, 3)),
    "resnet32": ("cifar", BasicBlock, (5, 5, 5)),
    "resnet44": ("cifar", BasicBlock, (7, 7, 7)),
    "resnet56": ("cifar", BasicBlock, (9, 9, 9)),
    "resnet18": ("imagenet", BasicBlock, (2, 2, 2, 2)),
    "resnet34": ("imagenet", BasicBlock, (3, 4, 6, 3)),
    "resnet50": ("imagenet", Bottleneck, (3, 4, 6, 3)),
}
WIDTHS = {"cifar": (16, 32, 64), "imagenet": (64, 128, 256, 512)}
# convenience names: prefix -> attention kind, for these base nets
VARIANTS = {"se": ("resnet20", "resnet18"), "cbam": ("resnet20", "resnet18")}


def _doc(name: str, attention: str | None) -> str:
    family, block, depths = ARCHS[name]
    kind = "CIFAR-style, 3 stages 16/32/64" if family == "cifar" else "ImageNet-style, 4 stages 64..512"
    extra = f" with {attention.upper()} attention in every block" if attention else ""
    return f"ResNet-{name[6:]} ({kind}, {block.__name__} x {sum(depths)}){extra}"


def build_resnet(name: str, num_classes: int, in_channels: int, image_size: int | Sequence[int] | None,
                 attention: str | None = None, dropout: float = 0.0, stem: str | None = None,
                 zero_init_residual: bool = False) -> ResNet:
    """A ResNet from `ARCHS`; the ImageNet-style stem shrinks to "small" below 64 pixels."""
    family, block, depths = ARCHS[name]
    if stem is None:
        small = image_size is not None and min(image_hw(image_size)) < 64
        stem = "cifar" if family == "cifar" else ("small" if small else "imagenet")
    return ResNet(block, depths, WIDTHS[family], num_classes, in_channels, stem, attention, dropout,
                  zero_init_residual)


def _register(name: str, base: str, default_attention: str | None) -> None:
    @MODELS.register(name, tasks=("classify",), backbone=True, attention=True, doc=_doc(base, default_attention))
    def build(num_classes: int, in_channels: int, image_size: int | Sequence[int], dropout: float = 0.0,
              attention: str | None = None, stem: str | None = None, zero_init_residual: bool = False) -> ResNet:
        return build_resnet(base, num_classes, in_channels, image_size, _pick(name, default_attention, attention),
                            dropout, stem, zero_init_residual)

    @BACKBONES.register(name)
    def backbone(in_channels: int, attention: str | None = None, image_size: int | Sequence[int] | None = None,
                 stem: str | None = None) -> Backbone:
        model = build_resnet(base, 1, in_channels, image_size, _pick(name, default_attention, attention), 0.0, stem)
        return model.backbone()


def _pick(name: str, default: str | None, asked: str | None) -> str | None:
    asked = check_attention(asked)
    if default and asked and asked != default:
        raise CnnkitError(f'Model "{name}" already uses {default} attention; drop attention="{asked}" '
                          f'or use "{name.split("_", 1)[1]}" with attention="{asked}".')
    return asked or default


for _name in ARCHS:
    _register(_name, _name, None)
for _kind, _bases in VARIANTS.items():
    for _base in _bases:
        _register(f"{_kind}_{_base}", _base, _kind)
