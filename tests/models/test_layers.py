"""Tests for cnnkit.models.layers: conv-bn-act, the classifier head, the backbone wrapper, init."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.layers import Backbone, ClassifierHead, ConvBNAct, image_hw, init_weights, make_activation


def test_conv_bn_act_shapes_and_parts():
    block = ConvBNAct(3, 8, 3, stride=2)
    assert block(torch.randn(2, 3, 9, 9)).shape == (2, 8, 5, 5)
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert block[0].bias is None and not block[2].inplace
    bare = ConvBNAct(3, 8, 5, act=None, bn=False)
    assert [type(m) for m in bare] == [nn.Conv2d] and bare[0].bias is not None
    assert bare(torch.randn(1, 3, 7, 7)).shape == (1, 8, 7, 7)


def test_classifier_head():
    head = ClassifierHead(16, 4, dropout=0.25)
    assert head(torch.randn(3, 16, 5, 5)).shape == (3, 4)
    assert head.dropout.p == 0.25
    flat = ClassifierHead(16, 4, pool=False)
    assert flat(torch.randn(3, 16)).shape == (3, 4)


def test_init_weights():
    net = nn.Sequential(ConvBNAct(3, 64, 3), ClassifierHead(64, 10))
    nn.init.constant_(net[0][1].weight, 3.0)
    init_weights(net)
    assert torch.all(net[0][1].weight == 1) and torch.all(net[0][1].bias == 0)
    assert net[1].fc.weight.std() < 0.02 and torch.all(net[1].fc.bias == 0)
    # Kaiming fan_out: std = sqrt(2 / (out_channels * k * k))
    assert net[0][0].weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.1)


def test_make_activation():
    assert isinstance(make_activation("gelu"), nn.GELU)
    assert make_activation("relu") is not make_activation("relu")
    with pytest.raises(CnnkitError, match='Did you mean "relu"'):
        make_activation("rleu")


def test_backbone_wrapper():
    net = Backbone(nn.Identity(), [nn.Conv2d(1, 2, 3, 2, 1), nn.Conv2d(2, 4, 3, 2, 1)], [2, 4], [2, 4])
    out = net(torch.randn(1, 1, 8, 8))
    assert list(out) == ["0", "1"] and out["1"].shape == (1, 4, 2, 2)


def test_image_hw():
    assert image_hw(5) == (5, 5) and image_hw((3, 4)) == (3, 4)
