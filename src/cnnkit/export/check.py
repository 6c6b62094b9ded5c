"""`cnnkit export --check`: the exported file and the checkpoint answer the same on held-out images.

Both sides go through their own predictor (`engine.predictor.load`): the checkpoint's meta
builds PyTorch's input, the ONNX file's metadata builds onnxruntime's, so a wrong mean/std or
size in the file shows up here as it would in use. Images: the first `n` of the run's test
split, one at a time and then as one batch. Tolerances (issue 16): logits and scores 1e-4
(absolute), boxes 1e-3 px, masks at most 0.1 % of pixels differing. Detection compares the
raw graph outputs and then the decoded detections, matched by label and IoU, not by position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnkit.errors import CnnkitError

LOGIT_TOL, BOX_TOL_PX, MASK_TOL = 1e-4, 1e-3, 1e-3


@dataclass
class Worst:
    """The largest difference seen for one output, and where."""

    output: str
    tolerance: float
    diff: float = 0.0
    where: str = ""

    def see(self, diff: float, where: str) -> None:
        if diff > self.diff or not self.where:
            self.diff, self.where = float(diff), where

    @property
    def passed(self) -> bool:
        return self.diff <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "max_diff": self.diff, "tolerance": self.tolerance, "where": self.where,
                "passed": self.passed}


@dataclass
class Parity:
    worst: dict[str, Worst] = field(default_factory=dict)

    def see(self, output: str, tolerance: float, diff: float, where: str) -> None:
        self.worst.setdefault(output, Worst(output, tolerance)).see(diff, where)


def held_out_images(predictor, n: int) -> tuple[list[torch.Tensor], str]:
    """The first `n` readable uint8 images of the run's test split (else val, train) and the split's name."""
    from cnnkit.data import build_data

    bundle = build_data(predictor.cfg.copy(), target=predictor.task.target)
    for name in ("test", "val", "train"):
        images = split_images(bundle.split(name), n, predictor.info.channels)
        if images:
            return images, name
    raise CnnkitError(f"{predictor.info.name} has no images to check the export on.")


def split_images(split, n: int, channels: int) -> list[torch.Tensor]:
    """The first `n` readable uint8 C x H x W images of any split kind (in memory or files)."""
    from cnnkit.data.decode import BadImage, read_image

    out = []
    for i in range(len(split)):
        if len(out) == n:
            break
        try:
            if hasattr(split, "image"):
                out.append(split.image(i))
                continue
            images = getattr(split, "images", None)
            source = images if images is not None else getattr(split, "image_paths", None) or split.paths
            item = source[i]
            out.append(read_image(str(item), channels) if isinstance(item, (str, Path)) else item)
        except BadImage:
            continue
    return out


@torch.no_grad()
def check_parity(onnx_path, source, n: int = 8, images: list[torch.Tensor] | None = None) -> dict[str, Any]:
    """Compare `onnx_path` with the checkpoint `source` on `images` (default: `n` held-out ones).
    Returns {"passed", "images", "split", "outputs": [per output: max_diff, tolerance, where, passed]}."""
    from cnnkit.engine.predictor import load

    ref, exp = load(source, device="cpu"), load(onnx_path)
    split = "given"
    if images is None:
        images, split = held_out_images(ref, n)
    parity = Parity()
    groups = [([img], f"{split}[{i}]") for i, img in enumerate(images)]
    if len({tuple(img.shape) for img in images}) == 1 and len(images) > 1:
        groups.append((images, f"{split}[0:{len(images)}] as one batch"))
    compare = {"logits": _logits, "pixel_logits": _pixel_logits, "boxes": _boxes}[ref.task.output]
    for imgs, where in groups:
        compare(ref, exp, imgs, where, parity)
    outputs = [w.to_dict() for w in parity.worst.values()]
    return {"passed": all(o["passed"] for o in outputs), "images": len(images), "split": split, "outputs": outputs}


def failure_text(result: dict[str, Any], path) -> str:
    bad = [o for o in result["outputs"] if not o["passed"]]
    parts = [f"{o['output']} differs by {o['max_diff']:.3g} on {o['where']} (tolerance {o['tolerance']:g})"
             for o in bad]
    return f"The ONNX export {path} does not match PyTorch: " + "; ".join(parts) + "."


def _logits(ref, exp, imgs, where, parity: Parity) -> None:
    a, b = ref.model(ref.preprocess(imgs)).float(), exp.model(exp.preprocess(imgs)).float()
    _tensor(parity, "logits", LOGIT_TOL, a, b, where)


def _pixel_logits(ref, exp, imgs, where, parity: Parity) -> None:
    a, b = ref.model(ref.preprocess(imgs)).float(), exp.model(exp.preprocess(imgs)).float()
    _tensor(parity, "logits", LOGIT_TOL, a, b, where)
    if a.shape == b.shape:
        differ = (a.argmax(1) != b.argmax(1)).float().mean(dim=(1, 2))
        i = int(differ.argmax())
        parity.see("mask pixels (fraction)", MASK_TOL, float(differ[i]), _item(where, i, len(imgs)))


def _tensor(parity: Parity, name: str, tol: float, a: torch.Tensor, b: torch.Tensor, where: str) -> None:
    if a.shape != b.shape:
        parity.see(name, tol, float("inf"), f"{where} (shapes {tuple(a.shape)} vs {tuple(b.shape)})")
        return
    per = (a - b).abs().flatten(1).amax(1)
    i = int(per.argmax())
    parity.see(name, tol, float(per[i]), _item(where, i, len(a)))


def _item(where: str, i: int, n: int) -> str:
    return f"image {i} of {where}" if n > 1 else where


def _boxes(ref, exp, imgs, where, parity: Parity) -> None:
    from cnnkit.export.graph import HeadGraph

    x = list(ref.preprocess(imgs))
    if exp.meta["graph"] != "tinydet-head":  # the whole model is the graph: compare what it answers
        for i, (da, db) in enumerate(zip(ref.model(x), exp.model(list(exp.preprocess(imgs))))):
            _match(parity, da, db, _item(where, i, len(imgs)))
        return
    tensors = ref.model.transform(x)[0].tensors
    raw_ref = HeadGraph(ref.model)(tensors)
    raw_exp = exp.model._head(tensors)[:3]
    for name, tol, a, b in zip(("cls_logits", "boxes (raw, px)", "iou_logits"), (LOGIT_TOL, BOX_TOL_PX, LOGIT_TOL),
                               raw_ref, raw_exp):
        _tensor(parity, name, tol, a.float(), b.float(), where)
    for i, (da, db) in enumerate(zip(ref.model(x), exp.model(list(exp.preprocess(imgs))))):
        _match(parity, da, db, _item(where, i, len(imgs)))


def _match(parity: Parity, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], where: str) -> None:
    """Each PyTorch detection against the unused ONNX one of the same label that overlaps it most."""
    from torchvision.ops import box_iou

    parity.see("detections (count difference)", 0, abs(len(a["boxes"]) - len(b["boxes"])), where)
    if not len(a["boxes"]) or not len(b["boxes"]):
        return
    iou = box_iou(a["boxes"], b["boxes"])
    iou[a["labels"][:, None] != b["labels"][None, :]] = -1
    used: set[int] = set()
    for k in a["scores"].argsort(descending=True).tolist():
        order = [j for j in iou[k].argsort(descending=True).tolist() if j not in used and iou[k, j] >= 0]
        if not order:
            parity.see("detections (unmatched)", 0, 1, f"{where}, box {k}")
            continue
        j = order[0]
        used.add(j)
        parity.see("matched boxes (px)", BOX_TOL_PX, float((a["boxes"][k] - b["boxes"][j]).abs().max()), where)
        parity.see("matched scores", LOGIT_TOL, float((a["scores"][k] - b["scores"][j]).abs()), where)
        if "masks" in a and "masks" in b:  # binary masks at 0.5, as the metric and drawings read them
            differ = ((a["masks"][k] > 0.5) != (b["masks"][j] > 0.5)).float().mean()
            parity.see("matched mask pixels (fraction)", MASK_TOL, float(differ), where)
