"""The built-in `digits-seg` (and `fashion-seg`) sets: the detection canvases with per-pixel class masks.

Same canvases, seeds and disjoint digit sources as `digits-detect` (`builtin.canvas.digit_canvases`),
so detection and segmentation numbers on the two sets describe the same images. Classes
are "background" (0) and the digits "0".."9" (1..10): every stroke pixel above the canvas
threshold takes its digit's class. Each split also carries the canvases' instance masks
(`SegSplit.instances`, a `DetectionSplit`), which the COCO writer and the instance task use.
`fashion-seg` does the same with `fashion-detect`'s canvases of Fashion-MNIST items.
"""
from __future__ import annotations

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.builtin.canvas import canvas_bundle, canvas_splits
from cnnkit.data.registry import BUILTINS
from cnnkit.data.segmentation import SegSplit


def _seg_bundle(name: str, source: str, cfg: Config) -> DataBundle:
    canvases, classes = canvas_splits(source, cfg)
    splits = {}
    for s, c in canvases.items():
        names = [f"{s}_{i:05d}.png" for i in range(len(c))]
        splits[s] = SegSplit(c.images, c.semantic, names, instances=c.to_split(s))
    x = splits["train"].images.float().div_(255)
    return canvas_bundle(name, "segment", source, cfg, splits, ["background", *classes],
                         mean=[round(float(x.mean()), 4)], std=[round(float(x.std()), 4)])


@BUILTINS.register("digits-seg", task="segment")
def digits_seg(cfg: Config) -> DataBundle:
    return _seg_bundle("digits-seg", "digits", cfg)


@BUILTINS.register("fashion-seg", task="segment")
def fashion_seg(cfg: Config) -> DataBundle:
    """Fashion-MNIST canvases with class masks (needs Fashion-MNIST, as `--data fashion-mnist` does)."""
    return _seg_bundle("fashion-seg", "fashion-mnist", cfg)
