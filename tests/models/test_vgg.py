"""Tests for cnnkit.models.vgg: building from a cfg list, presets, small images, attention, tiny."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import SqueezeExcitation

from cnnkit.errors import CnnkitError
from cnnkit.models import build_backbone, build_model
from cnnkit.models.vgg import VGG, make_stages


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


def test_cfg_builds_convs_and_pools():
    model = build_model("vgg", 4, 3, 16, cfg=[8, 8, "M", 16, "M"])
    assert _count(model, nn.Conv2d) == 3 and _count(model, nn.MaxPool2d) == 2
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [8, 8, 16]
    assert list(model.features._modules) == ["stage1", "stage2"]
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_batchnorm_option_and_width():
    plain = VGG([8, "M", 16, "M"], 3, 1, 16, batchnorm=False)
    assert _count(plain, nn.BatchNorm2d) == 0
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))
    half = build_model("vgg11", 3, 1, 16, width=0.25)
    assert max(m.out_channels for m in half.modules() if isinstance(m, nn.Conv2d)) == 128


def test_pools_skipped_on_tiny_images():
    model = build_model("vgg16", 2, 1, 8, width=0.125).eval()
    assert _count(model, nn.MaxPool2d) == 3  # 8 -> 4 -> 2 -> 1, the last two pools are left out
    assert model(torch.randn(1, 1, 8, 8)).shape == (1, 2)


def test_attention_per_stage():
    model = build_model("vgg_tiny", 3, 3, 16, attention="se")
    assert _count(model, SqueezeExcitation) == 3
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)


def test_trailing_convs_join_last_stage():
    stages, channels, strides = make_stages([8, "M", 16, 16], 3)
    assert channels == [16] and strides == [2] and len(stages) == 1
    net = build_backbone("vgg", 3, cfg=[8, "M", 16, "M", 32, 32])
    assert net.channels == [8, 32] and net.strides == [2, 4]
    assert net(torch.randn(1, 3, 8, 8))["1"].shape == (1, 32, 2, 2)


@pytest.mark.parametrize("cfg,match", [([8, "X"], "entry 1"), (["M"], "no conv"), ([], "non-empty"),
                                       ([8, -1], "entry 1")])
def test_bad_cfg(cfg, match):
    with pytest.raises(CnnkitError, match=match):
        build_model("vgg", 3, 1, 16, cfg=cfg)


def test_preset_rejects_cfg():
    with pytest.raises(CnnkitError, match='use model "vgg"'):
        build_model("vgg11", 3, 1, 16, cfg=[8, "M"])


def test_tiny_is_cheap_on_96px():
    from cnnkit.models import layer_table

    model = build_model("tiny", 10, 3, 96)
    table = layer_table(model, (1, 3, 96, 96))
    assert table["flops"] < 0.1e9
    assert table["params"] < 400_000
