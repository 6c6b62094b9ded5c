"""Build a CNN from a YAML/JSON layer list — no code, no `eval`, every field checked.

    layers:                       # or the file is just the list
      - {type: conv, out: 6, k: 5, act: tanh}
      - {type: pool, mode: avg, k: 2}
      - {type: residual, layers: [{type: conv, out: 16, bn: true, act: relu}, {type: conv, out: 16, bn: true}]}
      - relu                      # a bare string is a layer with no fields
      - adaptive_avgpool
      - flatten
      - {type: linear, out: 84, act: relu}
      - {type: linear}            # the last linear's `out` defaults to num_classes

Layer types and fields (defaults in brackets):
    conv              out, k [3], stride [1], padding [k//2], bn [false], act [none]
    pool              mode max|avg [max], k [2], stride [k]
    batchnorm         (none; 2d or 1d from the input)
    activation        fn relu|gelu|tanh|sigmoid|silu|leaky_relu   (or use the name as the type)
    dropout           p [0.5]
    flatten           (none)
    linear            out [num_classes on the last linear], act [none]
    adaptive_avgpool  size [1]
    residual          layers (a nested list); the skip gets a 1x1 conv + BN (or a linear)
                      when the block changes the shape

Input shapes are inferred by running a zero tensor through each layer as it is built, so no
layer needs `in_channels`/`in_features`, and a layer that cannot take its input fails with its
index. Before a layer is built its sizes are checked against its input and against CAPS (kernel
and stride <= 64, padding <= kernel, out <= 16384 channels/features, adaptive size <= 1024, and for
the whole list <= 5e8 parameters, <= 2^28 values in any layer's output per image, <= 1e11 FLOPs per
image), so a typo such as `k: 3000` or `out: 1e11` is one sentence instead of minutes of work
or a terabyte allocation. Raise a cap with `--set model.kwargs.caps={params: 2000000000}`.
The module names in the built model are the layer indices ("layers.3", "layers.4.body.0").
"""
from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.models import MODELS
from cnnkit.models.layers import ACTIVATIONS, image_hw, init_weights, make_activation

REQUIRED = object()
FIELDS: dict[str, dict[str, Any]] = {
    "conv": {"out": REQUIRED, "k": 3, "stride": 1, "padding": None, "bn": False, "act": None},
    "pool": {"mode": "max", "k": 2, "stride": None},
    "batchnorm": {},
    "activation": {"fn": REQUIRED},
    "dropout": {"p": 0.5},
    "flatten": {},
    "linear": {"out": None, "act": None},
    "adaptive_avgpool": {"size": 1},
    "residual": {"layers": REQUIRED},
}
TYPES = list(FIELDS) + list(ACTIVATIONS)  # an activation name is also a layer type


def _is_int(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


# field -> (check, what a good value looks like)
CHECKS: dict[str, tuple[Any, str]] = {
    "out": (lambda v: _is_int(v, 1), "a positive integer"),
    "k": (lambda v: _is_int(v, 1), "a positive integer"),
    "stride": (lambda v: v is None or _is_int(v, 1), "a positive integer"),
    "padding": (lambda v: v is None or _is_int(v, 0), "an integer >= 0"),
    "size": (lambda v: _is_int(v, 1), "a positive integer"),
    "bn": (lambda v: isinstance(v, bool), "true or false"),
    "act": (lambda v: v is None or v in ACTIVATIONS, "one of " + ", ".join(ACTIVATIONS) + " (or null)"),
    "fn": (lambda v: v in ACTIVATIONS, "one of " + ", ".join(ACTIVATIONS)),
    "mode": (lambda v: v in ("max", "avg"), '"max" or "avg"'),
    "p": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1, "a number in [0, 1)"),
    "layers": (lambda v: isinstance(v, list) and len(v) > 0, "a non-empty list of layers"),
}


def normalize(item: Any, where: str, source: str = "the layer list") -> tuple[str, dict[str, Any]]:
    """(type, fields with defaults filled) for one layer entry, or CnnkitError naming the field."""
    if isinstance(item, str):
        item = {"type": item}
    if not isinstance(item, dict):
        raise CnnkitError(f"Layer {where} in {source} is {item!r}; write each layer as a mapping like "
                          "{type: conv, out: 32} or a bare type name like flatten.")
    kind = item.get("type")
    if kind not in TYPES:
        hint = did_you_mean(kind, TYPES) if isinstance(kind, str) else ""
        what = f'unknown type "{kind}"' if "type" in item else 'no "type" field'
        raise CnnkitError(f"Layer {where} in {source} has {what}.{hint} Layer types: {', '.join(TYPES)}.")
    fields: dict[str, Any] = {"fn": kind} if kind in ACTIVATIONS else {}
    allowed = FIELDS["activation" if kind in ACTIVATIONS else kind]
    for key, value in item.items():
        if key == "type":
            continue
        if key not in allowed or kind in ACTIVATIONS:
            choices = list(allowed) if kind not in ACTIVATIONS else []
            raise CnnkitError(f'Layer {where} ({kind}) in {source} has unknown field "{key}".'
                              f"{did_you_mean(key, choices)} Its fields: {', '.join(choices) or '(none)'}.")
        check, good = CHECKS[key]
        if key == "out" and kind == "linear" and value == "num_classes":
            pass
        elif not check(value):
            raise CnnkitError(f'Layer {where} ({kind}) in {source}: field "{key}" is {value!r}; use {good}.')
        fields[key] = value
    for key, default in allowed.items():
        if key not in fields:
            if default is REQUIRED:
                raise CnnkitError(f'Layer {where} ({kind}) in {source} needs the field "{key}".')
            fields[key] = default
    if kind == "residual":
        for j, sub in enumerate(fields["layers"]):
            normalize(sub, f"{where}.{j}", source)
    return ("activation" if kind in ACTIVATIONS else kind), fields


def check_layers(layers: Any, source: str = "the layer list") -> list[Any]:
    """Validate a whole layer list (types and fields, recursively); returns it unchanged."""
    if not isinstance(layers, list) or not layers:
        raise CnnkitError(f"{source} must hold a non-empty list of layers (or a mapping with `layers:`), "
                          f"got {type(layers).__name__}.")
    for i, item in enumerate(layers):
        normalize(item, str(i), source)
    return layers


def load_layers(path: str | Path) -> list[Any]:
    """The validated layer list from a YAML or JSON file (plain values, safe to store in a checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(f"Model spec file {path} does not exist; give a registered model name "
                          "(see `cnnkit models`) or the path to a YAML/JSON layer list.")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CnnkitError(f"Model spec file {path} could not be read ({first}); fix the syntax.") from None
    if isinstance(data, dict):
        extra = [k for k in data if k not in ("layers", "name", "description")]
        if extra:
            raise CnnkitError(f'Model spec file {path} has unknown key "{extra[0]}".'
                              f"{did_you_mean(extra[0], ['layers', 'name', 'description'])} "
                              "Use layers: (and optionally name:, description:).")
        data = data.get("layers")
    return check_layers(data, str(path))


class Residual(nn.Module):
    """`body(x) + shortcut(x)`; the shortcut is the identity unless the body changes the shape."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Module):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def _module(kind: str, f: dict[str, Any], shape: tuple[int, ...], where: str, num_classes: int,
            last_linear: bool) -> nn.Module:
    spatial = len(shape) == 3
    need_map = f"Layer {where} ({kind}) needs a C x H x W feature map but gets a flat vector of {shape[0]}"
    if kind in ("conv", "pool", "adaptive_avgpool") and not spatial:
        raise CnnkitError(need_map + "; move it before flatten.")
    if kind == "conv":
        k = f["k"]
        parts = [("conv", nn.Conv2d(shape[0], f["out"], k, f["stride"] or 1,
                                    k // 2 if f["padding"] is None else f["padding"], bias=not f["bn"]))]
        if f["bn"]:
            parts.append(("bn", nn.BatchNorm2d(f["out"])))
        if f["act"]:
            parts.append(("act", make_activation(f["act"])))
        return nn.Sequential(OrderedDict(parts)) if len(parts) > 1 else parts[0][1]
    if kind == "pool":
        pool = nn.MaxPool2d if f["mode"] == "max" else nn.AvgPool2d
        return pool(f["k"], f["stride"] or f["k"])
    if kind == "batchnorm":
        return nn.BatchNorm2d(shape[0]) if spatial else nn.BatchNorm1d(shape[0])
    if kind == "activation":
        return make_activation(f["fn"])
    if kind == "dropout":
        return nn.Dropout(f["p"])
    if kind == "flatten":
        return nn.Flatten()
    if kind == "adaptive_avgpool":
        return nn.AdaptiveAvgPool2d(f["size"])
    if kind == "linear":
        if spatial:
            raise CnnkitError(f"Layer {where} (linear) gets a {'x'.join(map(str, shape))} feature map; "
                              "put a flatten layer (or adaptive_avgpool then flatten) before it.")
        out = f["out"]
        if out is None or out == "num_classes":
            if not last_linear:
                raise CnnkitError(f'Layer {where} (linear) needs the field "out" (only the last linear '
                                  "may leave it out to mean num_classes).")
            out = num_classes
        lin = nn.Linear(shape[0], out)
        return nn.Sequential(OrderedDict([("linear", lin), ("act", make_activation(f["act"]))])) if f["act"] else lin
    raise AssertionError(kind)  # normalize() only lets known kinds through


def _shortcut(shape_in: tuple[int, ...], shape_out: tuple[int, ...], where: str) -> nn.Module:
    if shape_in == shape_out:
        return nn.Identity()
    if len(shape_in) != len(shape_out):
        raise CnnkitError(f"Residual layer {where} turns a feature map into a vector; keep flatten outside "
                          "residual blocks.")
    if len(shape_in) == 1:
        return nn.Linear(shape_in[0], shape_out[0])
    stride = -(-shape_in[1] // shape_out[1])  # ceil: the 1x1 conv output is floor((H-1)/s)+1
    if (shape_in[1] - 1) // stride + 1 != shape_out[1] or (shape_in[2] - 1) // stride + 1 != shape_out[2]:
        raise CnnkitError(f"Residual layer {where} maps {'x'.join(map(str, shape_in))} to "
                          f"{'x'.join(map(str, shape_out))}, which a strided 1x1 skip cannot match; "
                          "shrink height and width by the same factor inside the block.")
    return nn.Sequential(OrderedDict([("conv", nn.Conv2d(shape_in[0], shape_out[0], 1, stride, bias=False)),
                                      ("bn", nn.BatchNorm2d(shape_out[0]))]))


@torch.no_grad()
def _run(module: nn.Module, x: torch.Tensor, kind: str, where: str) -> torch.Tensor:
    module.eval()  # batchnorm on a 1-image batch needs eval mode
    try:
        return module(x)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[0][:200]
        raise CnnkitError(f"Layer {where} ({kind}) cannot take an input of shape "
                          f"{'x'.join(map(str, x.shape[1:]))} ({reason}); use a smaller kernel/stride or "
                          "fewer pools, or a larger data.image_size.") from None


CAPS = {"kernel": 64, "channels": 16384, "size": 1024, "params": 500_000_000, "activation": 1 << 28,
        "flops": 100_000_000_000}


def _check_sizes(kind: str, f: dict[str, Any], shape: tuple[int, ...], where: str, caps: dict[str, float],
                 used: dict[str, float], num_classes: int) -> None:
    """The layer's sizes against its input `shape` and `caps`, computed before anything is allocated;
    `used` accumulates parameters and FLOPs over the list. CnnkitError naming the layer, field and value."""
    def refuse(what: str, value: Any, rule: str) -> None:
        raise CnnkitError(f"Layer {where} ({kind}): {what} {value} {rule}; fix the layer list"
                          f"{' or raise model.kwargs.caps' if 'cap' in rule else ''}.")

    for key, cap in (("k", "kernel"), ("stride", "kernel"), ("out", "channels"), ("size", "size")):
        value = f.get(key)
        if isinstance(value, int) and value > caps[cap]:
            refuse(f"field \"{key}\" is", value, f"above the cap of {caps[cap]:g} ({cap})")
    out_shape, params, flops = shape, 0, 0
    if kind in ("conv", "pool") and len(shape) == 3:
        k, stride = f["k"], f["stride"] or (1 if kind == "conv" else f["k"])
        pad = (k // 2 if f["padding"] is None else f["padding"]) if kind == "conv" else 0
        if pad > k:
            refuse('field "padding" is', pad, f"larger than its kernel {k}")
        h, w = ((s + 2 * pad - k) // stride + 1 for s in shape[1:])
        if h < 1 or w < 1:
            raise CnnkitError(f"Layer {where} ({kind}) cannot take an input of shape {'x'.join(map(str, shape))} "
                              f"(kernel {k} with padding {pad} is larger than it); use a smaller kernel/stride or "
                              "fewer pools, or a larger data.image_size.")
        c = f["out"] if kind == "conv" else shape[0]
        out_shape = (c, h, w)
        if kind == "conv":
            params = shape[0] * c * k * k
            flops = 2 * params * h * w
    elif kind == "linear" and len(shape) == 1:
        out = f["out"] if isinstance(f["out"], int) else num_classes
        out_shape, params = (out,), shape[0] * out
        flops = 2 * params
    elif kind == "adaptive_avgpool" and len(shape) == 3:
        out_shape = (shape[0], f["size"], f["size"])
    used["params"] = used.get("params", 0) + params
    used["flops"] = used.get("flops", 0) + flops
    values = 1
    for n in out_shape:
        values *= n
    for name, what, total in (("params", "the list's parameters reach", used["params"]),
                              ("flops", "the list's FLOPs per image reach", used["flops"]),
                              ("activation", "its output of shape " + "x".join(map(str, out_shape)) + " holds",
                               values)):
        if total > caps[name]:
            refuse(what, f"{total:.3g}", f"values, above the cap of {caps[name]:g} ({name})"
                   if name == "activation" else f"here, above the cap of {caps[name]:g} ({name})")


def build_layers(layers: Sequence[Any], x: torch.Tensor, num_classes: int, prefix: str = "",
                 dropout: float = 0.0, caps: dict[str, float] | None = None,
                 used: dict[str, float] | None = None) -> tuple[nn.Sequential, torch.Tensor]:
    """An nn.Sequential named by layer index, and the zero tensor after it (its shape is the output).
    Each layer's sizes are checked against `caps` (default CAPS) before it is built."""
    caps, used = {**CAPS, **(caps or {})}, {} if used is None else used
    kinds = [normalize(item, f"{prefix}{i}") for i, item in enumerate(layers)]
    last = max((i for i, (k, _) in enumerate(kinds) if k == "linear"), default=-1) if not prefix else -1
    mods: list[tuple[str, nn.Module]] = []
    for i, (kind, f) in enumerate(kinds):
        where = f"{prefix}{i}"
        if kind == "residual":
            body, y = build_layers(f["layers"], x, num_classes, prefix=f"{where}.", caps=caps, used=used)
            module: nn.Module = Residual(body, _shortcut(tuple(x.shape[1:]), tuple(y.shape[1:]), where))
        else:
            _check_sizes(kind, f, tuple(x.shape[1:]), where, caps, used, num_classes)
            module = _module(kind, f, tuple(x.shape[1:]), where, num_classes, last_linear=i == last)
        if i == last and dropout > 0:
            mods.append(("head_dropout", nn.Dropout(dropout)))
        x = _run(module, x, kind, where)
        mods.append((str(i), module))
    return nn.Sequential(OrderedDict(mods)), x


class SpecNet(nn.Module):
    """A classifier whose `layers` come from a layer list; `spec` keeps that list (plain values)."""

    def __init__(self, layers: list[Any], num_classes: int, in_channels: int, image_size: int | Sequence[int],
                 dropout: float = 0.0, caps: dict[str, float] | None = None):
        super().__init__()
        check_layers(layers)
        self.spec = layers
        h, w = image_hw(image_size)
        caps = _check_caps(caps)
        if in_channels * h * w > caps["activation"]:
            raise CnnkitError(f"The input {in_channels}x{h}x{w} holds more values than the cap of "
                              f"{caps['activation']:g} (activation); use a smaller data.image_size.")
        self.layers, y = build_layers(layers, torch.zeros(1, in_channels, h, w), num_classes, dropout=dropout,
                                      caps=caps)
        if tuple(y.shape[1:]) != (num_classes,):
            raise CnnkitError(f"The layer list outputs shape {'x'.join(map(str, y.shape[1:]))} but the data has "
                              f"{num_classes} classes; end it with flatten and a linear layer without `out`.")
        init_weights(self)
        final = [m for m in self.layers.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.normal_(final.weight, std=0.01)  # near-zero first logits, as the registered heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@MODELS.register("spec", tasks=(), backbone=False,
                 doc="a CNN from a YAML/JSON layer list: pass the file path as the model name")
def spec(num_classes: int, in_channels: int, image_size: int | Sequence[int], dropout: float = 0.0,
         layers: list[Any] | None = None, caps: dict[str, float] | None = None) -> SpecNet:
    if layers is None:
        raise CnnkitError('Model "spec" needs a layer list: give the path to a YAML/JSON file as the model name.')
    return SpecNet(layers, num_classes, in_channels, image_size, dropout, caps)


def _check_caps(caps: Any) -> dict[str, float]:
    """CAPS updated with the user's `model.kwargs.caps` ({name: positive number})."""
    if caps is None:
        return dict(CAPS)
    bad = [k for k in (caps if isinstance(caps, dict) else {None: None})
           if k not in CAPS or isinstance(caps[k], bool) or not isinstance(caps[k], (int, float)) or not caps[k] > 0]
    if bad:
        raise CnnkitError(f"model.kwargs.caps must map some of {', '.join(CAPS)} to positive numbers; "
                          f"got {caps!r}.")
    return {**CAPS, **caps}
