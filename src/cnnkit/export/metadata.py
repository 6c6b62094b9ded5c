"""What an exported file says about itself: the ONNX `metadata_props` cnnkit writes and reads back.

An exported model needs nothing else to be used (DESIGN rule 4): the task, class names,
input size and channels, mean/std and the resize rule travel inside the `.onnx` file as
plain strings (JSON where a value is a list or a dict), readable with any ONNX tool:

    cnnkit.format      "cnnkit-onnx/1"
    cnnkit.task        classify | detect | segment
    cnnkit.graph       what the graph computes from its input "images" (see `export/graph.py`)
    cnnkit.classes     JSON list of class names
    cnnkit.channels    input channels;  cnnkit.size: JSON [h, w] the graph's input is resized to
    cnnkit.mean / cnnkit.std   JSON lists (normalisation after scaling pixels to 0..1; absent for detectors)
    cnnkit.resize      the resize rule in words
    cnnkit.preprocess  JSON: the checkpoint's whole preprocessing dict (the keys above win over it)
    cnnkit.model / cnnkit.config / cnnkit.image_size / cnnkit.data   the checkpoint's meta, as JSON

`engine/exported.py` reads them back into the checkpoint meta the engine uses, so predict, eval
and explain read an ONNX file the way they read a checkpoint.
"""
from __future__ import annotations

import json
from typing import Any

from cnnkit.engine.exported import FORMAT
RESIZE_RULES = {
    "logits": "resize to size (h, w), bilinear with antialiasing; pixels / 255, then (x - mean) / std",
    "pixel_logits": "resize to size (h, w), bilinear with antialiasing; pixels / 255, then (x - mean) / std",
    "boxes": "pixels / 255; longer side resized to size, padded to a multiple of 16 (GeneralizedRCNNTransform)",
}


def props_from_meta(meta: dict[str, Any], graph: str, output: str) -> dict[str, str]:
    """A checkpoint's meta -> the `metadata_props` strings (keys as in the module docstring)."""
    pre = dict(meta["preprocess"])
    props = {"cnnkit.format": FORMAT, "cnnkit.task": meta["task"], "cnnkit.graph": graph,
             "cnnkit.classes": json.dumps(list(meta["classes"])), "cnnkit.channels": str(int(meta["channels"])),
             "cnnkit.size": json.dumps(list(pre["size"])), "cnnkit.resize": RESIZE_RULES.get(output, ""),
             "cnnkit.preprocess": json.dumps(pre), "cnnkit.model": json.dumps(meta["model"]),
             "cnnkit.config": json.dumps(meta["config"]), "cnnkit.image_size": json.dumps(meta["image_size"]),
             "cnnkit.data": str(meta.get("data_name", ""))}
    for key in ("mean", "std"):
        if key in pre:
            props[f"cnnkit.{key}"] = json.dumps(list(pre[key]))
    return props
