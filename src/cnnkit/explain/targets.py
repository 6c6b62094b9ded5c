"""What an explanation explains: one differentiable score per input, chosen by what the model
answers with (`Task.output`: "logits", "boxes" or "pixel_logits").

Attribution methods (Captum's and ours) need a function `model input N x C x H x W ->
N x 1 score`. This module turns a model, an input and a `--target` value into such a
function, as an `nn.Module` wrapping the model (Captum's guided backprop looks for the
ReLU modules inside it):

- "logits" (classification): the logit of one class (default: the predicted class); `--target` is a
  class name or index;
- "boxes" (detection, instance segmentation): the score of one predicted box (default: the
  top-scoring box); `--target i` picks prediction i, `--target x1,y1,x2,y2` the prediction
  that best overlaps that box. The detector is re-run for every input, so the box is
  matched again by IoU (same label) each call — NMS reorders and drops boxes as the input
  changes; the score stays differentiable w.r.t. the input because torchvision's
  post-processing only indexes the score tensor. A detector that decodes under no_grad
  (cnnkit's tinydet) has no such gradient: only gradient-free methods (occlusion) apply;
- "pixel_logits" (segmentation): the sum of one class's logits over the pixels predicted as that class on
  the original image (default: the non-background class covering most pixels).

Every target also has `prob(x)`, a bounded version of the same score (softmax
probability, box score, mean class probability over the region) used by the
faithfulness curves, and `rebind(model)` to ask the same question of another model
(the model-randomisation check).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from cnnkit.errors import CnnkitError, did_you_mean

OUTPUTS = ("logits", "boxes", "pixel_logits")  # the `Task.output` kinds explain knows
BACKGROUND_NAMES = ("background", "__background__", "_background_", "bg")


def model_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of a classifier/segmenter; torchvision segmenters return {"out": ...}."""
    out = model(x)
    if isinstance(out, dict):
        out = out["out"]
    return out


def detector_outputs(model: nn.Module, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Detectors take a list of float C x H x W images (torchvision's contract)."""
    return model(list(x))


def infer_output(model: nn.Module, x: torch.Tensor) -> str:
    """What a bare model answers with, from its eval output: a list of dicts ("boxes"),
    N x K x H x W ("pixel_logits") or N x K ("logits")."""
    with torch.no_grad():
        try:
            out = model(x)
        except Exception:  # detectors may refuse a batch tensor and want a list
            out = model(list(x))
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], dict) and "boxes" in out[0]:
        return "boxes"
    if isinstance(out, dict):
        out = out.get("out")
    if isinstance(out, torch.Tensor) and out.dim() == 4:
        return "pixel_logits"
    if isinstance(out, torch.Tensor) and out.dim() == 2:
        return "logits"
    raise CnnkitError("Cannot tell what the model does from its output: pass task='classify'|'detect'|'segment'.")


def parse_class(spec: Any, classes: list[str], what: str = "--target") -> int:
    """A class name, or an index when no class has that name."""
    text = str(spec).strip()
    if text in classes:
        return classes.index(text)
    try:
        idx = int(text)
    except ValueError:
        raise CnnkitError(f'Unknown class "{text}" for {what}.{did_you_mean(text, classes)} '
                          f"Classes: {', '.join(classes[:20])}{' ...' if len(classes) > 20 else ''}.") from None
    if not 0 <= idx < len(classes):
        raise CnnkitError(f"Class index {idx} for {what} is out of range: the model has {len(classes)} classes "
                          f"(0..{len(classes) - 1}).")
    return idx


def background_index(classes: list[str]) -> int:
    for i, name in enumerate(classes):
        if name.lower() in BACKGROUND_NAMES:
            return i
    return 0  # segmentation sets put background first by convention (VOC, mask folders)


def overlap(ref: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one box (4,) with each of `boxes` (N x 4); a box with no area (untrained detectors
    make them) has IoU nan with everything, so there the same coordinates count as IoU 1."""
    iou = box_iou(ref.reshape(1, 4).to(boxes), boxes)[0].nan_to_num(0.0)
    same = (boxes - ref.reshape(1, 4).to(boxes)).abs().amax(1) < 1e-4
    return torch.where(same, torch.ones_like(iou), iou)


def _connect(x: torch.Tensor) -> torch.Tensor:
    """A zero that still depends on x, so autograd.grad works when no box is found."""
    return x.sum() * 0.0


class ClassScore(nn.Module):
    def __init__(self, model: nn.Module, index: int):
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return model_logits(self.model, x)[:, self.index:self.index + 1]

    def prob(self, x: torch.Tensor) -> torch.Tensor:
        return model_logits(self.model, x).softmax(1)[:, self.index]

    def rebind(self, model: nn.Module) -> "ClassScore":
        return ClassScore(model, self.index)


class BoxScore(nn.Module):
    """Score of the prediction that best overlaps `ref_box` (same label), 0 when none reaches `min_iou`."""

    def __init__(self, model: nn.Module, ref_box: torch.Tensor, label: int | None, min_iou: float = 0.5,
                 differentiable: bool = True):
        super().__init__()
        self.model, self.label, self.min_iou = model, label, min_iou
        self.differentiable = differentiable  # False when the detector decodes boxes under no_grad
        self.register_buffer("ref_box", ref_box.detach().reshape(1, 4).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = []
        for xi, pred in zip(x, detector_outputs(self.model, x)):
            boxes, score = pred["boxes"], pred["scores"]
            # no match scores 0, still through the model's graph: a layer method (Grad-CAM) then gets a zero
            # map instead of autograd's "not used in the graph" (a randomised detector loses the box)
            none = score.sum() * 0.0 + _connect(xi)
            if len(boxes) == 0:
                scores.append(none)
                continue
            iou = overlap(self.ref_box, boxes)
            if self.label is not None and "labels" in pred:
                iou = torch.where(pred["labels"] == self.label, iou, torch.full_like(iou, -1.0))
            j = int(iou.argmax())
            scores.append(score[j] + _connect(xi) if iou[j] >= self.min_iou else none)
        return torch.stack(scores).reshape(-1, 1)

    def prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[:, 0]

    def rebind(self, model: nn.Module) -> "BoxScore":
        return BoxScore(model, self.ref_box, self.label, self.min_iou, self.differentiable)


class RegionScore(nn.Module):
    """Sum of class `index`'s logits over a fixed region (the class's predicted pixels)."""

    def __init__(self, model: nn.Module, index: int, region: torch.Tensor):
        super().__init__()
        self.model, self.index = model, index
        self.register_buffer("region", region.float(), persistent=False)

    def _region(self, out: torch.Tensor) -> torch.Tensor:
        if self.region.shape != out.shape[-2:]:  # a rebound model with another output stride
            return F.interpolate(self.region[None, None], size=out.shape[-2:], mode="nearest")[0, 0]
        return self.region

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = model_logits(self.model, x)
        return (out[:, self.index] * self._region(out)).sum((1, 2)).reshape(-1, 1)

    def prob(self, x: torch.Tensor) -> torch.Tensor:
        out = model_logits(self.model, x)
        region = self._region(out)
        return (out.softmax(1)[:, self.index] * region).sum((1, 2)) / region.sum().clamp(min=1)

    def rebind(self, model: nn.Module) -> "RegionScore":
        return RegionScore(model, self.index, self.region)


def make_target(output: str, model: nn.Module, x: torch.Tensor, spec: Any, classes: list[str],
                min_iou: float = 0.5) -> tuple[nn.Module, dict[str, Any]]:
    """(score module, JSON-able description) for one input x (1 x C x H x W) of a model answering
    with `output`. `min_iou`: how well a detector's box must overlap the explained one to count as
    the same box on a changed input. Raises CnnkitError for an output explain does not know."""
    if output == "logits":
        return _class_target(model, x, spec, classes)
    if output == "boxes":
        return _box_target(model, x, spec, classes, min_iou)
    if output == "pixel_logits":
        return _region_target(model, x, spec, classes)
    raise CnnkitError(f'Cannot explain a model that answers with "{output}": explain knows models answering '
                      f"with {', '.join(OUTPUTS)}.")


def _name(classes: list[str], idx: int) -> str:
    return classes[idx] if 0 <= idx < len(classes) else str(idx)


def _class_target(model, x, spec, classes):
    with torch.no_grad():
        probs = model_logits(model, x).softmax(1)[0]
    names = classes or [str(i) for i in range(len(probs))]
    idx = int(probs.argmax()) if spec in (None, "") else parse_class(spec, names)
    return ClassScore(model, idx), {"kind": "class", "index": idx, "name": _name(names, idx),
                                    "prob": float(probs[idx]), "predicted": int(probs.argmax()) == idx}


def _box_target(model, x, spec, classes, min_iou):
    with torch.enable_grad():  # one pass tells the boxes and whether their scores carry gradients
        pred = detector_outputs(model, x.detach().clone().requires_grad_(True))[0]
    differentiable = bool(pred["scores"].requires_grad)
    pred = {k: v.detach() for k, v in pred.items()}
    boxes, scores = pred["boxes"], pred["scores"]
    labels = pred.get("labels")
    if len(boxes) == 0:
        raise CnnkitError("The detector finds no box in this image, so there is no box to explain: "
                          "try another image or a lower score threshold.")
    text = "" if spec is None else str(spec).strip()
    info: dict[str, Any] = {"kind": "box"}
    if text == "":
        j = 0
    elif "," in text:
        try:
            user = torch.tensor([float(v) for v in text.split(",")])
        except ValueError:
            user = torch.empty(0)
        if user.numel() != 4:
            raise CnnkitError(f'--target "{text}" is not a box: write x1,y1,x2,y2 in pixels or a prediction index.')
        iou = overlap(user, boxes)
        j = int(iou.argmax())
        if iou[j] <= 0:
            raise CnnkitError(f"No predicted box overlaps --target {text}: the detector's boxes are "
                              f"{[[round(v, 1) for v in b.tolist()] for b in boxes[:5]]}.")
        info["given_box"], info["iou_with_given"] = user.tolist(), float(iou[j])
    else:
        try:
            j = int(text)
        except ValueError:
            raise CnnkitError(f'--target "{text}" for a detector must be a prediction index or x1,y1,x2,y2.') from None
        if not 0 <= j < len(boxes):
            raise CnnkitError(f"--target {j} is out of range: the detector predicts {len(boxes)} boxes "
                              f"(0..{len(boxes) - 1}).")
    label = int(labels[j]) if labels is not None else None
    info.update(index=j, box=[round(v, 2) for v in boxes[j].tolist()], label=label,
                name=_name(classes, label) if label is not None else None, score=float(scores[j]))
    return BoxScore(model, boxes[j], label, min_iou, differentiable), info


def _region_target(model, x, spec, classes):
    with torch.no_grad():
        out = model_logits(model, x)[0]
    names = classes or [str(i) for i in range(out.shape[0])]
    pred = out.argmax(0)
    counts = torch.bincount(pred.flatten(), minlength=out.shape[0])
    if spec in (None, ""):
        bg = background_index(names)
        counts_fg = counts.clone()
        counts_fg[bg] = -1
        idx = int(counts_fg.argmax())
    else:
        idx = parse_class(spec, names)
    region = pred == idx
    if not region.any():  # class not predicted anywhere: explain its logits over the whole image
        region = torch.ones_like(region)
    return RegionScore(model, idx, region), {"kind": "segment-class", "index": idx, "name": _name(names, idx),
                                             "pixels": int(counts[idx]) if idx < len(counts) else 0}


def split_targets(spec: str | None, output: str) -> list[str | None]:
    """Several targets in one `--target`: ';' separates them (boxes hold commas), and for
    class targets (classify/segment) a comma does too."""
    if spec is None or str(spec).strip() == "":
        return [None]
    parts = [p.strip() for p in str(spec).split(";") if p.strip()]
    if output != "boxes":
        parts = [q.strip() for p in parts for q in p.split(",") if q.strip()]
    return parts or [None]
