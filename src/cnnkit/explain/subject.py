"""The model being explained, with what explain needs around it: task, what the model answers
with (`Task.output`), class names, how an image becomes model input, the reference inputs
(baselines), and its layers.

Built from a run directory / checkpoint (through `cnnkit.engine.predictor.load`, so an image
becomes model input exactly as in `cnnkit predict`: the task's `model_input`) or from a bare
`nn.Module` (what it answers with is read from its output; images are scaled to 0..1).
Images given as files are decoded to the model's channel count, the same way for the Python
API and the CLI (`as_images`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from cnnkit.errors import CnnkitError
from cnnkit.explain.layers import auto_layer, first_convs, get_layer, layer_geometry, valid_fraction
from cnnkit.explain.targets import detector_outputs, infer_output, model_logits

BASELINES = ("black", "zero", "blur")  # named reference inputs for integrated gradients and occlusion


def _scale(images: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([im.float() / 255.0 if im.dtype == torch.uint8 else im.float() for im in images])


@dataclass
class Subject:
    model: nn.Module
    task: str
    output: str  # what the model answers with: "logits", "boxes" or "pixel_logits" (Task.output)
    classes: list[str]
    preprocess: Callable[[list[torch.Tensor]], torch.Tensor]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    channels: int | None = None
    _layers: dict[str, str] = field(default_factory=dict)
    _geometry: dict[tuple, Any] = field(default_factory=dict)

    # ---- inputs -------------------------------------------------------------------
    def to_input(self, image: torch.Tensor) -> torch.Tensor:
        """One image (C x H x W) -> model input 1 x C x h x w on the model's device."""
        return self.preprocess([image]).to(self.device).float()

    def baseline(self, kind: Any, image: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Reference input: 'black' (an all-zero image, preprocessed like any image), 'zero'
        (zeros in model-input space), 'blur' (the image blurred) or a number."""
        if isinstance(kind, (int, float)) and not isinstance(kind, bool):
            return torch.full_like(x, float(kind))
        kind = str(kind or "black").lower()
        if kind == "black":
            return self.to_input(torch.zeros_like(image))
        if kind == "zero":
            return torch.zeros_like(x)
        if kind == "blur":
            return blur(x)
        try:
            return torch.full_like(x, float(kind))
        except ValueError:
            raise CnnkitError(f'Unknown baseline "{kind}": use {", ".join(BASELINES)} or a number.') from None

    # ---- model --------------------------------------------------------------------
    def run(self, x: torch.Tensor) -> Callable[[], Any]:
        if self.output == "boxes":
            return lambda: detector_outputs(self.model, x)
        return lambda: model_logits(self.model, x)

    def layer(self, name: str | None, x: torch.Tensor, kind: str = "cam") -> tuple[str, nn.Module]:
        """(name, module): the named one, else the automatic choice for `kind`
        ('cam': last spatial conv layer/stage; 'first': first conv layer)."""
        if name:
            return name, get_layer(self.model, name)
        if kind not in self._layers:
            if kind == "first":
                self._layers[kind] = first_convs(self.model, self.run(x), n=1)[0]
            else:
                self._layers[kind] = auto_layer(self.model, self.output, self.run(x))
        chosen = self._layers[kind]
        return chosen, get_layer(self.model, chosen)

    def placement(self, layer_name: str, x: torch.Tensor) -> dict[str, Any]:
        """How a map of `layer_name` lands on the input x: options for `methods.attribute`."""
        if self.output == "boxes":  # resized and padded inside the detector: crop the padding
            return {"fraction": valid_fraction(self.model, x)}
        key = (layer_name, tuple(x.shape[-2:]))
        if key not in self._geometry:
            self._geometry[key] = layer_geometry(get_layer(self.model, layer_name),
                                                 lambda xi: model_logits(self.model, xi), x)
        return {"geometry": self._geometry[key]}


def blur(x: torch.Tensor) -> torch.Tensor:
    """A strongly blurred copy (sigma = 1/8 of the shorter side): the insertion curve's start
    (Petsiuk et al. 2018 insert pixels into a blurred image rather than a black one)."""
    side = min(x.shape[-2:])
    sigma = max(side / 8.0, 0.5)
    k = min(2 * int(3 * sigma) + 1, 2 * ((side - 1) // 2) + 1)
    return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma]) if k >= 3 else x.clone()


def from_model(model: nn.Module, sample: torch.Tensor, task: str | None = None,
               classes: list[str] | None = None,
               preprocess: Callable[[list[torch.Tensor]], torch.Tensor] | None = None) -> Subject:
    """A bare model: its task (a registered name) when given, else the first registered task whose
    `output` matches what the model answers on `sample`; classes numbered unless given."""
    from cnnkit.tasks import TASKS

    model.eval()
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    prep = preprocess or _scale
    if task is None:
        output = infer_output(model, prep([sample]).to(device))
        task = next((name for name in TASKS if TASKS.get(name).output == output), output)
    else:
        output = TASKS.get(task).output
    if classes is None:
        classes = _numbered_classes(model, prep([sample]).to(device), output)
    return Subject(model=model, task=task, output=output, classes=list(classes), preprocess=prep, device=device,
                   channels=int(sample.shape[0]))


def _numbered_classes(model: nn.Module, x: torch.Tensor, output: str) -> list[str]:
    with torch.no_grad():
        if output == "boxes":  # names fall back to the label number
            return []
        return [str(i) for i in range(model_logits(model, x).shape[1])]


def from_path(source: str | Path) -> Subject:
    """A run directory or checkpoint, through the engine's predictor."""
    from cnnkit.engine.predictor import load

    from cnnkit.models.tta import without_tta

    pred = load(str(source))
    meta = dict(pred.meta)
    pred.model.eval()
    # the network itself, not a flip-TTA mean of two passes (whose maps would mix image and mirror)
    return Subject(model=without_tta(pred.model), task=pred.task.name, output=pred.task.output,
                   classes=list(meta.get("classes") or pred.info.classes),
                   preprocess=pred.preprocess, device=torch.device(pred.device), source=str(source), meta=meta,
                   channels=meta.get("channels") or pred.info.channels)


def run_dir_of(source: str | Path) -> Path:
    p = Path(source).expanduser()
    return p if p.is_dir() else p.parent


def read_images(paths: list[str], channels: int | None) -> list[tuple[str, torch.Tensor]]:
    """Decode files (a folder: its data files, sorted) with the project's reader; a bad file is a
    one-sentence error."""
    from cnnkit.data.decode import BadImage, data_files, read_image

    out = []
    for path in paths:
        if Path(path).is_dir():  # a folder: its data files, by the rule every command shares
            out += read_images([str(f) for f in sorted(data_files(path), key=str)], channels)
            continue
        if not Path(path).exists():
            raise CnnkitError(f"Image {path} does not exist.")
        try:
            out.append((str(path), read_image(path, channels)))
        except BadImage as e:
            raise CnnkitError(f"Cannot explain {path}: {e}") from None
    return out


def as_images(images: Any, channels: int | None) -> list[tuple[str, torch.Tensor]]:
    """What `predict` accepts (`cnnkit.engine.inputs`: paths, folders, globs, PIL images, numpy H x W [x C]
    arrays, torch C x H x W tensors or N x C x H x W batches, uint8 or floats in [0, 1]) -> [(name, uint8
    C x H x W image)] with `channels` channels (None: as given), named by file path or position in
    `images`. Files are decoded by the project's reader, as `cnnkit explain` does; a missing or
    unreadable file, or an item of another kind, is a one-sentence `CnnkitError`."""
    from cnnkit.engine.inputs import InMemory, collect_inputs

    out: list[tuple[str, torch.Tensor]] = []
    for item in collect_inputs(images, channels):
        if isinstance(item, InMemory):
            out.append((item.label, item.image))
        else:
            out += read_images([item], channels)
    return out
