"""Tests for cnnkit.models.info: per-layer shapes, parameter totals, FLOPs against hand counts."""
from __future__ import annotations

import pytest
from rich.console import Console
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import build_model, layer_table, render_table


def test_single_conv_flops_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1))
    table = layer_table(model, (1, 3, 15, 15))
    hout = wout = 8  # floor((15 + 2 - 3) / 2) + 1
    assert table["flops"] == 2 * 3 * 8 * 3 * 3 * hout * wout
    assert table["rows"] == [{"name": "0", "type": "Conv2d", "output_shape": [1, 8, 8, 8],
                              "params": 3 * 8 * 9 + 8, "flops": table["flops"]}]


def test_single_linear_flops_by_hand():
    table = layer_table(nn.Sequential(nn.Flatten(), nn.Linear(48, 10)), (2, 3, 4, 4))
    assert table["flops"] == 2 * 2 * 48 * 10  # batch 2
    assert table["rows"][1]["output_shape"] == [2, 10]


def test_totals_and_trainable():
    model = build_model("resnet20", 10, 3, 16)
    for p in model.stem.parameters():
        p.requires_grad_(False)
    table = layer_table(model, (1, 3, 16, 16))
    assert table["params"] == sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for p in model.stem.parameters())
    assert table["trainable_params"] == table["params"] - frozen
    assert sum(r["params"] for r in table["rows"]) == table["params"]
    assert sum(r["flops"] for r in table["rows"]) == table["flops"]  # every conv/linear is a row
    assert table["output_shape"] == [1, 10]
    assert all(r["output_shape"] for r in table["rows"])


def test_mode_restored_and_bad_input():
    model = build_model("lenet5", 10, 1, 32).train()
    layer_table(model, (1, 1, 32, 32))
    assert model.training
    with pytest.raises(CnnkitError, match="cannot run"):
        layer_table(model, (1, 3, 32, 32))
    with pytest.raises(CnnkitError, match="four positive"):
        layer_table(model, (1, 32, 32))


def test_render_table():
    table = layer_table(build_model("lenet5", 10, 1, 32), (1, 1, 32, 32))
    console = Console(record=True, width=300)
    console.print(render_table(table))
    text = console.export_text()
    assert "features.c1" in text and "61,706" in text and "Total" in text and "multiply-add" in text
