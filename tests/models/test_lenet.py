"""Tests for cnnkit.models.lenet: the 1998 layout, both styles, other image sizes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import build_model, layer_table
from cnnkit.models.lenet import DEFAULT_STYLE, LeNet5


def test_layout_on_32x32_matches_the_paper():
    model = build_model("lenet5", num_classes=10, in_channels=1, image_size=32)
    shapes = {r["name"]: r["output_shape"] for r in layer_table(model, (1, 1, 32, 32))["rows"]}
    assert shapes["features.c1"] == [1, 6, 28, 28]
    assert shapes["features.s2"] == [1, 6, 14, 14]
    assert shapes["features.c3"] == [1, 16, 10, 10]
    assert shapes["features.s4"] == [1, 16, 5, 5]
    assert shapes["classifier.c5"] == [1, 120]
    assert shapes["classifier.f6"] == [1, 84]
    assert shapes["head.fc"] == [1, 10]
    # 156 + 2,416 + 48,120 + 10,164 + 850 (full C3 connections, linear output layer)
    assert sum(p.numel() for p in model.parameters()) == 61_706


def test_styles():
    assert DEFAULT_STYLE == "modern"
    modern = LeNet5(style="modern")
    classic = LeNet5(style="classic")
    assert isinstance(modern.features.act1, nn.ReLU) and isinstance(modern.features.s2, nn.MaxPool2d)
    assert isinstance(classic.features.act1, nn.Tanh) and isinstance(classic.features.s2, nn.AvgPool2d)
    with pytest.raises(CnnkitError, match="modern"):
        LeNet5(style="paper")


@pytest.mark.parametrize("size,flat", [(28, 400), (32, 400), (8, 64), (4, 16), (64, 16 * 13 * 13)])
def test_other_image_sizes(size, flat):
    model = LeNet5(num_classes=3, in_channels=3, image_size=size).eval()
    assert model.classifier.c5.in_features == flat
    assert model(torch.randn(2, 3, size, size)).shape == (2, 3)


def test_too_small():
    with pytest.raises(CnnkitError, match="at least 4x4"):
        LeNet5(image_size=3)
