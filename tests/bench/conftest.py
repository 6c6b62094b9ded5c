"""Tiny detection and segmentation sets for the bench tests: a few digit canvases, registered as built-ins.

The built-in digits-detect / digits-seg make 2,100 canvases (about 20 s on a busy 2-core machine);
these make 36 of the same kind, so a detector and a segmenter resolve through `engine/run.py`
exactly as `cnnkit bench tinydet --data digits-detect` does, in a second.
"""
from __future__ import annotations

from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.builtin.canvas import digit_canvases
from cnnkit.data.registry import BUILTINS
from cnnkit.data.segmentation import SegSplit

SIZE = 48
COUNTS = {"train": 24, "val": 6, "test": 6}
DIGITS = [str(i) for i in range(10)]


def _canvases():
    return {s: digit_canvases(s, size=SIZE, seed=3, n=n) for s, n in COUNTS.items()}


@BUILTINS.register("bench-tiny-detect", task="detect")
def tiny_detect(cfg) -> DataBundle:
    c = _canvases()
    info = DatasetInfo("detect", DIGITS, 1, SIZE, name="bench-tiny-detect", hflip_ok=False,
                       extra={"n_train": COUNTS["train"]})
    return DataBundle(*(c[s].to_split(s) for s in COUNTS), info)


@BUILTINS.register("bench-tiny-seg", task="segment")
def tiny_seg(cfg) -> DataBundle:
    c = _canvases()
    splits = [SegSplit(c[s].images, c[s].semantic, [f"{s}_{i}.png" for i in range(len(c[s]))],
                       instances=c[s].to_split(s)) for s in COUNTS]
    info = DatasetInfo("segment", ["background", *DIGITS], 1, SIZE, name="bench-tiny-seg", hflip_ok=False,
                       extra={"n_train": COUNTS["train"]})
    return DataBundle(*splits, info)
