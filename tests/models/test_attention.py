"""Tests for cnnkit.models.attention: SE and CBAM against hand-written float64 formulas."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import SqueezeExcitation

from cnnkit.errors import CnnkitError
from cnnkit.models.attention import CBAM, SE, make_attention


def test_make_attention_kinds():
    assert isinstance(make_attention(None, 8), nn.Identity)
    assert isinstance(make_attention("none", 8), nn.Identity)
    assert isinstance(make_attention("se", 8), SqueezeExcitation)
    assert isinstance(make_attention("CBAM", 8), CBAM)
    with pytest.raises(CnnkitError, match='Did you mean "cbam"'):
        make_attention("cbma", 8)


def test_se_matches_formula():
    torch.manual_seed(0)
    se = SE(32).double()
    x = torch.randn(2, 32, 5, 5, dtype=torch.float64)
    s = x.mean(dim=(2, 3))
    hidden = torch.relu(s @ se.fc1.weight[:, :, 0, 0].T + se.fc1.bias)
    scale = torch.sigmoid(hidden @ se.fc2.weight[:, :, 0, 0].T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * scale[:, :, None, None])
    assert se.fc1.out_channels == 8  # max(8, 32 // 16)


def test_cbam_matches_formula():
    torch.manual_seed(0)
    cbam = CBAM(16).double()
    x = torch.randn(2, 16, 6, 6, dtype=torch.float64)
    w1, b1 = cbam.channel.mlp[0].weight[:, :, 0, 0], cbam.channel.mlp[0].bias
    w2, b2 = cbam.channel.mlp[2].weight[:, :, 0, 0], cbam.channel.mlp[2].bias

    def mlp(v):
        return torch.relu(v @ w1.T + b1) @ w2.T + b2

    ch = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))[:, :, None, None]
    y = x * ch
    desc = torch.stack([y.mean(1), y.amax(1)], dim=1)
    sp = torch.sigmoid(torch.nn.functional.conv2d(desc, cbam.spatial.conv.weight, cbam.spatial.conv.bias, padding=3))
    torch.testing.assert_close(cbam(x), y * sp)


@pytest.mark.parametrize("kind", ["se", "cbam"])
def test_shapes_kept_and_gradients_flow(kind):
    block = make_attention(kind, 12)
    x = torch.randn(2, 12, 3, 3, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in block.parameters())
