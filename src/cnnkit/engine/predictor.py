"""`Predictor`: a checkpoint turned back into a ready model — for predict, eval, explain and serve.

Everything comes from the checkpoint's own meta (task, architecture, classes, input spec,
preprocessing), so nothing else is needed to use a trained model (DESIGN rule 4).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.data.base import DatasetInfo
from cnnkit.engine.checkpoint import load_checkpoint
from cnnkit.engine.run import resolve_run
from cnnkit.errors import CnnkitError


class Predictor:
    def __init__(self, ckpt: dict[str, Any], device: str = "auto"):
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
        """Paths / globs / folders and images (uint8 tensors C x H x W, PIL images, H x W [x C] arrays),
        mixed in one list if need be: one record per file or image, in input order (folders and globs
        expand in place; an image's record says `"file": "<image i>"`, i its position in `inputs`)."""
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        with tempfile.TemporaryDirectory() as tmp:  # in-memory images become PNG files, named <image i> after
            written = {_write_png(img, Path(tmp) / f"image_{i:05d}.png"): f"<image {i}>"
                       for i, img in enumerate(items) if not isinstance(img, (str, Path))}
            names = iter(written)
            paths = expand_inputs([item if isinstance(item, (str, Path)) else next(names) for item in items])
            records = predict_files(self.task, self.model, self.meta, paths, Path(save_dir) if save_dir else None,
                                    **options)
        for r in records:
            r["file"] = written.get(r["file"], r["file"])
        return records


def load(source: str | Path, device: str = "auto") -> Predictor:
    """A run directory (its best.pt) or a checkpoint file -> Predictor."""
    return Predictor(load_checkpoint(source), device=device)


@torch.no_grad()
def predict_files(task, model: torch.nn.Module, meta: dict[str, Any], paths: list[str], save_dir: Path | None,
                  **options: Any) -> list[dict[str, Any]]:
    """The one loop over input files: read, `task.model_input`, `task.predict_one`, one JSON record
    each (`task.record`; unreadable files get {"file", "error"}), and with `save_dir` the task's
    drawings (`<n>_<stem><suffix>.png`, or captioned tiles in one predictions.png) and result files."""
    import json

    from cnnkit.data.decode import BadImage, read_image
    from cnnkit.report.draw import save_png

    pre = meta["preprocess"]
    device = next(model.parameters()).device
    model.eval()
    records, tiles = [], []
    for n, path in enumerate(paths, start=1):
        try:
            img = read_image(str(path), pre["channels"])
        except BadImage as e:
            records.append({"file": str(path), "error": e.reason})
            continue
        pred = task.predict_one(model, task.model_input([img], pre).to(device), img, **options)
        record = {"file": str(path), **task.record(pred, img, meta, n, **options)}
        if save_dir is not None:
            for d in task.draw(img, pred, meta, Path(path).name, **options):
                if d.caption is not None:
                    tiles.append((d.image, d.caption))
                else:
                    record[d.key] = str(save_png(d.image, Path(save_dir) / f"{n:04d}_{Path(path).stem}{d.suffix}.png"))
        records.append(record)
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        for name, content in task.result_files(records).items():
            (Path(save_dir) / name).write_text(json.dumps(content))
        if tiles:
            from cnnkit.report.plots import image_grid

            image_grid([t for t, _ in tiles], [c for _, c in tiles], Path(save_dir) / "predictions.png")
    return records


def expand_inputs(items) -> list[str]:
    """Files, folders (their images, sorted) and globs -> a flat list of files."""
    from cnnkit.data.decode import data_files, glob_data_files  # the one rule of which files are data

    out: list[str] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            out += sorted(str(f) for f in data_files(p))
        elif p.exists():
            out.append(str(p))
        else:
            matches = glob_data_files(str(item))
            if not matches:
                raise CnnkitError(f"Input {item} matches no file.")
            out += matches
    if not out:
        raise CnnkitError("No input images were found in " + ", ".join(map(str, items)) + ".")
    return out


def _write_png(img, path: Path) -> str:
    from PIL import Image

    if isinstance(img, torch.Tensor):
        arr = img.detach().cpu()
        if arr.dtype != torch.uint8:
            arr = (arr.float().clamp(0, 1) * 255).round().to(torch.uint8)
        arr = arr.permute(1, 2, 0).numpy() if arr.ndim == 3 else arr.numpy()
        img = arr
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img)
    img.save(path)
    return str(path)
