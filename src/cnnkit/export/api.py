"""`cnnkit.export(...)` / `cnnkit export`: a run directory or checkpoint -> a deployable file.

One entry point over the format modules: `onnx.py` (graph + metadata), `check.py` (the
parity gate), `quantize.py` (int8) and `weights.py` (safetensors). Returns one JSON-able
summary; `export_text` is how the CLI shows it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError, did_you_mean

FORMATS = ("onnx", "safetensors")


def default_out(source: str | Path, fmt: str) -> Path:
    """RUN_DIR/model.<ext> for a run directory, else the checkpoint's path with the new suffix."""
    p = Path(source).expanduser()
    ext = ".onnx" if fmt == "onnx" else ".safetensors"
    return p / f"model{ext}" if p.is_dir() else p.with_suffix(ext)


def export(source: str | Path, format: str = "onnx", out: str | Path | None = None, opset: int | None = None,
           dynamic_batch: bool = False, check: bool = False, int8: bool = False, force: bool = False) -> dict[str, Any]:
    """Export the model of a run directory (its best.pt) or checkpoint.

    format "onnx": one `.onnx` file (default RUN_DIR/model.onnx) whose metadata_props hold the task,
    classes, input size/channels, mean/std and resize rule (`export/metadata.py`); opset default 17;
    `dynamic_batch` frees the batch axis (default batch 1). `check`: compare onnxruntime with PyTorch
    on held-out images (`export/check.py`). `int8`: also write `<name>.int8.onnx` (static QDQ,
    calibrated on the training split) and report metric, size and latency before/after; fails when
    the metric drops by more than 1 point unless `force`. format "safetensors": the weights with the
    meta as JSON, loadable by `cnnkit.load`.

    Returns {"format", "file", "bytes", "task", "graph"?, "check"?, "int8"?}. Raises `CnnkitError` for
    an unknown format, a model or operator that does not export, a failed check or int8 gate.
    """
    from cnnkit.engine.checkpoint import load_checkpoint

    if format not in FORMATS:
        raise CnnkitError(f'Unknown export format "{format}".{did_you_mean(format, FORMATS)} '
                          f"Use {' or '.join(FORMATS)}.")
    if format == "safetensors" and (check or int8):
        raise CnnkitError("--check and --int8 apply to --format onnx; safetensors holds the weights as they are.")
    ckpt = load_checkpoint(source)
    path = Path(out) if out else default_out(source, format)
    result: dict[str, Any] = {"format": format, "task": ckpt["meta"]["task"], "source": ckpt["path"]}
    if format == "safetensors":
        from cnnkit.export.weights import write_safetensors

        path = write_safetensors(ckpt, path)
        return {**result, "file": str(path), "bytes": path.stat().st_size}
    from cnnkit.export.onnx import DEFAULT_OPSET, export_onnx

    path, graph = export_onnx(ckpt, path, opset or DEFAULT_OPSET, dynamic_batch)
    result.update(file=str(path), bytes=path.stat().st_size, graph=graph, opset=opset or DEFAULT_OPSET,
                  dynamic_batch=dynamic_batch)
    if check:
        from cnnkit.export.check import check_parity, failure_text

        result["check"] = check_parity(path, ckpt["path"])
        if not result["check"]["passed"]:
            raise CnnkitError(failure_text(result["check"], path))
    if int8:
        from cnnkit.export.quantize import MAX_DROP_POINTS, compare, gate, quantize_int8

        q = quantize_int8(path, path.with_name(path.stem + ".int8.onnx"))
        result["int8"] = compare(path, q)
        if result["int8"]["drop_points"] > MAX_DROP_POINTS and not force:
            q.unlink()
        gate(result["int8"], force)
    return result


def export_text(result: dict[str, Any]) -> str:
    """The summary as a few lines of text (what `cnnkit export` prints without --json)."""
    lines = [f"wrote {result['file']} ({result['bytes'] / 1024:.1f} KiB, {result['format']}"
             + (f", graph {result['graph']}, opset {result['opset']}" if "graph" in result else "") + ")"]
    if "check" in result:
        c = result["check"]
        worst = ", ".join(f"{o['output']} {o['max_diff']:.2g} (tol {o['tolerance']:g})" for o in c["outputs"])
        lines.append(f"check passed on {c['images']} {c['split']} images, one by one and as a batch: {worst}")
    if "int8" in result:
        q = result["int8"]
        for name in ("fp32", "int8"):
            r = q[name]
            lines.append(f"{name}: {r['metric']} {r['value']:.4f}, {r['bytes'] / 1024:.1f} KiB, "
                         f"{r['latency_ms']:.3f} ms at batch 1 (median)  {r['file']}")
        lines.append(f"int8 drop: {q['drop_points']:.2f} points (limit {q['max_drop_points']:g})")
    return "\n".join(lines)
