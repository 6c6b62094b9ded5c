"""`Explanation`: one map (or picture) for one image, method and target, and its numbers.

`.map` is the importance for the target at the image's own spatial size, scaled to
[0, 1] (for signed methods — integrated gradients, occlusion — the positive part, i.e.
the evidence for the target). `.raw` is the method's map before scaling, at the model
input's size and with its sign; the summary numbers (min/max/mean) and the faithfulness
curves use it. `.save(path)` draws the overlay PNG (feature grid or filter tiles for
`featuremaps` / `filters`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def to_image_map(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Raw H x W map -> [0, 1] importance at the image's size (bilinear, antialiased when shrinking)."""
    pos = raw.float().clamp(min=0)
    if tuple(pos.shape) != tuple(size):
        shrink = pos.shape[0] > size[0] or pos.shape[1] > size[1]
        pos = F.interpolate(pos[None, None], size=size, mode="bilinear", align_corners=False,
                            antialias=shrink)[0, 0].clamp(min=0)
    top = float(pos.max())
    return pos / top if top > 0 else torch.zeros_like(pos)


def display_image(image: torch.Tensor) -> torch.Tensor:
    """uint8 C x H x W for drawing: uint8 as given, float images min-max scaled."""
    if image.dtype == torch.uint8:
        return image.cpu()
    img = image.detach().float().cpu()
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else torch.zeros_like(img)
    return (img * 255).round().to(torch.uint8)


@dataclass
class Explanation:
    method: str
    map: torch.Tensor | None  # H x W in [0, 1] at the image's size (None for `filters`)
    raw: torch.Tensor | None  # method's own map at the model input's size, sign kept
    image: torch.Tensor | None  # uint8 C x H x W as drawn (None for `filters`)
    target: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None
    name: str = ""  # the image's file name or index
    extra: dict[str, Any] = field(default_factory=dict)  # completeness gap, feature maps, filter weights...

    def stats(self) -> dict[str, Any]:
        """Summary numbers of the raw map; the peak is in image pixels (row, column)."""
        if self.raw is None or self.map is None:
            return {}
        raw = self.raw.float()
        peak = int(self.map.flatten().argmax())
        width = self.map.shape[1]
        return {"min": float(raw.min()), "max": float(raw.max()), "mean": float(raw.mean()),
                "peak": [peak // width, peak % width], "constant": bool(raw.max() == raw.min())}

    def summary(self) -> dict[str, Any]:
        """JSON-able description (tensors left out)."""
        out: dict[str, Any] = {"image": self.name, "method": self.method, "target": self.target,
                               "layer": self.layer}
        out.update(self.stats())
        for key, value in self.extra.items():
            if isinstance(value, (int, float, str, bool)) or value is None:
                out[key] = value
            elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
                out[key] = list(value)
        return out

    def save(self, path: str | Path, title: str | None = None) -> Path:
        from cnnkit.explain.feature_maps import save_feature_grid, save_filters
        from cnnkit.explain.overlay import save_overlay

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.method == "filters":
            return save_filters(self.extra["weights"], path, title or f"filters of {self.layer}")
        if self.method == "featuremaps":
            return save_feature_grid(self.extra["features"], path,
                                                  title or f"feature maps of {self.layer}, {Path(self.name).name}")
        return save_overlay(self, path, title)

    def label(self) -> str:
        """Short caption: method and target."""
        t = self.target
        if t.get("kind") == "box":
            what = f"box {t.get('index')} {t.get('name') or ''}".strip()
        elif t.get("name") is not None:
            what = str(t["name"])
        else:
            what = ""
        return f"{self.method} · {what}" if what else self.method

    def __repr__(self) -> str:
        size = tuple(self.map.shape) if self.map is not None else None
        return f"Explanation(method={self.method!r}, image={self.name!r}, target={self.target}, map={size})"
