"""Tests for cnnkit.models.resnet: block shapes, stems, parameter counts against torchvision, attention."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import SqueezeExcitation

from cnnkit.models import build_model
from cnnkit.models.attention import CBAM
from cnnkit.models.resnet import BasicBlock, Bottleneck, ResNet


def _params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_imagenet_style_matches_torchvision(name):
    # with the 7x7 stem (image_size >= 64) the parameter count equals torchvision's
    with torch.device("meta"):  # counting only: skip allocating and initialising the weights
        ours = build_model(name, num_classes=10, in_channels=3, image_size=64)
        ref = getattr(torchvision.models, name)(weights=None, num_classes=10)
    assert _params(ours) == _params(ref)


def test_cifar_resnet_sizes():
    # He et al. 2016, table 6: 0.27M and 0.85M (option A); our 1x1 projections add a few thousand
    assert round(_params(build_model("resnet20", 10, 3, 32)) / 1e6, 2) == 0.27
    assert round(_params(build_model("resnet56", 10, 3, 32)) / 1e6, 2) == 0.86
    model = build_model("resnet20", 10, 3, 32)
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 9
    assert model.channels == [16, 32, 64] and model.strides == [1, 2, 4]


def test_stem_follows_image_size():
    with torch.device("meta"):
        small = build_model("resnet18", 10, 3, 32)
        big = build_model("resnet18", 10, 3, 64)
        forced = build_model("resnet18", 10, 3, 32, stem="imagenet")
    assert small.strides[0] == 1 and small.stem[0].kernel_size == (3, 3)
    assert big.strides[0] == 4 and isinstance(big.stem.pool, nn.MaxPool2d)
    assert forced.strides[0] == 4


@pytest.mark.parametrize("block,width,out", [(BasicBlock, 8, 8), (Bottleneck, 8, 32)])
def test_blocks_shapes_and_shortcut(block, width, out):
    down = block(16, width, stride=2)
    assert down(torch.randn(2, 16, 8, 8)).shape == (2, out, 4, 4)
    assert isinstance(down.shortcut, nn.Sequential)
    same = block(out, width)
    assert isinstance(same.shortcut, nn.Identity)


def test_zero_init_residual_makes_blocks_start_as_identity():
    model = ResNet(BasicBlock, (1, 1), (16, 32), num_classes=2, in_channels=1, zero_init_residual=True).eval()
    block = model.stages.stage1[0]
    x = torch.randn(2, 16, 4, 4).relu()
    torch.testing.assert_close(block(x), x)  # zero-init last BN: relu(0 + x) == x for x >= 0


@pytest.mark.parametrize("name,kind,count", [("se_resnet20", SqueezeExcitation, 9), ("cbam_resnet20", CBAM, 9),
                                             ("se_resnet18", SqueezeExcitation, 8)])
def test_attention_variants(name, kind, count):
    base = build_model(name.split("_", 1)[1], 5, 3, 16)
    model = build_model(name, 5, 3, 16)
    assert sum(isinstance(m, kind) for m in model.modules()) == count
    assert _params(model) > _params(base)
    x = torch.randn(2, 3, 16, 16)
    assert model(x).shape == base(x).shape == (2, 5)
    same = build_model(name.split("_", 1)[1], 5, 3, 16, attention=name.split("_")[0])
    assert _params(same) == _params(model)
