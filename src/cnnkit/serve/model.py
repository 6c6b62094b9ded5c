"""The model behind the server: a checkpoint resolved once, run on micro-batches, described, explained.

A batch is one forward pass per group of images with the same model-input shape and forward options;
each image's slice of the output then goes through the task's own `predict_one` and `record`, the
same calls `cnnkit predict` makes, so a served answer is the CLI's record for that image (plus, for
per-pixel models, each present class's mask as COCO RLE). The model is loaded only through
`cnnkit.engine.predictor.load`: weights-only checkpoints (`torch.load(weights_only=True)`),
safetensors, or an exported `.onnx` file run by onnxruntime (which has no gradients, so only
occlusion explains it).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

EXPLAIN_METHODS = ("gradcam", "ig", "occlusion")
# Forward options per output kind: images whose options differ never share a forward pass.
BOX_DEFAULTS = {"conf": 0.25, "iou": 0.5}


@dataclass
class Item:
    """One image of one request: uint8 C x H x W, its echoed name, its 1-based place in the request."""

    image: torch.Tensor
    name: str
    index: int = 1
    options: dict[str, Any] = field(default_factory=dict)


class _Replay:
    """Stands in for the model inside `Task.predict_one`: answers with one image's slice of the
    batch output, so the task's own post-processing (softmax, resizing, thresholds) runs unchanged."""

    def __init__(self, output: Any, j: int):
        self.output, self.j = output, j

    def __call__(self, x: Any) -> Any:
        if isinstance(self.output, torch.Tensor):
            return self.output[self.j:self.j + 1]
        return [self.output[self.j]]


class ServedModel:
    """`source`: a run directory, `.pt` checkpoint, `.safetensors` or `.onnx` file. Raises
    `CnnkitError` when it cannot be loaded."""

    def __init__(self, source: str | Path, device: str = "auto", threads: int | None = None):
        from cnnkit.engine.predictor import load

        if threads:  # before loading: an onnxruntime session takes torch's thread count
            torch.set_num_threads(int(threads))
        self.pred = load(source, device=device)
        if threads:  # the checkpoint's own train.threads was applied while loading
            torch.set_num_threads(int(threads))
        self.onnx = hasattr(self.pred, "session")  # an OnnxPredictor: onnxruntime, no autograd
        self.explain_methods = ("occlusion",) if self.onnx else EXPLAIN_METHODS
        self.task, self.meta, self.model = self.pred.task, self.pred.meta, self.pred.model
        self.channels = int(self.meta["preprocess"]["channels"])
        self.source_name = Path(self.pred.path).name
        self._subject = None

    # -- prediction -------------------------------------------------------------------
    @torch.no_grad()
    def run_batch(self, items: list[Item]) -> list[dict[str, Any]]:
        """One record per item, in order: the task's record, `file`, `model_ms` (the forward pass that
        item was in, milliseconds) and `batch_size` (images in that pass)."""
        pre = self.meta["preprocess"]
        xs = [self.task.model_input([it.image], pre) for it in items]
        groups: dict[tuple, list[int]] = {}
        for i, (it, x) in enumerate(zip(items, xs)):
            groups.setdefault((self._forward_key(it.options), tuple(x.shape)), []).append(i)
        out: list[dict[str, Any]] = [{} for _ in items]
        for idx in groups.values():
            options = items[idx[0]].options
            start = time.perf_counter()
            output = self._forward(torch.cat([xs[i] for i in idx]).to(self.pred.device), options)
            ms = (time.perf_counter() - start) * 1000
            for j, i in enumerate(idx):
                it = items[i]
                pred = self.task.predict_one(_Replay(output, j), xs[i], it.image, **it.options)
                record = {"file": it.name, **self.task.record(pred, it.image, self.meta, it.index, **it.options)}
                record.update(self._masks(pred))
                out[i] = {**record, "model_ms": round(ms, 3), "batch_size": len(idx)}
        return out

    def _forward_key(self, options: dict[str, Any]) -> tuple:
        if self.task.output != "boxes":
            return ()
        return tuple(options.get(k, v) for k, v in BOX_DEFAULTS.items())

    def _forward(self, x: torch.Tensor, options: dict[str, Any]) -> Any:
        if self.task.output == "boxes":  # detectors take a list of images (torchvision's contract)
            conf, iou = (options.get(k, v) for k, v in BOX_DEFAULTS.items())
            if hasattr(self.model, "set_thresholds"):  # as boxes.predict_one: keep low scores for the cut
                self.model.set_thresholds(score=min(conf, 0.05), iou=iou)
            return self.model(list(x))
        return self.model(x)

    def _masks(self, pred: Any) -> dict[str, Any]:
        """A per-pixel model's H x W class map -> each present class's mask as COCO RLE."""
        if self.task.output != "pixel_logits" or not isinstance(pred, torch.Tensor) or pred.ndim != 2:
            return {}
        from cnnkit.tasks.instance_metrics import encode_masks

        present = [int(c) for c in torch.unique(pred)]
        rles = encode_masks(torch.stack([pred == c for c in present])) if present else []
        classes = self.meta["classes"]
        return {"masks": [{"class_index": c, "category": classes[c] if c < len(classes) else str(c),
                           "pixels": int((pred == c).sum()), "segmentation": rle}
                          for c, rle in zip(present, rles)]}

    # -- description ------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The model card: task, model, classes, input spec, the run's metrics."""
        pre = self.meta["preprocess"]
        plain = (int, float, str, bool, list, type(None))
        return {"task": self.task.name, "output": self.task.output, "model": self.meta["model"]["name"],
                "parameters": None if self.onnx else sum(p.numel() for p in self.model.parameters()),
                "runtime": "onnxruntime" if self.onnx else "pytorch",
                "classes": list(self.meta["classes"]),
                "input": {k: v for k, v in pre.items() if isinstance(v, plain) and k != "category_ids"},
                "metrics": dict(self.meta.get("metrics") or {}), "epoch": self.meta.get("epoch"),
                "data": self.meta.get("data_name", ""), "checkpoint": self.source_name,
                "device": str(self.pred.device), "explain_methods": list(self.explain_methods)}

    # -- explanation ------------------------------------------------------------------
    def explain_png(self, image: torch.Tensor, method: str, target: str | None, options: dict[str, Any]) -> bytes:
        """An overlay PNG of `method`'s map for `image` (uint8 C x H x W). Raises `CnnkitError` for a
        target the model cannot explain (e.g. a box index when nothing was detected)."""
        from cnnkit.errors import CnnkitError
        from cnnkit.explain.api import explain

        if method not in self.explain_methods:
            raise CnnkitError(f"{method} needs the model's gradients, and {self.source_name} runs in onnxruntime "
                              f"without them: use method={self.explain_methods[0]}, or serve the checkpoint.")
        expl = explain(self._explain_subject(), image, method=method, target=target, **options)[0]
        with tempfile.TemporaryDirectory(prefix="cnnkit-serve-") as tmp:  # a server-chosen name only
            return expl.save(Path(tmp) / "overlay.png").read_bytes()

    def _explain_subject(self):
        if self._subject is None:
            from cnnkit.explain.subject import Subject

            self._subject = Subject(model=self.model, task=self.task.name, output=self.task.output,
                                    classes=list(self.meta["classes"]), preprocess=self.pred.preprocess,
                                    device=torch.device(self.pred.device), source=self.source_name,
                                    meta=dict(self.meta), channels=self.channels)
        return self._subject
