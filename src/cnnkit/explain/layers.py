"""Which layer a layer method looks at, and how its low-resolution map lands on the image.

- `get_layer`: a module by its dotted name (`features.3`, `backbone.body.layer4`); an
  unknown name is a CnnkitError with a "did you mean" over the model's module names.
- `auto_layer`: the end of the last conv stage — the module (conv, block, or the pooling /
  activation closing a stage) that finishes last while its output is still a spatial map
  (H*W > 1), found by running the model once with hooks. On LeNet-5 this is the second
  pooling layer (5x5), not the second conv: measured on digits, Grad-CAM there beats a
  random deletion order on 94% of test images against 90% at the conv. Modules run more
  than once per forward (shared activations, detection heads over pyramid levels) are
  skipped, and so are segmentation logit maps (their output is the answer, not a feature). For a
  detector the search stays inside its feature extractor (`backbone.body`, `body`, or
  `backbone`): past it, FPN and head layers mix several scales and the box head has no
  single spatial map.
- `first_convs`: the first conv layers in execution order (the learned-filters picture).
- `layer_geometry` / `to_input_size`: place a layer map on the model input — each cell on
  its receptive field's centre (measured, see `layer_geometry`), or for detectors plain
  upsampling after cropping the padding their transform adds (it resizes, then pads to a
  multiple of 32, so the feature map covers more than the image).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean


def layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = layer_names(model)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    raise CnnkitError(f'Unknown layer "{name}" for --layer.{did_you_mean(name, names)} '
                      f"Conv layers: {', '.join(convs[:12])}{' ...' if len(convs) > 12 else ''}.")


def _search_root(model: nn.Module, output: str) -> tuple[str, nn.Module]:
    """Where a detector's feature extractor lives: the shallowest `*.body` (torchvision's
    BackboneWithFPN, cnnkit's detectors), else `*.backbone` / `*.encoder`; the whole model otherwise."""
    if output != "boxes":
        return "", model
    named = [(n, m) for n, m in model.named_modules() if n]
    for leaf in (("body",), ("backbone", "encoder")):
        found = [(n, m) for n, m in named if n.split(".")[-1] in leaf]
        if found:
            name, module = min(found, key=lambda nm: nm[0].count("."))
            return name + ".", module
    return "", model


def trace(model: nn.Module, run: Callable[[], object], modules: dict[str, nn.Module]
          ) -> dict[str, dict]:
    """Run once with forward hooks: per module name, its call count, finish order (first and
    last call), output shape and last output tensor."""
    seen: dict[str, dict] = {}
    counter = [0]

    def hook(name):
        def fn(_module, _inputs, output):
            counter[0] += 1
            rec = seen.setdefault(name, {"calls": 0})
            rec["calls"] += 1
            rec["order"] = counter[0]
            rec.setdefault("first", counter[0])
            rec["shape"] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
            # the tensor itself (not its data_ptr: under no_grad the allocator reuses freed memory)
            rec["out"] = output if isinstance(output, torch.Tensor) else None
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return seen


def auto_layer(model: nn.Module, output: str, run: Callable[[], object]) -> str:
    """Name of the module ending the last conv stage: the last module (run once) whose output
    is still a spatial map (see module docstring). `output`: what the model answers with
    (`Task.output`: "logits", "boxes", "pixel_logits")."""
    prefix, root = _search_root(model, output)
    modules = {prefix + n: m for n, m in root.named_modules() if n}
    if prefix:
        modules[prefix[:-1]] = root
    out_channels = _output_channels(model, run) if output == "pixel_logits" else None
    seen = trace(model, run, modules)
    first_conv = min((rec["first"] for name, rec in seen.items() if isinstance(modules[name], nn.Conv2d)),
                     default=None)
    best, best_order = None, -1
    for name, rec in seen.items():
        shape = rec["shape"]
        if rec["calls"] != 1 or shape is None or len(shape) != 4 or shape[2] * shape[3] <= 1:
            continue
        if first_conv is None or rec["order"] < first_conv:  # before any conv: input-side layers
            continue
        if out_channels is not None and shape[1] == out_channels:  # a segmentation logit map
            continue
        if rec["order"] > best_order:
            best, best_order = name, rec["order"]
    if best is None:
        raise CnnkitError("Found no conv layer with a spatial output in this model for Grad-CAM: "
                          "name one with --layer.")
    return _innermost(best, seen)


def _innermost(name: str, seen: dict[str, dict]) -> str:
    """A container returns its last child's tensor: name that child (`features.s4`, not
    `features`). Only the last child to finish is followed — an earlier child can share the
    storage through an in-place op (ResNet's `out += identity` on bn2's output) without being
    the stage's output."""
    while True:
        kids = [n for n in seen if n.startswith(name + ".") and "." not in n[len(name) + 1:]]
        if not kids:
            return name
        last = max(kids, key=lambda n: seen[n]["order"])
        rec, mine = seen[last], seen[name]
        if rec["calls"] != 1 or rec["out"] is None or rec["out"] is not mine["out"]:
            return name
        name = last


def _output_channels(model: nn.Module, run: Callable[[], object]) -> int | None:
    with torch.no_grad():
        out = run()
    if isinstance(out, dict):
        out = out.get("out")
    return int(out.shape[1]) if isinstance(out, torch.Tensor) and out.dim() == 4 else None


def first_convs(model: nn.Module, run: Callable[[], object] | None, n: int = 2) -> list[str]:
    """The first `n` Conv2d layers in execution order (registration order without `run`)."""
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if not convs:
        raise CnnkitError("This model has no Conv2d layer, so it has no filters to draw.")
    names = list(convs)
    if run is not None:
        seen = trace(model, run, convs)
        names.sort(key=lambda k: seen[k]["first"] if k in seen else 1 << 30)  # stable: unrun keep their place
    return names[:n]


def valid_fraction(model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Share (h, w) of a detector's padded batch that is image; (1, 1) for everything else."""
    transform = next((m for m in model.modules() if hasattr(m, "batch_images") and hasattr(m, "postprocess")), None)
    if transform is None:
        return 1.0, 1.0
    with torch.no_grad():
        images, _ = transform(list(x))
    (h, w), (ph, pw) = images.image_sizes[0], images.tensors.shape[-2:]
    return h / ph, w / pw


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has run."""


def layer_geometry(layer: nn.Module, forward: Callable[[torch.Tensor], object], x: torch.Tensor,
                   grow: int = 64) -> tuple[float, float, float, float] | None:
    """(stride_y, offset_y, stride_x, offset_x) such that the receptive field of the layer's cell
    i is centred on input pixel offset + stride * i; None when it cannot be measured.

    Plain upsampling assumes offset = (stride - 1) / 2, true for "same"-padded nets (ResNets) but
    not for valid convolutions: LeNet-5's 5x5 S4 map sits over input pixels 7.5..23.5 of 32, not
    2.7..28.3. The stride comes from the layer's output size at two input sizes (the input padded
    by `grow` pixels), the offset from the size at the real one — no per-architecture table."""
    sizes: list[tuple[int, int]] = []

    def hook(_m, _i, out):
        sizes.append(tuple(out.shape[-2:]))
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        for extra in (0, grow):
            try:
                with torch.no_grad():
                    forward(F.pad(x, (0, extra, 0, extra)))
            except _Stop:
                pass
            except Exception:  # a model that only takes one input size: keep plain upsampling
                return None
    finally:
        handle.remove()
    if len(sizes) != 2:
        return None
    geometry: list[float] = []
    for n_in, n0, n1 in zip(x.shape[-2:], sizes[0], sizes[1]):
        if n1 <= n0 or abs(grow / (n1 - n0) - round(grow / (n1 - n0))) > 1e-6:
            return None
        stride = round(grow / (n1 - n0))
        geometry += [float(stride), (n_in - 1 - stride * (n0 - 1)) / 2]
    return tuple(geometry)


def to_input_size(cam: torch.Tensor, size: tuple[int, int], fraction: tuple[float, float] = (1.0, 1.0),
                  geometry: tuple[float, float, float, float] | None = None) -> torch.Tensor:
    """h x w layer map -> H x W input map, bilinear. With `geometry` each cell lands on its
    receptive field's centre; without, plain upsampling (after cropping a detector's padding)."""
    h, w = cam.shape[-2:]
    fh, fw = fraction
    if fh < 1.0 or fw < 1.0:
        cam = cam[..., : max(1, round(h * fh)), : max(1, round(w * fw))]
        h, w = cam.shape[-2:]
    cam = cam.reshape(1, 1, h, w).float()
    if geometry is None:
        return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[0, 0]
    sy, oy, sx, ox = geometry
    # input pixel u -> cell coordinate (u - offset) / stride -> grid_sample's [-1, 1] (align_corners=False)
    ys = ((torch.arange(size[0], dtype=torch.float32) - oy) / sy + 0.5) / h * 2 - 1
    xs = ((torch.arange(size[1], dtype=torch.float32) - ox) / sx + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy], -1)[None].to(cam.device)
    return F.grid_sample(cam, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, 0]
