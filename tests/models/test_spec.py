"""Tests for cnnkit.models.spec: building from YAML/JSON layer lists, residual blocks, errors."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import build_model, resolve_spec
from cnnkit.models.spec import Residual, load_layers

LENET_LIKE = """
layers:
  - {type: conv, out: 6, k: 5, padding: 2, act: tanh}
  - {type: pool, mode: avg, k: 2}
  - {type: conv, out: 16, k: 5, padding: 0}
  - tanh
  - {type: pool, mode: avg}
  - flatten
  - {type: linear, out: 120, act: tanh}
  - {type: linear, out: 84}
  - {type: activation, fn: tanh}
  - {type: dropout, p: 0.1}
  - {type: linear, out: num_classes}
"""


def _build(layers, classes=4, channels=1, size=16, **kw):
    return build_model("spec", classes, channels, size, layers=layers, **kw)


def test_good_spec_from_yaml(tmp_path):
    path = tmp_path / "lenet.yaml"
    path.write_text(LENET_LIKE)
    model = build_model(str(path), num_classes=10, in_channels=1, image_size=28)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.in_features for m in linears] == [400, 120, 84]  # shapes inferred, no in_features given
    assert list(model.layers._modules)[:3] == ["0", "1", "2"]  # module names are the spec indices


def test_json_list_file_and_bare_strings(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps([{"type": "conv", "out": 4, "bn": True, "act": "silu"}, "batchnorm",
                                "adaptive_avgpool", "flatten", "batchnorm", {"type": "linear"}]))
    name, kwargs = resolve_spec(path)
    model = build_model(name, 3, 2, 8, **kwargs)
    assert isinstance(model.layers[4], nn.BatchNorm1d) and isinstance(model.layers[1], nn.BatchNorm2d)
    assert model(torch.randn(2, 2, 8, 8)).shape == (2, 3)


def test_residual_blocks():
    same = {"type": "residual", "layers": [{"type": "conv", "out": 4, "bn": True, "act": "relu"},
                                           {"type": "conv", "out": 4, "bn": True}]}
    down = {"type": "residual", "layers": [{"type": "conv", "out": 8, "stride": 2, "act": "relu"},
                                           {"type": "conv", "out": 8}]}
    flat = {"type": "residual", "layers": [{"type": "linear", "out": 6}]}
    model = _build([{"type": "conv", "out": 4}, same, "relu", down, "flatten", flat, {"type": "linear"}],
                   size=7)
    assert isinstance(model.layers[1], Residual) and isinstance(model.layers[1].shortcut, nn.Identity)
    proj = model.layers[3].shortcut
    assert proj.conv.kernel_size == (1, 1) and proj.conv.stride == (2, 2) and proj.conv.out_channels == 8
    assert isinstance(model.layers[5].shortcut, nn.Linear)
    x = torch.randn(2, 1, 7, 7)
    assert model(x).shape == (2, 4)
    body = model.layers[1]
    torch.testing.assert_close(body(torch.ones(1, 4, 7, 7)) - body.body(torch.ones(1, 4, 7, 7)),
                               torch.ones(1, 4, 7, 7))


def test_dropout_argument_goes_before_last_linear():
    model = _build(["flatten", {"type": "linear", "out": 5}, {"type": "linear"}], size=4, dropout=0.2)
    names = list(model.layers._modules)
    assert names == ["0", "1", "head_dropout", "2"] and model.layers.head_dropout.p == 0.2


@pytest.mark.parametrize("layers,match", [
    ([{"type": "convv", "out": 3}], 'Layer 0 .*unknown type "convv".*Did you mean "conv"'),
    ([{"type": "conv", "out": 3, "kernel": 3}], 'Layer 0 \\(conv\\).*unknown field "kernel"'),
    ([{"type": "conv", "out": 3, "strid": 2}], 'Did you mean "stride"'),
    ([{"type": "conv"}], 'Layer 0 \\(conv\\).*needs the field "out"'),
    ([{"type": "conv", "out": -3}], 'field "out" is -3'),
    ([{"type": "pool", "mode": "min"}], 'field "mode" is .min.; use "max" or "avg"'),
    ([{"type": "activation", "fn": "reluu"}], 'field "fn"'),
    ([{"out": 3}], 'no "type" field'),
    ([3], "Layer 0"),
    (["flatten", {"type": "residual", "layers": [{"type": "lineer"}]}], 'Layer 1.0 .*Did you mean "linear"'),
    ([{"type": "linear"}], "Layer 0 \\(linear\\).*flatten"),
    (["flatten", {"type": "conv", "out": 3}], "Layer 1 \\(conv\\).*flat vector"),
    (["flatten", {"type": "linear"}, {"type": "linear"}], 'Layer 1 \\(linear\\) needs the field "out"'),
    ([{"type": "pool", "k": 4}] * 3 + ["flatten", {"type": "linear"}], "Layer 2 \\(pool\\) cannot take"),
    ([{"type": "conv", "out": 3}], "outputs shape 3x16x16"),
    ([], "non-empty"),
])
def test_errors_name_layer_and_field(layers, match):
    with pytest.raises(CnnkitError, match=match):
        _build(layers)


def test_file_errors(tmp_path):
    bad_key = tmp_path / "a.yaml"
    bad_key.write_text("layer: [flatten]\n")
    with pytest.raises(CnnkitError, match='unknown key "layer".*Did you mean "layers"'):
        load_layers(bad_key)
    broken = tmp_path / "b.json"
    broken.write_text("[{")
    with pytest.raises(CnnkitError, match="could not be read"):
        load_layers(broken)
    bad_field = tmp_path / "c.yaml"
    bad_field.write_text("- {type: conv, out: 3, bnn: true}\n")
    with pytest.raises(CnnkitError, match=r'c\.yaml.*"bnn".*Did you mean "bn"'):
        resolve_spec(str(bad_field))
    with pytest.raises(CnnkitError, match="does not exist"):
        resolve_spec(str(tmp_path / "none.yml"))
