"""Shared building blocks for the classifiers: conv-bn-act, the classifier head, activations, the
stage-wise backbone wrapper, and weight initialisation.

Activations are never `inplace` and never reused between two places in a network: explainers
(Captum, Grad-CAM hooks) and the per-layer table in `info.py` need one module per use.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from cnnkit.errors import CnnkitError, did_you_mean

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (see `ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise CnnkitError(f'Unknown activation "{name}".{did_you_mean(name, ACTIVATIONS)} '
                          f"Choose one of: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


class ConvBNAct(Conv2dNormActivation):
    """Conv2d -> BatchNorm2d -> activation, with "same" padding for odd kernels.

    torchvision's `Conv2dNormActivation` with a non-inplace activation; `act=None` leaves it out
    (used before a residual addition), `bn=False` drops the norm and gives the conv a bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 act: str | None = "relu", bn: bool = True):
        activation = ACTIVATIONS[act] if act else None
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         norm_layer=nn.BatchNorm2d if bn else None,
                         activation_layer=activation, inplace=None)


class ClassifierHead(nn.Module):
    """Global average pool -> flatten -> dropout -> linear: turns a feature map into logits.

    With `pool=False` the input is already a flat vector (LeNet's F6 output).
    """

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0, pool: bool = True):
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) if pool else None
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(x) if self.pool is not None else x))


class Backbone(nn.Module):
    """A stem followed by stages; `forward` returns every stage's feature map.

    The keys are "0", "1", ... because torchvision's detection pieces (`MultiScaleRoIAlign`,
    `FeaturePyramidNetwork` users) default to those names. `channels[i]` and `strides[i]`
    describe the map under key `str(i)`; strides are relative to the input image.
    """

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], channels: Sequence[int],
                 strides: Sequence[int]):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.channels = list(channels)
        self.strides = list(strides)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.stem(x)
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            out[str(i)] = x
        return out


def init_weights(model: nn.Module, nonlinearity: str = "relu") -> nn.Module:
    """Kaiming-normal convs and hidden linears, unit/zero norms, small-std classifier outputs.

    The final `ClassifierHead.fc` gets std 0.01 (as torchvision's VGG) so the first logits are
    near zero and the initial loss is close to log(num_classes).
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out" if isinstance(m, nn.Conv2d) else "fan_in",
                                    nonlinearity=nonlinearity)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, ClassifierHead):
            nn.init.normal_(m.fc.weight, std=0.01)
            nn.init.zeros_(m.fc.bias)
    return model


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from an int or an (h, w) pair."""
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = image_size
    return int(h), int(w)
