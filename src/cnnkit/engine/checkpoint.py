"""The `.pt` checkpoint format: weights + self-description + (optionally) exact resume state.

A checkpoint holds only tensors and plain values, so it loads with
`torch.load(weights_only=True)` and never unpickles arbitrary objects (DESIGN rule 4).
It is written atomically: temporary file in the same folder, fsync, rename — a crash
mid-write leaves the previous file intact.

Layout::

    {"format": "cnnkit-checkpoint/1",
     "model": state_dict,
     "meta": {"task", "model": {"name", "kwargs"}, "classes", "channels", "image_size",
              "preprocess", "config", "epoch", "metrics"},
     "state": {...} | None}   # optimizer, scheduler, ema, rng, loop counters (last.pt only)
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import CnnkitError

FORMAT = "cnnkit-checkpoint/1"


def save_checkpoint(path: str | Path, model_state: dict, meta: dict[str, Any],
                    state: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "model": model_state, "meta": meta, "state": state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def resolve_checkpoint(source: str | Path, prefer: str = "best.pt") -> Path:
    """A run directory -> its best.pt (or last.pt); a file -> itself."""
    p = Path(source).expanduser()
    if p.is_dir():
        for name in (prefer, "best.pt", "last.pt"):
            if (p / name).exists():
                return p / name
        raise CnnkitError(f"No checkpoint in {p}: expected best.pt or last.pt (did the run finish an epoch?).")
    if not p.exists():
        raise CnnkitError(f"Checkpoint {p} does not exist.")
    return p


def load_checkpoint(source: str | Path, prefer: str = "best.pt") -> dict[str, Any]:
    path = resolve_checkpoint(source, prefer)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holds pickled objects
        raise CnnkitError(f"Cannot read checkpoint {path}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CnnkitError(f"{path} is not a cnnkit checkpoint (no '{FORMAT}' marker).")
    ckpt["path"] = str(path)
    return ckpt


# ---- RNG state as plain values ---------------------------------------------------------
def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_plain_to_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(s: tuple) -> list:
    version, internal, gauss = s
    return [version, list(internal), gauss]


def _plain_to_python_state(s: list) -> tuple:
    return (s[0], tuple(s[1]), s[2])
