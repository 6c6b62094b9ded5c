"""The "light" detection augmentation written out with plain tensor ops: `BoxJitter`.

Same recipe as the transforms.v2 pipeline it replaces for that preset (ScaleJitter 0.75-1.25
of the fit-to-`size` scale, a random `size` x `size` crop — or placement on a zero canvas
when the scaled image is smaller — optional horizontal flip, brightness/contrast 0.3 with
p = 0.5, then boxes under 2 px a side or 4 px² dropped with their labels, iscrowd and masks).
Why by hand: on `digits-detect` the v2 pipeline's per-sample dispatch (tv_tensors wrapping,
pytree flattening, SanitizeBoundingBoxes) made the training loader take 3.4 ms per 96 x 96
canvas on one thread, ~17 % of a tinydet training step; with these few ops it takes 1.3 ms.

Randomness is drawn from torch's default generator, which the loader seeds per sample
from (seed, epoch, index), so epochs stay reproducible with any number of workers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


def _randint(hi: int) -> int:
    """0..hi inclusive."""
    return int(torch.randint(0, hi + 1, ())) if hi > 0 else 0


class BoxJitter:
    """(uint8 C x H x W image, target dict) -> (uint8 C x size x size image, target with boxes moved)."""

    def __init__(self, size: int, hflip: bool, scale_range: tuple[float, float] = (0.75, 1.25),
                 jitter: float = 0.3, p_color: float = 0.5, min_size: float = 2.0, min_area: float = 4.0):
        self.size, self.hflip, self.scale_range = size, hflip, scale_range
        self.jitter, self.p_color, self.min_size, self.min_area = jitter, p_color, min_size, min_area

    def __call__(self, image: torch.Tensor, target: dict[str, torch.Tensor]):
        c, h, w = image.shape
        s = self.size
        r = min(s / h, s / w) * _uniform(*self.scale_range)
        nh, nw = max(1, int(h * r)), max(1, int(w * r))
        img = F.interpolate(image[None].float(), size=(nh, nw), mode="bilinear", antialias=True,
                            align_corners=False)[0]
        # Crop window (y0, x0) when larger than `size`, placement (py, px) on the canvas when smaller.
        y0, x0 = _randint(nh - s), _randint(nw - s)
        ch, cw = min(s, nh), min(s, nw)
        py, px = _randint(s - ch), _randint(s - cw)
        out = img.new_zeros((c, s, s))
        out[:, py:py + ch, px:px + cw] = img[:, y0:y0 + ch, x0:x0 + cw]
        scale = torch.tensor([nw / w, nh / h, nw / w, nh / h])
        shift = torch.tensor([px - x0, py - y0, px - x0, py - y0], dtype=torch.float32)
        boxes = (target["boxes"] * scale + shift).clamp(0, s)
        masks = None
        if "masks" in target:
            m = F.interpolate(target["masks"][None].float(), size=(nh, nw), mode="nearest")[0]
            masks = m.new_zeros((m.shape[0], s, s))
            masks[:, py:py + ch, px:px + cw] = m[:, y0:y0 + ch, x0:x0 + cw]
        if self.hflip and float(torch.rand(())) < 0.5:
            out = out.flip(-1)
            boxes = torch.stack([s - boxes[:, 2], boxes[:, 1], s - boxes[:, 0], boxes[:, 3]], 1)
            masks = masks.flip(-1) if masks is not None else None
        if float(torch.rand(())) < self.p_color:
            out = out * _uniform(1 - self.jitter, 1 + self.jitter)
            mean = out.mean()
            out = (out - mean) * _uniform(1 - self.jitter, 1 + self.jitter) + mean
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = (bw >= self.min_size) & (bh >= self.min_size) & (bw * bh >= self.min_area)
        new = {**target, "boxes": boxes[keep], "labels": target["labels"][keep], "iscrowd": target["iscrowd"][keep]}
        if masks is not None:
            new["masks"] = masks[keep].to(torch.uint8)
        return out.round_().clamp_(0, 255).to(torch.uint8), new
