"""`Predictor`: a checkpoint turned back into a ready model — for predict, eval, explain and serve.

Everything comes from the checkpoint's own meta (task, architecture, classes, input spec,
preprocessing), so nothing else is needed to use a trained model (DESIGN rule 4).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnkit.data.base import DatasetInfo
from cnnkit.engine.checkpoint import load_checkpoint
from cnnkit.engine.inputs import InMemory, collect_inputs
from cnnkit.engine.run import resolve_run
from cnnkit.errors import CnnkitError


class Predictor:
    def __init__(self, ckpt: dict[str, Any], device: str = "auto"):
        if "runtime" in ckpt:  # an exported .onnx file (engine/exported.py): its own model, no weights to load
            self.meta, self.path, self.session = ckpt["meta"], ckpt["path"], ckpt["session"]
            self.cfg, self.info, self.task, self.device, self.model = ckpt["runtime"]
            return
        run = resolve_run(ckpt, device=device)
        self.meta, self.path = ckpt["meta"], ckpt["path"]
        self.cfg, self.info, self.task, self.device, self.model = run.cfg, run.info, run.task, run.device, run.model

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    def preprocess(self, images: list[torch.Tensor]) -> torch.Tensor:
        """uint8 C x H x W images -> the model input the task builds from them (`Task.model_input`)."""
        return self.task.model_input(images, self.meta["preprocess"]).to(self.device)

    def check_compatible(self, info: DatasetInfo) -> None:
        if info.classes != self.info.classes:
            raise CnnkitError(f"The data's classes {info.classes[:6]}... differ from the checkpoint's "
                              f"{self.info.classes[:6]}...; evaluate on data with the same class list.")

    def predict(self, inputs, save_dir: str | Path | None = None, **options) -> list[dict[str, Any]]:
        """Paths / globs / folders and in-memory images (PIL images, numpy H x W [x C] arrays, torch
        C x H x W tensors or N x C x H x W batches; uint8 or floats in [0, 1]: `engine.inputs`), mixed in
        one list if need be: one record per file or image, in input order (folders, globs and batches
        expand in place; an in-memory image's record says `"file": "<image i>"`, i its position in
        `inputs`, "i.j" for image j of a batch). Raises `CnnkitError` for any other input."""
        if hasattr(self.task, "predict_inputs"):  # a task that reads something other than images (strings)
            return self.task.predict_inputs(self.model, self.meta, inputs, save_dir, **options)
        items = collect_inputs(inputs, self.meta["preprocess"]["channels"])
        return predict_files(self.task, self.model, self.meta, items, Path(save_dir) if save_dir else None,
                             **options)


def load(source: str | Path, device: str = "auto", **onnx_options: Any) -> Predictor:
    """A run directory (its best.pt), a checkpoint file or an exported `.onnx` file -> Predictor
    (`onnx_options`: size, channels, classes for an ONNX file without cnnkit metadata)."""
    if str(source).lower().endswith(".onnx"):
        from cnnkit.engine.exported import open_onnx

        return Predictor(open_onnx(source, **onnx_options))
    if str(source).lower().endswith(".safetensors"):
        from cnnkit.engine.exported import read_safetensors

        return Predictor(read_safetensors(source), device=device)
    return Predictor(load_checkpoint(source), device=device)


@torch.no_grad()
def predict_files(task, model: torch.nn.Module, meta: dict[str, Any], paths: list[str | InMemory],
                  save_dir: Path | None, **options: Any) -> list[dict[str, Any]]:
    """The one loop over inputs (file paths, or images already decoded: `engine.inputs.InMemory`):
    read, `task.model_input`, `task.predict_one`, one JSON record each (`task.record`; unreadable files
    get {"file", "error"}), and with `save_dir` the task's drawings (`<n>_<stem><suffix>.png`, or
    captioned tiles in one predictions.png) and result files."""
    import json

    from cnnkit.data.decode import BadImage, read_image
    from cnnkit.report.draw import save_png

    pre = meta["preprocess"]
    device = next(model.parameters()).device
    model.eval()
    records, tiles = [], []
    for n, item in enumerate(paths, start=1):
        if isinstance(item, InMemory):
            name, stem, img = f"<image {item.label}>", f"image_{item.label}", item.image
        else:
            name, stem = str(item), Path(item).stem
            try:
                img = read_image(name, pre["channels"])
            except BadImage as e:
                records.append({"file": name, "error": e.reason})
                continue
        pred = task.predict_one(model, task.model_input([img], pre).to(device), img, **options)
        record = {"file": name, **task.record(pred, img, meta, n, **options)}
        if save_dir is not None:
            for d in task.draw(img, pred, meta, Path(name).name, **options):
                if d.caption is not None:
                    tiles.append((d.image, d.caption))
                else:
                    record[d.key] = str(save_png(d.image, Path(save_dir) / f"{n:04d}_{stem}{d.suffix}.png"))
        records.append(record)
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        for name, content in task.result_files(records).items():
            (Path(save_dir) / name).write_text(json.dumps(content))
        if tiles:
            from cnnkit.report.plots import image_grid

            image_grid([t for t, _ in tiles], [c for _, c in tiles], Path(save_dir) / "predictions.png")
    return records
