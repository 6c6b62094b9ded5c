"""Detection training augmentation for the "light" preset: per-sample geometry, batched randomness.

`DetBatchAugment` draws, per sample, what `detection_transform("light")` draws — a scale jitter
0.75-1.25 of the fit to `size` (v2.ScaleJitter), a `size` x `size` window placed as
v2.RandomCrop(pad_if_needed=True) places it, a horizontal flip (where the data allows) and, half
the time, brightness/contrast jitter 0.3 — all from one generator per batch. Each image is resized
once (bilinear with antialias, as v2.Resize; instance masks nearest) and pasted into its window by
slicing; flips and the colour jitter run on the stacked batch. Boxes follow exactly (scale, shift,
mirror), are clipped to the window and dropped with their labels, crowd flags and masks when
smaller than 2 px a side or 4 px^2, as v2.SanitizeBoundingBoxes(min_size=2, min_area=4) does.

Why not transforms.v2 for this preset (cnnkit's first version, still used for "strong" and
"flip"): its per-sample tv_tensor dispatch cost 26 ms of a 165 ms tinydet training step on
`digits-detect` (batch 8, one thread, `cnnkit bench RUN --profile`), 16 % of the step; this is
a few ms per batch (measured: see `tasks/detect.py`). A first version resampled the whole batch
with one `F.grid_sample`: as fast and as accurate on digits-detect, but without antialias a photo
shrunk to `size` would alias, so each image gets v2's antialiased resize instead.

Randomness comes from the generator the caller passes (seeded per batch from (seed, epoch, batch
index)), so an epoch is the same with 0 or N workers and on resume.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# The "light" preset's ranges, shared with its transforms.v2 form (`detection.detection_transform`).
LIGHT_SCALE_RANGE = (0.75, 1.25)  # v2.ScaleJitter of the fit to the model's input size
LIGHT_JITTER = 0.3  # v2.ColorJitter brightness and contrast, applied half the time


class DetBatchAugment:
    """(list of uint8 C x H x W images, list of target dicts) -> the same, each image `size` x `size`."""

    def __init__(self, size: int, hflip: bool, scale_range: tuple[float, float] = LIGHT_SCALE_RANGE,
                 jitter: float = LIGHT_JITTER, min_size: float = 2.0, min_area: float = 4.0):
        self.size, self.hflip, self.scale_range, self.jitter = size, hflip, scale_range, jitter
        self.min_size, self.min_area = min_size, min_area

    def __call__(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]], g: torch.Generator):
        n, c, s = len(images), images[0].shape[0], self.size
        h = torch.tensor([img.shape[-2] for img in images], dtype=torch.float64)
        w = torch.tensor([img.shape[-1] for img in images], dtype=torch.float64)
        lo, hi = self.scale_range
        r = torch.minimum(s / h, s / w) * (lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64))
        new_h, new_w = (h * r).floor().clamp(min=1), (w * r).floor().clamp(min=1)  # v2.ScaleJitter's int(h * r)
        # The window's corner in the scaled image: inside it when the image is larger than the window,
        # else the image lies whole inside the window (v2.RandomCrop with pad_if_needed).
        y0, x0 = self._offset(new_h - s, g), self._offset(new_w - s, g)
        flip = (torch.rand(n, generator=g) < 0.5) if self.hflip else torch.zeros(n, dtype=torch.bool)
        on = torch.rand(n, generator=g) < 0.5
        factors = 1 + self.jitter * (2 * torch.rand(n, 2, generator=g) - 1)  # brightness, contrast
        out = torch.zeros((n, c, s, s))
        new_targets = []
        for i, (img, t) in enumerate(zip(images, targets)):
            hw = (int(new_h[i]), int(new_w[i]))
            # antialiased bilinear, as v2.Resize on images (a shrunk digit keeps its thin strokes)
            scaled = F.interpolate(img[None].float(), size=hw, mode="bilinear", antialias=True)[0]
            src, dst = self._paste(hw, int(y0[i]), int(x0[i]), s)
            out[i][dst] = scaled[src]
            new_targets.append(self._target(t, img.shape[-2:], hw, int(x0[i]), int(y0[i]), bool(flip[i]), src, dst))
        if self.jitter and on.any():
            b, ct = factors[on, 0].view(-1, 1, 1, 1), factors[on, 1].view(-1, 1, 1, 1)
            x = (out[on] * b).clamp_(0, 255)
            mean = x.mean((1, 2, 3), keepdim=True)
            out[on] = ((x - mean) * ct + mean).clamp_(0, 255)
        out[flip] = out[flip].flip(-1)
        return list(out.round_().to(torch.uint8)), new_targets

    @staticmethod
    def _paste(hw: tuple[int, int], y0: int, x0: int, size: int):
        """Slices (source in the scaled image, destination in the window) for a `size` window at (y0, x0)."""
        def one(n: int, o: int):
            start, stop = max(0, o), min(n, o + size)
            return slice(start, stop), slice(start - o, stop - o)
        (sy, dy), (sx, dx) = one(hw[0], y0), one(hw[1], x0)
        return (slice(None), sy, sx), (slice(None), dy, dx)

    def _offset(self, slack: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Per sample, a whole number of px uniform in [min(0, slack), max(0, slack)]."""
        u = torch.rand(len(slack), generator=g, dtype=torch.float64)
        return torch.minimum(slack, torch.zeros_like(slack)) + (u * (slack.abs() + 1)).floor()

    def _target(self, t: dict[str, torch.Tensor], size_in: tuple[int, int], hw: tuple[int, int], x0: int, y0: int,
                flip: bool, src, dst):
        """Boxes (and masks) of one sample through its scale, window and flip; too-small boxes dropped."""
        s = self.size
        b = t["boxes"].double().reshape(-1, 4)
        if len(b):
            rx, ry = hw[1] / size_in[1], hw[0] / size_in[0]
            b = torch.stack([b[:, 0] * rx - x0, b[:, 1] * ry - y0, b[:, 2] * rx - x0, b[:, 3] * ry - y0], -1)
            if flip:
                b = torch.stack([s - b[:, 2], b[:, 1], s - b[:, 0], b[:, 3]], -1)
            b = b.clamp(0, s)
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        keep = (bw >= self.min_size) & (bh >= self.min_size) & (bw * bh >= self.min_area)
        new = {k: v[keep] for k, v in t.items() if k in ("labels", "iscrowd", "masks")}
        new["boxes"] = b[keep].to(t["boxes"].dtype).reshape(-1, 4)
        if "masks" in new:
            m = torch.zeros((len(new["masks"]), s, s), dtype=torch.uint8)
            if len(m):  # nearest, as v2.Resize on masks
                scaled = F.interpolate(new["masks"][:, None].float(), size=hw, mode="nearest")[:, 0]
                m[dst] = scaled[src].to(torch.uint8)
                if flip:
                    m = m.flip(-1)
            new["masks"] = m
        return {**t, **new}
