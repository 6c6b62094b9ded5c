"""What `predict` and `explain` accept as images, brought to one form by `collect_inputs`.

Accepted, alone or mixed in a list (in-memory images are numbered by their position in it):
- a file path, a folder (its data files, sorted; `cnnkit.data.decode.data_files`) or a glob: kept as
  file paths, so each caller decodes them with `read_image` and decides what an unreadable file
  means (predict records it, explain refuses it);
- a PIL image (its EXIF orientation applied, as for a file);
- a numpy array H x W or H x W x C, C in 1, 3, 4: channels last, as Pillow and numpy hold images;
- a torch tensor C x H x W (or H x W), or a batch N x C x H x W: channels first, as torch holds
  them (image j of a batch at position i is numbered "i.j"; a batch given alone, 0..N-1).
Pixels are uint8 (or integers in 0..255) or floats in [0, 1], scaled by 255 and rounded.

In-memory images become uint8 C x H x W tensors with the model's channel count, converted the
way `read_image` converts a file (gray repeated to RGB, RGB to ITU-R 601 luma, alpha composited
on white), so an image and its PNG give the same record. Anything else raises one `CnnkitError`
naming the position, the type and shape found, and the accepted forms.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import CnnkitError

ACCEPTED = ("a file path, folder or glob, a PIL image, a numpy array H x W or H x W x C, or a torch tensor "
            "C x H x W or N x C x H x W, with uint8 pixels or floats in [0, 1]")


@dataclass(frozen=True)
class InMemory:
    """An image given in memory: `label` its position in the inputs ("2", or "2.0" in a batch)."""

    label: str
    image: torch.Tensor  # uint8 C x H x W


def collect_inputs(inputs: Any, channels: int | None) -> list[str | InMemory]:
    """One item or a list of them (see the module docstring) -> file paths and `InMemory` images,
    in input order, folders and globs expanded in place. `channels` (1, 3, or None: as given) is
    the model's count. Raises `CnnkitError` for a missing path, a bad item, or no image at all."""
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        items = [(str(j), image) for j, image in enumerate(inputs)]  # a batch alone is a list of its images
    elif isinstance(inputs, (list, tuple)):
        items = [(str(i), item) for i, item in enumerate(inputs)]
    else:
        items = [("0", inputs)]
    out: list[str | InMemory] = []
    for label, item in items:
        if isinstance(item, (str, Path)):
            out += expand_path(item)
        elif isinstance(item, torch.Tensor) and item.dim() == 4:
            out += [InMemory(f"{label}.{j}", to_image(image, channels, f"{label}.{j}")) for j, image in enumerate(item)]
        else:
            out.append(InMemory(label, to_image(item, channels, label)))
    if not out:
        where = ", ".join(str(item) for _, item in items if isinstance(item, (str, Path)))
        raise CnnkitError(f"No images were found in {where}: give image files, folders of images or globs."
                          if where else f"No images were given: give {ACCEPTED}.")
    return out


def expand_path(item: str | Path) -> list[str]:
    """A file, a folder (its data files, sorted) or a glob -> file paths."""
    from cnnkit.data.decode import data_files, glob_data_files  # the one rule of which files are data

    p = Path(item).expanduser()
    if p.is_dir():
        return sorted(str(f) for f in data_files(p))
    if p.exists():
        return [str(p)]
    matches = glob_data_files(str(item))
    if not matches:
        raise CnnkitError(f"Input {item} does not exist and matches no file: give an image file, a folder or a glob.")
    return matches


def to_image(item: Any, channels: int | None, label: str = "0") -> torch.Tensor:
    """One in-memory image (PIL, numpy H x W [x C], torch C x H x W or H x W) -> uint8 C x H x W with
    `channels` channels (None: as given). Raises `CnnkitError` naming `label` for anything else."""
    from PIL import Image, ImageOps

    if isinstance(item, Image.Image):
        try:
            item = ImageOps.exif_transpose(item)
        except Exception:  # noqa: BLE001 - a malformed EXIF block should not cost the image (as read_image)
            pass
        return _from_pil(item, channels)
    if isinstance(item, np.ndarray):
        if not (item.ndim == 2 or item.ndim == 3 and item.shape[2] in (1, 3, 4)):
            hint = " (numpy arrays are channels last: np.moveaxis(a, 0, -1))" if (
                item.ndim == 3 and item.shape[0] in (1, 3, 4)) else ""
            raise _bad(label, item, hint)
        array = _uint8(_as_tensor(item, label), label, item).numpy()
        return _from_pil(Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array),
                         channels)
    if isinstance(item, torch.Tensor):
        t = item.detach().cpu()
        t = t[None] if t.dim() == 2 else t
        if t.dim() != 3 or t.shape[0] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
            hint = " (torch tensors are channels first: t.permute(2, 0, 1))" if t.dim() == 3 else ""
            raise _bad(label, item, hint)
        t = _uint8(t, label, item)
        if channels is None or t.shape[0] == channels:
            return t.contiguous()
        if t.shape[0] not in (1, 3, 4):
            raise CnnkitError(f"Image {label} has {t.shape[0]} channels and the model takes {channels}: "
                              "give a gray, RGB or RGBA image, or one with the model's channels.")
        array = t.permute(1, 2, 0).numpy()
        return _from_pil(Image.fromarray(array[..., 0] if t.shape[0] == 1 else array), channels)
    raise _bad(label, item)


def _from_pil(image, channels: int | None) -> torch.Tensor:
    # The conversion `read_image` applies to a decoded file (the module's one rule for modes and channels);
    # a public name for it belongs in data/decode.py.
    from cnnkit.data.decode import pil_to_uint8

    t = torch.from_numpy(pil_to_uint8(image, channels))
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _as_tensor(array: np.ndarray, label: str) -> torch.Tensor:
    try:
        return torch.from_numpy(np.array(array))  # a copy: Pillow's arrays are read-only, torch wants to own one
    except TypeError:
        raise _bad(label, array) from None


def _uint8(t: torch.Tensor, label: str, item: Any) -> torch.Tensor:
    """uint8 as is; integers in 0..255 cast; floats in [0, 1] times 255, rounded."""
    if t.dtype == torch.uint8:
        return t
    if t.dtype.is_floating_point:
        t = t.float()
        if t.numel() and not (torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1):
            raise _bad(label, item, f" with values from {float(t.min()):g} to {float(t.max()):g} (floats must be "
                                    "in [0, 1])")
        return (t * 255).round().to(torch.uint8)
    if t.dtype != torch.bool and not t.is_complex():
        if t.numel() and (t.min() < 0 or t.max() > 255):
            raise _bad(label, item, f" with values from {int(t.min())} to {int(t.max())} (integers must be in 0..255)")
        return t.to(torch.uint8)
    raise _bad(label, item)


def _bad(label: str, item: Any, hint: str = "") -> CnnkitError:
    module = type(item).__module__.split(".")[0]
    kind = type(item).__name__ if module == "builtins" else f"{module}.{type(item).__name__}"
    shape = f" of shape {tuple(item.shape)} and dtype {str(item.dtype).replace('torch.', '')}" \
        if hasattr(item, "shape") and hasattr(item, "dtype") else ""
    article = "an" if kind[0].lower() in "aeiou" else "a"
    return CnnkitError(f"Image {label} is {article} {kind}{shape}{hint}; give {ACCEPTED}.")
