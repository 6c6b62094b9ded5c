"""Tests for cnnkit.models.smallcnn: layout, counts against hand-computed references, sizes, errors."""
from __future__ import annotations

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.models import MODELS, build_model, layer_table, list_models


def test_layout_and_counts_on_28x28():
    model = build_model("smallcnn", num_classes=10, in_channels=1, image_size=28)
    table = layer_table(model, (1, 1, 28, 28))
    shapes = {r["name"]: r["output_shape"] for r in table["rows"]}
    assert shapes["features.stage1.pool"] == [1, 16, 14, 14]
    assert shapes["features.stage2.pool"] == [1, 64, 7, 7]
    assert shapes["hidden.1"] == [1, 256]
    assert shapes["head.fc"] == [1, 10]
    # convs without bias (BN follows): 1*16*9 + 16*64*9; BN 2*(16+64); linears 3136*256+256, 256*10+10
    assert sum(p.numel() for p in model.parameters()) == 144 + 9_216 + 160 + 803_072 + 2_570
    # multiply-adds: 28*28*16*9 + 14*14*64*16*9 + 3136*256 + 256*10, 2 FLOPs each
    assert table["flops"] == 2 * (28 * 28 * 16 * 9 + 14 * 14 * 64 * 16 * 9 + 3136 * 256 + 256 * 10)


@pytest.mark.parametrize("size,flat", [(28, 64 * 7 * 7), (32, 64 * 8 * 8), (8, 64 * 2 * 2), (4, 64)])
def test_head_is_sized_from_the_image(size, flat):
    model = build_model("smallcnn", num_classes=3, in_channels=3, image_size=size).eval()
    assert model.hidden[1].in_features == flat
    assert model(torch.zeros(2, 3, size, size)).shape == (2, 3)


def test_widths_hidden_and_dropout_are_keywords():
    model = build_model("smallcnn", num_classes=5, in_channels=1, image_size=16,
                        widths=[8, 16, 32], hidden=64, dropout=0.2)
    assert model.hidden[1].in_features == 32 * 2 * 2 and model.head.dropout.p == 0.2
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 5)


def test_two_convs_per_stage_is_the_vgg_layout():
    model = build_model("smallcnn", num_classes=10, in_channels=1, image_size=28, widths=[32, 64, 128], convs=2)
    table = layer_table(model, (1, 1, 28, 28))
    shapes = {r["name"]: r["output_shape"] for r in table["rows"]}
    assert shapes["features.stage1.conv2.2"] == [1, 32, 28, 28] and shapes["features.stage3.pool"] == [1, 128, 3, 3]
    convs = [(1, 32, 28), (32, 32, 28), (32, 64, 14), (64, 64, 14), (64, 128, 7), (128, 128, 7)]
    # bias-free convs, BN weight + bias, linears 1152*256+256 and 256*10+10
    assert sum(p.numel() for p in model.parameters()) == (
        sum(i * o * 9 for i, o, _ in convs) + sum(2 * o for _, o, _ in convs) + 1152 * 256 + 256 + 2_570)
    assert table["flops"] == 2 * (sum(s * s * i * o * 9 for i, o, s in convs) + 1152 * 256 + 256 * 10)


def test_one_conv_keeps_the_saved_layer_names():
    names = set(build_model("smallcnn", num_classes=2, in_channels=1, image_size=28).state_dict())
    assert "features.stage1.conv.0.weight" in names


@pytest.mark.parametrize("convs", [0, -1, 1.5, "2", True, None])
def test_bad_convs_are_one_sentence(convs):
    with pytest.raises(CnnkitError, match="convs per stage, got .*convs="):
        build_model("smallcnn", num_classes=2, in_channels=1, image_size=28, convs=convs)


def test_too_small_an_image_is_one_sentence():
    with pytest.raises(CnnkitError, match="at least 4 px, got 3x3"):
        build_model("smallcnn", num_classes=2, in_channels=1, image_size=3)


def test_registered_for_classification():
    assert "smallcnn" in list_models(task="classify")
    assert "smallcnn" in MODELS.list(task="classify")


@pytest.mark.parametrize("widths, hidden", [([0], 256), ([], 256), ("abc", 256), ("16", 256), (["a"], 256), (8, 256),
                                            ([16], "x"), ([16], 0)])
def test_bad_widths_or_hidden_are_one_sentence(widths, hidden):
    with pytest.raises(CnnkitError, match="smallcnn needs positive widths, hidden units and convs per stage"):
        build_model("smallcnn", num_classes=2, in_channels=1, image_size=28, widths=widths, hidden=hidden)
