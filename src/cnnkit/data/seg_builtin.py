"""The built-in `digits-seg` set: the digits-detect canvases with their per-pixel class masks.

Same canvases, seeds and disjoint digit sources as `digits-detect` (`canvas.digit_canvases`),
so detection and segmentation numbers on the two sets describe the same images. Classes
are "background" (0) and the digits "0".."9" (1..10): every stroke pixel above the canvas
threshold takes its digit's class. Each split also carries the canvases' instance masks
(`SegSplit.instances`, a `DetectionSplit`), which the COCO writer and the instance task use.
"""
from __future__ import annotations

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.canvas import digit_canvases
from cnnkit.data.segmentation import SegSplit
from cnnkit.data.sources import BUILTINS
from cnnkit.errors import CnnkitError

CLASSES = ["background"] + [str(i) for i in range(10)]


@BUILTINS.register("digits-seg", task="segment")
def digits_seg(cfg: Config) -> DataBundle:
    size = int(cfg.data.canvas_size)
    if size < 32:
        raise CnnkitError(f"data.canvas_size={size} is too small for 2-4x scaled 8x8 digits: use 32 or more.")
    seed = int(cfg.data.split_seed)
    splits = {}
    for s in ("train", "val", "test"):
        canvases = digit_canvases(s, size, seed)
        names = [f"{s}_{i:05d}.png" for i in range(len(canvases))]
        splits[s] = SegSplit(canvases.images, canvases.semantic, names, instances=canvases.to_split(s))
    x = splits["train"].images.float().div_(255)
    info = DatasetInfo(task="segment", classes=list(CLASSES), channels=1, image_size=size, name="digits-seg",
                       hflip_ok=False,
                       extra={"counts": {s: len(v) for s, v in splits.items()}, "n_train": len(splits["train"]),
                              "mean": [round(float(x.mean()), 4)], "std": [round(float(x.std()), 4)],
                              "source": "scikit-learn digits (8x8), scaled 2-4x", "canvas_seed": seed})
    return DataBundle(splits["train"], splits["val"], splits["test"], info)
