"""`cnnkit export --format onnx`: a checkpoint -> one self-describing `.onnx` file.

The graph is traced with PyTorch's TorchScript-based exporter (`torch.onnx.export(...,
dynamo=False)`): measured with torch 2.14, the dynamo exporter needs `onnxscript`, which the
export extra does not bring, and the traced graphs of the cnnkit models run in onnxruntime
at the same speed. What goes into the graph is `export/graph.py`'s; the file's
`metadata_props` (`export/metadata.py`) say how to feed it. Written atomically (temporary
file, then rename), like checkpoints.
"""
from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from cnnkit.errors import CnnkitError
from cnnkit.export.graph import graph_of
from cnnkit.export.metadata import props_from_meta

DEFAULT_OPSET = 17


def sample_input(run, graph: str) -> torch.Tensor:
    """One input of the graph's kind, 1 x C x H x W, built the way predict builds it (a black image)."""
    pre = run.checkpoint["meta"]["preprocess"]
    h, w = pre["size"]
    image = torch.zeros(run.info.channels, h, w, dtype=torch.uint8)
    x = run.task.model_input([image], pre)
    if graph == "tinydet-head":  # what the detector's own transform makes of it
        x = run.model.transform(list(x))[0].tensors
    return x


def export_onnx(ckpt: dict[str, Any], out: str | Path, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = False) -> tuple[Path, str]:
    """Write the checkpoint's model as ONNX to `out`; returns (path, graph kind). `dynamic_batch`
    leaves the batch axis free (default: batch 1; cnnkit feeds such a graph one image at a time).
    Raises `CnnkitError` naming the operator the exporter could not convert."""
    import onnx

    from cnnkit.engine.run import resolve_run

    run = resolve_run(ckpt, device="cpu")
    meta = ckpt["meta"]
    module, graph, outputs = graph_of(run.model, run.task.output, meta["model"]["name"])
    data = trace(module, sample_input(run, graph), graph, outputs, meta["model"]["name"], opset, dynamic_batch)
    proto = onnx.load_from_string(data)
    for key, value in props_from_meta(meta, graph, run.task.output).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"cnnkit {meta['task']} model {meta['model']['name']}; see metadata_props"
    onnx.checker.check_model(proto)
    return write_atomic(proto.SerializeToString(), out), graph


def trace(module: torch.nn.Module, x: torch.Tensor, graph: str, outputs: list[str], name: str,
          opset: int = DEFAULT_OPSET, dynamic_batch: bool = False) -> bytes:
    """The serialised ONNX graph of `module` traced on input x (named "images"); `name` (the model's)
    is for the error. Raises `CnnkitError` naming the operator the exporter could not convert."""
    axes: dict[str, dict[int, str]] = {}
    if dynamic_batch:
        axes = {"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    if graph == "tinydet-head":  # another aspect ratio is another padded size
        axes["images"] = {**axes.get("images", {}), 2: "height", 3: "width"}
        for o in outputs:
            axes[o] = {**axes.get(o, {}), 1: "cells"}
    if graph == "torchvision-instance":  # one image of any size in, any number of objects out
        axes = {"images": {2: "height", 3: "width"}, **{o: {0: "objects"} for o in outputs}}
        axes["masks"] = {0: "objects", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    try:
        # tracer warnings about constants are expected here, and a failing export prints its whole IR graph
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), (x,), buffer, input_names=["images"], output_names=outputs,
                              opset_version=opset, dynamic_axes=axes or None, dynamo=False)
    except Exception as err:  # noqa: BLE001 - the exporter raises many types; each becomes one sentence
        raise CnnkitError(export_failure(err, name, opset)) from None
    return buffer.getvalue()


def export_failure(err: Exception, model_name: str, opset: int) -> str:
    """One sentence for an export that failed, naming the operator when the exporter says which."""
    text = str(err)
    op = re.search(r"operator '?([\w:.]+)'?", text) or re.search(r"(aten::\w+|prim::\w+)", text)
    if op:
        return (f'Model "{model_name}" cannot be exported to ONNX: the operator {op.group(1)} has no ONNX '
                f"conversion at opset {opset}; try a higher --opset or replace that layer.")
    first = (text.strip().splitlines() or [type(err).__name__])[0][:200]
    return f'Model "{model_name}" cannot be exported to ONNX: {first}'


def write_atomic(data: bytes, out: str | Path) -> Path:
    """`data` written to `out` atomically (engine/checkpoint.write_atomic)."""
    from cnnkit.engine.checkpoint import write_atomic as write_file_atomic

    return write_file_atomic(out, lambda f: f.write(data))
