"""The `.pt` checkpoint format: weights + self-description + (optionally) exact resume state.

A checkpoint holds only tensors and plain values, so it loads with
`torch.load(weights_only=True)` and never unpickles arbitrary objects (DESIGN rule 4).
It is written atomically: temporary file in the same folder, fsync, rename — a crash
mid-write leaves the previous file intact.

Layout::

    {"format": "cnnkit-checkpoint/1",
     "model": state_dict,
     "meta": {"task", "model": {"name", "kwargs"}, "classes", "channels", "image_size",
              "preprocess", "config", "epoch", "metrics", "sha256"},
     "state": {...} | None}   # optimizer, scheduler, ema, rng, loop counters (last.pt only)

Loading verifies what it can before any weight is used: the description (meta) is present and of the
right types, every floating tensor is finite, and the weights match the sha256 recorded when the file
was written (files from before the checksum load without that check). `load_weights` then checks the
weights against the architecture the meta describes: same keys, shapes and dtypes.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

from cnnkit.errors import CnnkitError

FORMAT = "cnnkit-checkpoint/1"


def save_checkpoint(path: str | Path, model_state: dict, meta: dict[str, Any],
                    state: dict[str, Any] | None = None) -> Path:
    payload = {"format": FORMAT, "model": model_state, "meta": {**meta, "sha256": weights_sha256(model_state)},
               "state": state}
    return write_atomic(path, lambda f: torch.save(payload, f))


def write_atomic(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """`write(file)` into a temporary file beside `path`, fsync, then rename over `path`: a crash or
    kill mid-write leaves the previous file (or none), never half of one. Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
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
    _check_contents(ckpt, path)
    ckpt["path"] = str(path)
    return ckpt


# meta key -> the types its value may have; a file without them cannot be rebuilt into its model
META_TYPES: dict[str, tuple[type, ...]] = {"task": (str,), "model": (dict,), "classes": (list,), "channels": (int,),
                                           "image_size": (int, list, tuple), "preprocess": (dict,),
                                           "config": (dict,)}
RETRAIN = "use another checkpoint or retrain"


def check_meta(ckpt: dict[str, Any]) -> None:
    """The self-description a model is rebuilt from (META_TYPES) is there, with the right types; CnnkitError
    naming the first missing or mistyped key. Every command that rebuilds a model calls this first."""
    meta, path = ckpt["meta"], ckpt.get("path", "(in memory)")
    for key, types in META_TYPES.items():
        value = meta.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            what = "lacks" if key not in meta else f"has a {type(value).__name__} for"
            raise CnnkitError(f'Checkpoint {path} {what} meta "{key}" ({" or ".join(t.__name__ for t in types)} '
                              f"expected); {RETRAIN}.")
    pre, channels = meta["preprocess"], meta["channels"]
    checks = [("channels", channels, _is_count(channels, MAX_CHANNELS)),
              ("image_size", meta["image_size"], _is_size(meta["image_size"])),
              ("classes", f"a list of {len(meta['classes'])}", len(meta["classes"]) <= MAX_CLASSES),
              ("preprocess.size", pre.get("size"), _is_size(pre.get("size"))),
              ("preprocess.channels", pre.get("channels"), pre.get("channels") == channels)]
    for key in ("mean", "std"):
        if key in pre:
            v = pre[key]
            ok = isinstance(v, list) and len(v) == channels and all(_is_real(x) and (key == "mean" or x > 0) for x in v)
            checks.append((f"preprocess.{key}", v, ok))
    for key, value, ok in checks:
        if not ok:
            raise CnnkitError(f'Checkpoint {path} records meta "{key}" = {str(value)[:60]}, which no model cnnkit '
                              f"writes has (channels <= {MAX_CHANNELS}, sides <= {MAX_SIDE}, classes <= "
                              f"{MAX_CLASSES:,}); {RETRAIN}.")


# caps on what a checkpoint may describe, checked before a model is built from it
MAX_CHANNELS, MAX_SIDE, MAX_CLASSES = 1024, 8192, 100_000


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_count(x: Any, cap: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= cap


def _is_size(x: Any) -> bool:
    """An image side or [h, w] / [h] within MAX_SIDE."""
    if isinstance(x, (list, tuple)):
        return 1 <= len(x) <= 2 and all(_is_count(v, MAX_SIDE) for v in x)
    return _is_count(x, MAX_SIDE)


def _check_contents(ckpt: dict[str, Any], path: Path) -> None:
    """The meta is a mapping, the weights are finite tensors matching their checksum; CnnkitError naming
    the first problem."""
    meta, weights = ckpt.get("meta"), ckpt.get("model")
    if not isinstance(meta, dict):
        raise CnnkitError(f"Checkpoint {path} lacks its description (meta); {RETRAIN}.")
    if not isinstance(weights, dict) or not weights:
        raise CnnkitError(f"Checkpoint {path} holds no weights; {RETRAIN}.")
    for key, t in weights.items():
        if not isinstance(key, str) or not isinstance(t, torch.Tensor):
            raise CnnkitError(f'Checkpoint {path}: weights entry "{key}" is not a tensor; {RETRAIN}.')
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CnnkitError(f'Checkpoint {path}: weights "{key}" hold NaN or infinite values; {RETRAIN}.')
    recorded = meta.get("sha256")
    if recorded is not None and recorded != weights_sha256(weights):
        raise CnnkitError(f"Checkpoint {path} fails its checksum: its weights changed after it was written "
                          f"(sha256 {str(recorded)[:12]}... recorded); {RETRAIN}.")


def weights_sha256(state: dict[str, Any]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes, in name order (what `meta["sha256"]` records)."""
    h = hashlib.sha256()
    for key in sorted(state, key=str):
        t = state[key]
        if not isinstance(t, torch.Tensor):
            h.update(f"{key}|{t!r}|".encode())
            continue
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_weights(model: torch.nn.Module, weights: dict[str, Any], path: str | Path) -> None:
    """`model.load_state_dict(weights)` after checking that the weights fit the architecture: the same keys,
    shapes and dtypes (integer-cast weights would otherwise be copied in silently). CnnkitError naming the
    first mismatched key."""
    expected = model.state_dict()
    for key, want in expected.items():
        got = weights.get(key)
        if not isinstance(got, torch.Tensor):
            raise CnnkitError(f'Checkpoint {path}: its weights do not match the architecture it describes (no "{key}" '
                              f"of shape {tuple(want.shape)}); {RETRAIN}.")
        if got.shape != want.shape or got.dtype != want.dtype:
            raise CnnkitError(f'Checkpoint {path}: weights "{key}" are {got.dtype} {tuple(got.shape)} but the '
                              f"architecture it describes needs {want.dtype} {tuple(want.shape)}; {RETRAIN}.")
    extra = [k for k in weights if k not in expected]
    if extra:
        raise CnnkitError(f'Checkpoint {path}: weights "{extra[0]}" belong to no layer of the architecture it '
                          f"describes; {RETRAIN}.")
    model.load_state_dict(weights, strict=True)


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
