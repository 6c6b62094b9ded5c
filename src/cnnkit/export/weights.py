"""`cnnkit export --format safetensors`: the weights alone, with the checkpoint's meta as JSON.

The file holds the state dict (contiguous tensors) and, in the safetensors header's string
metadata, "cnnkit.format" = "cnnkit-safetensors/1" and "cnnkit.meta" = the checkpoint's meta
(task, model, classes, input spec, preprocessing, config) as JSON. `read_safetensors` turns it
back into a checkpoint dict, so `cnnkit.load(file)` (and predict, eval, explain) use it like a
`.pt` — with no pickle anywhere (DESIGN rule 4).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError

FORMAT = "cnnkit-safetensors/1"


def write_safetensors(ckpt: dict[str, Any], out: str | Path) -> Path:
    """Write `ckpt`'s weights and meta to `out` (atomically); returns the path."""
    from safetensors.torch import save

    from cnnkit.export.onnx import write_atomic

    state = {k: v.detach().cpu().contiguous() for k, v in ckpt["model"].items()}
    meta = {k: v for k, v in ckpt["meta"].items()}
    header = {"cnnkit.format": FORMAT, "cnnkit.meta": json.dumps(meta, default=str)}
    return write_atomic(save(state, metadata=header), out)


def read_safetensors(path: str | Path) -> dict[str, Any]:
    """A cnnkit `.safetensors` file -> a checkpoint dict ({"format", "model", "meta", "path", "state"}).
    Raises `CnnkitError` for a missing or unreadable file, or one without cnnkit's metadata."""
    from safetensors import safe_open

    from cnnkit.engine.checkpoint import FORMAT as CKPT_FORMAT

    path = Path(path).expanduser()
    if not path.is_file():
        raise CnnkitError(f"Weights file {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for bad headers
        raise CnnkitError(f"Cannot read weights file {path}: {str(err).splitlines()[0][:160]}.") from None
    if header.get("cnnkit.format") != FORMAT:
        raise CnnkitError(f"{path} has no cnnkit metadata ('cnnkit.format' = '{FORMAT}'); export it with "
                          "`cnnkit export RUN_DIR --format safetensors`.")
    return {"format": CKPT_FORMAT, "model": state, "meta": json.loads(header["cnnkit.meta"]), "state": None,
            "path": str(path)}
