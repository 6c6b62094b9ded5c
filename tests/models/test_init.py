"""Tests for cnnkit.models (the factories): every registered classifier and backbone, options, errors."""
from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import BACKBONES, MODELS, build_backbone, build_model, list_models, resolve_spec

torch.set_num_threads(1)
CLASSIFIERS = list_models(task="classify")
# the backbones this package registers (detection/segmentation modules may add their own)
OWN_BACKBONES = [name for name in BACKBONES if name in CLASSIFIERS]


@pytest.mark.parametrize("channels,size", [(1, 8), (3, 16)])
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_forward_backward(name, channels, size):
    torch.manual_seed(0)
    dropout = 0.3 if channels == 1 else None  # `dropout` must reach every classifier
    model = build_model(name, num_classes=7, in_channels=channels, image_size=size, dropout=dropout)
    if dropout:
        assert any(isinstance(m, nn.Dropout) and m.p == dropout for m in model.modules())
    x = torch.randn(2, channels, size, size)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name}: parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "vgg_tiny", "tiny", "se_resnet20"])
def test_four_channels_non_square(name):
    model = build_model(name, num_classes=3, in_channels=4, image_size=(12, 20)).eval()
    assert model(torch.randn(1, 4, 12, 20)).shape == (1, 3)


def test_registry_meta():
    assert "spec" in list_models() and "spec" not in CLASSIFIERS
    for name in CLASSIFIERS:
        meta = MODELS.meta(name)
        assert meta["tasks"] == ("classify",)
        assert isinstance(meta["doc"], str) and meta["doc"] and "\n" not in meta["doc"]
        assert meta["backbone"] == (name in BACKBONES), name
    assert list_models("resnet2*") == ["resnet20"]
    assert set(list_models("*resnet20")) == {"resnet20", "se_resnet20", "cbam_resnet20"}
    assert "lenet5" not in list_models(task="detect")


def test_backbone_support_required_by_others():
    assert {"tiny", "resnet18", "resnet20", "vgg_tiny"} <= set(OWN_BACKBONES)


@pytest.mark.parametrize("name", OWN_BACKBONES)
def test_backbone_maps(name):
    net = build_backbone(name, in_channels=1)
    out = net(torch.randn(1, 1, 64, 64))
    assert isinstance(out, OrderedDict)
    assert list(out) == [str(i) for i in range(len(net.channels))]
    assert len(net.strides) == len(net.channels) >= 3
    assert all(a < b for a, b in zip(net.strides, net.strides[1:])), net.strides
    for fmap, c, s in zip(out.values(), net.channels, net.strides):
        assert fmap.shape == (1, c, 64 // s, 64 // s)


def test_backbone_options():
    net = build_backbone("resnet18", 3, attention="se", image_size=32)
    assert net.strides == [1, 2, 4, 8]  # small-image stem
    assert build_backbone("resnet18", 3).strides == [4, 8, 16, 32]
    tiny = build_backbone("tiny", 3, widths=(8, 16, 24))
    assert tiny.channels == [8, 16, 24] and tiny.strides == [2, 4, 8]
    assert build_backbone("vgg", 3, cfg=[8, "M", 16, "M", 32]).channels == [8, 32]
    with pytest.raises(CnnkitError, match='no option "depth"'):
        build_backbone("tiny", 3, depth=3)
    with pytest.raises(CnnkitError, match='Did you mean "tiny"'):
        build_backbone("tiny2", 3)


def test_resolve_spec_and_rebuild(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("layers:\n  - {type: conv, out: 4, act: relu}\n  - adaptive_avgpool\n  - flatten\n"
                    "  - {type: linear}\n")
    assert resolve_spec("resnet20") == ("resnet20", {})
    name, kwargs = resolve_spec(str(path))
    assert name == "spec"
    stored = json.loads(json.dumps(kwargs))  # plain values: survive a checkpoint's JSON/pickle-free meta
    torch.manual_seed(0)
    a = build_model(str(path), 3, 2, 10).eval()
    b = build_model("spec", 3, 2, 10, **stored).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 2, 10, 10)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "resnet200"}, 'Did you mean "resnet20"'),
    ({"name": "lenet5", "attention": "se"}, "no attention option"),
    ({"name": "resnet20", "attention": "sel"}, 'Did you mean "se"'),
    ({"name": "lenet5", "stlye": "classic"}, 'Did you mean "style"'),
    ({"name": "lenet5", "dropout": 1.5}, "dropout"),
    ({"name": "spec", "layers": ["flatten", {"type": "linear"}], "attention": "se"}, "no attention option"),
    ({"name": "lenet5", "num_classes": 0}, "num_classes"),
    ({"name": "se_resnet20", "attention": "cbam"}, "already uses se"),
    ({"name": "spec"}, "layer list"),
    ({"name": "missing.yaml"}, "does not exist"),
])
def test_build_model_errors(kwargs, match):
    args = {"num_classes": 3, "in_channels": 1, "image_size": 16, **kwargs}
    with pytest.raises(CnnkitError, match=match):
        build_model(**args)


def test_attention_none_string_is_accepted():
    a = build_model("resnet20", 3, 1, 8, attention="none")
    b = build_model("resnet20", 3, 1, 8)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
