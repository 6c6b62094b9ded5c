"""Exported model files opened for use: an `.onnx` file run by onnxruntime, `.safetensors` weights.

`engine.predictor.load` builds its `Predictor` from what these return, so `cnnkit predict`, `eval`,
`explain` (occlusion) and `serve` go through their usual loops: `Task.model_input` builds the
input from the file's own metadata and the task turns outputs into predictions and metrics, so
the exported path cannot drift from the checkpoint's. Writing these files is `cnnkit.export`'s job
(it builds on the engine; reading them lives here so the engine does not depend on it).

- ONNX metadata (`metadata_props`, written by `export/metadata.py`): `meta_from_props` turns them
  back into the checkpoint meta the engine uses. Graph kinds are `export/graph.py`'s.
- `OnnxModel` (logits, pixel_logits graphs): an `nn.Module` whose forward(x N x C x H x W float)
  returns the graph's logits as a torch tensor on x's device; a batch-1 graph is fed one image at
  a time. tinydet-head graphs: the detector built from the metadata's config (weights unused),
  with its `_head` replaced by `OrtHead`; transform, decode, NMS and postprocess stay PyTorch code.
- `.safetensors`: the state dict plus "cnnkit.meta" (JSON) in the header -> a checkpoint dict.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnkit.data.base import DatasetInfo
from cnnkit.engine.checkpoint import FORMAT as CHECKPOINT_FORMAT
from cnnkit.errors import CnnkitError

FORMAT = "cnnkit-onnx/1"  # metadata_props "cnnkit.format"
SAFETENSORS_FORMAT = "cnnkit-safetensors/1"  # safetensors header "cnnkit.format"
MISSING_HELP = {"size": "--size H[,W]", "channels": "--channels C", "classes": "--classes N or --classes a,b,c"}


def open_session(path: str | Path | bytes, threads: int | None = None):
    """An onnxruntime CPU session on a file (or a serialised graph; threads: intra-op threads, default
    torch's count). Raises `CnnkitError` when the file is missing or is not a readable ONNX model."""
    import onnxruntime as ort

    if isinstance(path, bytes):
        model, path = path, "<in memory>"
    else:
        path = model = Path(path)
        if not path.is_file():
            raise CnnkitError(f"ONNX file {path} does not exist.")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for bad protobufs
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CnnkitError(f"Cannot read ONNX file {path}: {first}; export it again with `cnnkit export`.") from None


def run_session(session, x: torch.Tensor) -> list[torch.Tensor]:
    """The session's outputs for the input batch x (fed image by image to a batch-1 graph)."""
    inp = session.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    arr = x.detach().float().cpu().contiguous().numpy()
    if fixed is not None and arr.shape[0] != fixed:
        parts = [session.run(None, {inp.name: arr[i:i + fixed]}) for i in range(0, arr.shape[0], fixed)]
        outs = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    else:
        outs = session.run(None, {inp.name: arr})
    return [torch.from_numpy(np.ascontiguousarray(o)).to(x.device) for o in outs]


class OnnxModel(nn.Module):
    """forward(x: float N x C x H x W) -> the graph's first output (logits) as a float tensor."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        # A parameter only so `next(model.parameters()).device` (the predict loop's device) answers cpu.
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_session(self.session, x)[0]


class OrtHead:
    """tinydet's `_head(x)` computed by onnxruntime: (cls_logits, boxes, iou_logits, None)."""

    def __init__(self, session):
        self.session = session

    def __call__(self, x: torch.Tensor):
        cls, boxes, iou = run_session(self.session, x)
        return cls, boxes, iou, None


class OrtInstance(nn.Module):
    """A Mask R-CNN graph (export/graph.py "torchvision-instance") as torchvision's eval contract:
    forward(list of float C x H x W images) -> list of {boxes, labels, scores, masks}."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # the predict loop asks its device

    def forward(self, images, targets=None):
        out = []
        for img in images:
            boxes, labels, scores, masks = run_session(self.session, img[None])
            out.append({"boxes": boxes, "labels": labels.long(), "scores": scores, "masks": masks})
        return out


def runtime_model(graph: str, session, detector: nn.Module | None = None, path: str = "") -> nn.Module:
    """The model-like object running `session` for a graph kind (`export/graph.py`); for "tinydet-head"
    `detector` (a tinydet, weights unused) gets the session as its `_head` and is returned."""
    if graph == "tinydet-head" and detector is not None:
        detector._head = OrtHead(session)  # the detector's own transform/decode/NMS around the graph
        return detector.eval()
    if graph in ("logits", "pixel_logits"):
        return OnnxModel(session).eval()
    if graph == "torchvision-instance":
        return OrtInstance(session).eval()
    raise CnnkitError(f"{path}: unknown cnnkit.graph {graph!r} in its metadata; export it again with this "
                      "version of cnnkit.")


def open_onnx(path: str | Path, size: Any = None, channels: int | None = None, classes: Any = None,
              threads: int | None = None) -> dict[str, Any]:
    """An `.onnx` file -> what `engine.predictor.Predictor` is built from: {"meta", "path", "session",
    "runtime": (cfg, info, task, device, model)}. A file cnnkit exported describes itself; for any other
    classifier give `size` (int or (h, w)), `channels` and `classes` (a count or a list of names) where
    the graph's input/output shapes do not say them: pixels are then scaled to 0..1 (mean 0, std 1).
    Raises `CnnkitError` for an unreadable file, or naming exactly the values that are missing."""
    from cnnkit.config import Config
    from cnnkit.tasks import get_task

    session = open_session(path, threads)
    props = dict(session.get_modelmeta().custom_metadata_map)
    meta = meta_from_props(props, str(path)) if props.get("cnnkit.format") == FORMAT else \
        plain_meta(session, str(path), size, channels, classes)
    meta["runtime"] = "onnxruntime"
    cfg = Config.from_dict(meta["config"])
    pre = meta["preprocess"]
    info = DatasetInfo(task=meta["task"], classes=list(meta["classes"]), channels=int(meta["channels"]),
                       image_size=meta["image_size"], name=meta.get("data_name", ""))
    info.extra.update({k: pre[k] for k in ("mean", "std") if k in pre})
    task = get_task(meta["task"])
    task.setup(cfg, info)
    detector = task.build_model(cfg, info) if meta["graph"] == "tinydet-head" else None
    model = runtime_model(meta["graph"], session, detector, str(path))
    return {"meta": meta, "path": str(path), "session": session,
            "runtime": (cfg, info, task, torch.device("cpu"), model)}


def plain_meta(session, path: str, size: Any, channels: int | None, classes: Any) -> dict[str, Any]:
    """The meta of a classifier ONNX file without cnnkit metadata, from the given values and the
    graph's static shapes (input N x C x H x W, output N x K)."""
    shape = session.get_inputs()[0].shape
    out = session.get_outputs()[0].shape
    static = [d if isinstance(d, int) else None for d in shape]
    if size is None and len(static) == 4 and static[2] and static[3]:
        size = [static[2], static[3]]
    if channels is None and len(static) == 4 and static[1]:
        channels = static[1]
    if classes is None and len(out) == 2 and isinstance(out[1], int):
        classes = out[1]
    missing = [k for k, v in (("size", size), ("channels", channels), ("classes", classes)) if v is None]
    if missing:
        flags = ", ".join(MISSING_HELP[k] for k in missing)
        raise CnnkitError(f"{path} has no cnnkit metadata and its shapes do not say its {', '.join(missing)}: "
                          f"give {flags} (or export it with `cnnkit export`).")
    try:
        size = [int(s) for s in (str(size).split(",") if isinstance(size, (int, str)) else size)]
        size = size * 2 if len(size) == 1 else size
        c = int(channels)
    except ValueError:
        raise CnnkitError(f"--size takes H or H,W and --channels an integer; got {size!r} and {channels!r}.") from None
    if isinstance(classes, str):
        classes = int(classes) if classes.strip().isdigit() else [n.strip() for n in classes.split(",")]
    names = [str(i) for i in range(classes)] if isinstance(classes, int) else [str(n) for n in classes]
    pre = {"size": size, "channels": c, "mean": [0.0] * c, "std": [1.0] * c}
    config = {"task": "classify"}
    return {"task": "classify", "graph": "logits", "model": {"name": "onnx", "kwargs": {}}, "classes": names,
            "channels": c, "image_size": size, "preprocess": pre, "config": config, "data_name": "", "metrics": {},
            "epoch": None}


def meta_from_props(props: dict[str, str], path: str) -> dict[str, Any]:
    """`metadata_props` written by `props_from_meta` -> the checkpoint meta (task, model, classes,
    channels, image_size, preprocess, config, data_name) plus "graph". Raises `CnnkitError` naming
    the key when one is missing or not valid JSON."""
    def value(key: str) -> Any:
        if key not in props:
            raise CnnkitError(f"{path} has no '{key}' in its ONNX metadata; re-export it with `cnnkit export`.")
        try:
            return json.loads(props[key])
        except json.JSONDecodeError:
            raise CnnkitError(f"{path}: the ONNX metadata '{key}' is not valid JSON ({props[key][:60]!r}); "
                              "re-export it with `cnnkit export`.") from None

    pre = dict(value("cnnkit.preprocess"))
    pre["size"] = value("cnnkit.size")
    pre["channels"] = int(value("cnnkit.channels"))
    for key in ("mean", "std"):
        if f"cnnkit.{key}" in props:
            pre[key] = value(f"cnnkit.{key}")
    return {"task": props.get("cnnkit.task", ""), "graph": props.get("cnnkit.graph", ""),
            "model": value("cnnkit.model"), "classes": value("cnnkit.classes"), "channels": pre["channels"],
            "image_size": value("cnnkit.image_size"), "preprocess": pre, "config": value("cnnkit.config"),
            "data_name": props.get("cnnkit.data", ""), "metrics": {}, "epoch": None}


def read_safetensors(path: str | Path) -> dict[str, Any]:
    """A cnnkit `.safetensors` file -> a checkpoint dict ({"format", "model", "meta", "path", "state"}).
    Raises `CnnkitError` for a missing or unreadable file, or one without cnnkit's metadata."""
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise CnnkitError(f"Weights file {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for bad headers
        raise CnnkitError(f"Cannot read weights file {path}: {str(err).splitlines()[0][:160]}.") from None
    if header.get("cnnkit.format") != SAFETENSORS_FORMAT:
        raise CnnkitError(f"{path} has no cnnkit metadata ('cnnkit.format' = '{SAFETENSORS_FORMAT}'); export it with "
                          "`cnnkit export RUN_DIR --format safetensors`.")
    return {"format": CHECKPOINT_FORMAT, "model": state, "meta": json.loads(header["cnnkit.meta"]), "state": None,
            "path": str(path)}
