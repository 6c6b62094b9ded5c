"""The models package: one registry of classifiers (`MODELS`), one of feature backbones
(`BACKBONES`), and the factories the tasks call.

    build_model("resnet20", num_classes=10, in_channels=3, image_size=32, attention="se")
    build_model("my_net.yaml", ...)             # a layer-list spec file (see spec.py)
    build_backbone("tiny", in_channels=3)       # forward(x) -> OrderedDict of stage feature maps
    list_models("resnet*", task="classify")

Every classifier is registered with meta `tasks`, `backbone` (True when `BACKBONES` has the same
name), `attention` (True when it takes `attention=`) and a one-line `doc`.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.registry import Registry

MODELS = Registry("model")
BACKBONES = Registry("backbone")

# The model modules register themselves on import (they need MODELS/BACKBONES defined above).
from cnnkit.models import lenet as _lenet  # noqa: F401,E402
from cnnkit.models import resnet as _resnet  # noqa: F401,E402
from cnnkit.models import smallcnn as _smallcnn  # noqa: F401,E402
from cnnkit.models import spec as _spec  # noqa: F401,E402
from cnnkit.models import vgg as _vgg  # noqa: F401,E402
from cnnkit.models import seq_cnn as _seq_cnn  # noqa: F401,E402  1-D CNNs over tokens
from cnnkit.models.attention import check_attention, make_attention  # noqa: E402
from cnnkit.models.info import layer_table, render_table  # noqa: E402

__all__ = ["MODELS", "BACKBONES", "build_model", "build_backbone", "list_models", "resolve_spec",
           "make_attention", "layer_table", "render_table"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def resolve_spec(name_or_path: str | Path) -> tuple[str, dict[str, Any]]:
    """(registered name, extra builder kwargs) for a model name or a layer-list file.

    A path to a YAML/JSON file becomes ("spec", {"layers": [...]}) — plain values that a
    checkpoint can store and `build_model("spec", ..., layers=[...])` can rebuild without the file.
    Any other string is returned unchanged with no kwargs.
    """
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise CnnkitError(f"model.name must be a model name or a spec file path, got {name_or_path!r}; "
                          "see `cnnkit models` for the names.")
    text = str(name_or_path)
    path = Path(text)
    if isinstance(name_or_path, Path) or path.suffix.lower() in SPEC_SUFFIXES or (
            ("/" in text or "\\" in text) and path.is_file()):
        return "spec", {"layers": _spec.load_layers(path)}
    return text, {}


def _check_options(kind: str, name: str, builder: Callable[..., Any], given: dict[str, Any],
                   fixed: Sequence[str]) -> None:
    """CnnkitError for a keyword the builder does not take, listing the ones it does."""
    params = inspect.signature(builder).parameters
    options = [p for p in params if p not in fixed]
    for key in given:
        if key not in params:
            raise CnnkitError(f'{kind.capitalize()} "{name}" has no option "{key}".{did_you_mean(key, options)} '
                              f"Its options: {', '.join(options) or '(none)'}.")


def _check_positive(**values: Any) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CnnkitError(f"{key} must be a positive integer, got {value!r}.")


def build_model(name: str | Path, num_classes: int, in_channels: int, image_size: int | Sequence[int],
                dropout: float | None = None, attention: str | None = None, **kwargs: Any) -> nn.Module:
    """A model from `MODELS` for N x in_channels x H x W images.

    Classifiers return N x num_classes logits; the segmentation/detection models registered by
    their own modules keep torchvision's contracts and are built through here too.

    Args:
        name: a registered name (`list_models()`) or a path to a YAML/JSON layer-list file.
        image_size: the training image side (int) or (height, width); models adapt their
            padding, stem or flatten size to it.
        dropout: probability of the dropout before the final linear layer; None = model default (0).
        attention: "se", "cbam" or None, for models whose builder takes `attention`.
        **kwargs: model-specific options (e.g. style="classic" for lenet5, cfg=[...] for vgg).
    """
    name, spec_kwargs = resolve_spec(name)
    kwargs = {**spec_kwargs, **kwargs}
    builder = MODELS.get(name)
    size = image_size if isinstance(image_size, (list, tuple)) else [image_size]
    if isinstance(image_size, (list, tuple)) and len(size) != 2:
        raise CnnkitError(f"image_size must be one integer or (height, width), got {image_size!r}.")
    _check_positive(num_classes=num_classes, in_channels=in_channels)
    for side in size:
        _check_positive(image_size=side)
    takes = inspect.signature(builder).parameters
    if dropout is not None:
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise CnnkitError(f"model.dropout must be a number in [0, 1), got {dropout!r}.")
        if "dropout" in takes:
            kwargs["dropout"] = float(dropout)
        elif dropout > 0:  # a zero dropout asks for nothing, so models without one accept it
            raise CnnkitError(f'Model "{name}" has no dropout option; set model.dropout to 0 or none.')
    attention = check_attention(attention)
    if attention is not None:
        if "attention" not in takes:
            with_attention = ", ".join(n for n in MODELS.list(task="classify") if MODELS.meta(n).get("attention"))
            raise CnnkitError(f'Model "{name}" has no attention option; set model.attention to none, or use '
                              f"one of: {with_attention}.")
        kwargs["attention"] = attention
    _check_options("model", name, builder, kwargs, ("num_classes", "in_channels", "image_size"))
    return builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)


def build_backbone(name: str, in_channels: int, attention: str | None = None, **kw: Any) -> nn.Module:
    """A feature extractor whose forward(x) returns an OrderedDict "0", "1", ... of stage maps.

    The module has `.channels` and `.strides` (one per map, strides increasing). Extra options:
    `image_size=` (ResNets pick their stem from it), `stem=`, `widths=` (tiny), `cfg=` (vgg).
    """
    builder = BACKBONES.get(name)
    _check_positive(in_channels=in_channels)
    _check_options("backbone", name, builder, kw, ("in_channels", "attention"))
    return builder(in_channels=in_channels, attention=check_attention(attention), **kw)


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Sorted registered names matching a shell-style pattern, optionally only those for `task`."""
    return MODELS.list(pattern) if task is None else MODELS.list(pattern, task=task)


# Task heads built over the backbones above; imported last because they use build_backbone.
from cnnkit.models import detection as _detection  # noqa: F401,E402  detectors over the backbones
from cnnkit.models import segmentation as _segmentation  # noqa: F401,E402  segmenters over the backbones
