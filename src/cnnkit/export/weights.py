"""`cnnkit export --format safetensors`: the weights alone, with the checkpoint's meta as JSON.

The file holds the state dict (contiguous tensors) and, in the safetensors header's string
metadata, "cnnkit.format" = "cnnkit-safetensors/1" and "cnnkit.meta" = the checkpoint's meta
(task, model, classes, input spec, preprocessing, config) as JSON. `engine.exported.read_safetensors`
turns it back into a checkpoint dict, so `cnnkit.load(file)` (and predict, eval, explain) use it
like a `.pt`, with no pickle anywhere (DESIGN rule 4).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnkit.engine.exported import SAFETENSORS_FORMAT as FORMAT


def write_safetensors(ckpt: dict[str, Any], out: str | Path) -> Path:
    """Write `ckpt`'s weights and meta to `out` (atomically); returns the path."""
    from safetensors.torch import save

    from cnnkit.export.onnx import write_atomic

    state = {k: v.detach().cpu().contiguous() for k, v in ckpt["model"].items()}
    meta = {k: v for k, v in ckpt["meta"].items()}
    header = {"cnnkit.format": FORMAT, "cnnkit.meta": json.dumps(meta, default=str)}
    return write_atomic(save(state, metadata=header), out)
