"""Batch-1 latency of eager PyTorch vs onnxruntime fp32 vs onnxruntime static int8 (issue 16), on one thread.

For each model: the checkpoint (a run directory, or an untrained model built from a Config with
seed 0 when no run is given) is exported with `cnnkit.export.onnx.export_onnx` (free batch axis, for evaluation) and
quantised with `cnnkit.export.quantize.quantize_int8` (calibrated on the training split); then
the same graph input (the first training image, preprocessed as predict does) is timed:
- eager: the exported part of the PyTorch model (`export/graph.py`: the whole classifier or
  segmenter; tinydet up to its raw outputs) under torch.inference_mode;
- onnxruntime fp32 / int8: `session.run` on that input.
Each: 50 untimed warm-up calls, then the median of `--runs` (default 300) timed calls, timed in
rounds of one call each (`timing.interleaved_medians`), torch and onnxruntime both on 1 thread.
The test-split metric of both ONNX files comes from `cnnkit eval`'s path. Writes bench/results/export_latency.json.

    python bench/export_latency.py resnet20=fashion-mnist digits=runs/digits-default \
        tinydet=runs/digits-detect-tinydet unet=runs/digits-seg-unet
A value that is a data name (not a directory) means: untrained model NAME on that data.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from cnnkit.bench.measure import machine
from cnnkit.config import Config
from cnnkit.engine.checkpoint import load_checkpoint, save_checkpoint
from cnnkit.engine.run import resolve_run
from cnnkit.engine.trainer import checkpoint_meta
from cnnkit.export.graph import graph_of
from cnnkit.export.onnx import export_onnx
from cnnkit.export.quantize import CALIBRATION_IMAGES, calibration_inputs, compare, quantize_int8
from cnnkit.engine.predictor import load
from cnnkit.export.timing import interleaved_medians

WARMUP = 50


def checkpoint(name: str, source: str, tmp: Path) -> tuple[dict, bool]:
    """(checkpoint dict, trained?) for a run directory / checkpoint, or an untrained `name` on data `source`."""
    if Path(source).exists():
        return load_checkpoint(source), True
    cfg = Config()
    cfg.data.name, cfg.model.name, cfg.train.threads = source, name, 1
    run = resolve_run(cfg, device="cpu")
    path = save_checkpoint(tmp / f"{name}.pt", run.model.state_dict(),
                           checkpoint_meta(run.task, run.cfg, run.info, 0, {}))
    return load_checkpoint(path), False


def plain_export(module: torch.nn.Module, x: torch.Tensor, tmp: Path, label: str, calibration: list) -> tuple:
    """The issue's reference: a plain `torch.onnx.export` of the same network (static batch 1, no
    cnnkit metadata or preprocessing) and onnxruntime's `quantize_static` with its default settings
    (QDQ, per-tensor int8), calibrated on the same images. Returns (fp32 path, int8 path)."""
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from cnnkit.export.quantize import Calibration

    fp32, prepared, int8 = (tmp / f"{label}.plain{s}.onnx" for s in ("", ".pre", ".int8"))
    torch.onnx.export(module, (x,), str(fp32), input_names=["images"], opset_version=17, dynamo=False)
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(int8), Calibration(calibration, "images"))
    return fp32, int8


def measure(label: str, name: str, source: str, runs: int, tmp: Path, plain: bool = False) -> dict:
    ckpt, trained = checkpoint(name, source, tmp)
    fp32, graph = export_onnx(ckpt, tmp / f"{label}.onnx", dynamic_batch=True)  # batched eval; timed at batch 1
    int8 = quantize_int8(fp32, tmp / f"{label}.int8.onnx")
    row = compare(fp32, int8, runs=20)  # metric and size; latency is re-measured below, interleaved
    images = calibration_inputs(load(fp32), CALIBRATION_IMAGES if plain else 1)  # the plain int8's calibration too
    x = images[0]
    run = resolve_run(ckpt, device="cpu")
    module, _, _ = graph_of(run.model, run.task.output, ckpt["meta"]["model"]["name"])
    fns = {"eager": lambda: module(x), "fp32": _session(row["fp32"]["file"], x),
           "int8": _session(row["int8"]["file"], x)}
    if plain:  # one call of each per round, with the three above
        ref32, ref8 = plain_export(module, x, tmp, label, images)
        fns.update(plain_fp32=_session(str(ref32), x), plain_int8=_session(str(ref8), x))
    with torch.inference_mode():  # one call of each per round: a shared machine's load hits all three alike
        ms = interleaved_medians(fns, runs, WARMUP)
    eager = ms["eager"]
    for key in ("fp32", "int8"):
        row[key]["latency_ms"] = ms[key]
    return {"label": label, "model": ckpt["meta"]["model"]["name"], "data": ckpt["meta"].get("data_name", source),
            "trained": trained, "graph": graph, "input": list(x.shape), "eager_ms": eager,
            "onnxruntime_ms": row["fp32"]["latency_ms"], "onnxruntime_int8_ms": row["int8"]["latency_ms"],
            "fp32_vs_eager": round(row["fp32"]["latency_ms"] / eager, 3),
            "int8_vs_eager": round(row["int8"]["latency_ms"] / eager, 3),
            "metric": row["fp32"]["metric"], "fp32_metric": row["fp32"]["value"], "int8_metric": row["int8"]["value"],
            "int8_drop_points": row["drop_points"], "fp32_bytes": row["fp32"]["bytes"],
            "int8_bytes": row["int8"]["bytes"],
            **({"plain_onnx_ms": ms["plain_fp32"], "plain_int8_ms": ms["plain_int8"]} if plain else {})}


def _session(path: str, x: torch.Tensor):
    from cnnkit.engine.exported import open_session
    from cnnkit.export.timing import session_call

    return session_call(open_session(path, threads=1), x)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", metavar="LABEL=RUN_DIR|DATA", help="e.g. resnet20=fashion-mnist")
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--plain", action="store_true", help="also time a plain torch.onnx.export of each network and "
                                                        "onnxruntime's default static int8 of it (the issue's reference)")
    p.add_argument("--out", default="bench/results/export_latency.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.models:
            label, source = item.split("=", 1)
            name = label if not Path(source).exists() else ""
            rows.append(measure(label, name, source, args.runs, Path(tmp), args.plain))
            print(json.dumps(rows[-1]), file=sys.stderr)
    result = {"command": "python bench/export_latency.py " + " ".join(argv or sys.argv[1:]), "threads": 1,
              "batch": 1, "runs": args.runs, "warmup": WARMUP, "machine": machine(),
              "seconds": round(time.time() - started), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
