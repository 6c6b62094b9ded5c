"""Which part of a model goes into the exported graph, and what the graph computes (`cnnkit.graph`).

- "logits" (classifiers) and "pixel_logits" (segmenters): the whole model. Input "images"
  N x C x H x W float, already resized and normalised by `Task.model_input` (the one
  preprocessing path, `data/transforms.to_model_input`); output "logits" N x K (x H x W).
- "tinydet-head" (tinydet): the network up to its raw outputs. Input "images" N x C x H x W
  float as the detector's own `GeneralizedRCNNTransform` leaves them (0..1, longer side
  resized to the model's size, padded to a multiple of 16); outputs "cls_logits" N x P x K,
  "boxes" N x P x 4 (x1, y1, x2, y2 in the input's pixels) and "iou_logits" N x P, one row
  per stride-4 cell P. Decoding — scores, top-k, NMS (`torchvision.ops.batched_nms`) and
  scaling boxes back to the image — is a post-step cnnkit applies with the very code the
  PyTorch model runs (`TinyDet.decode`, `transform.postprocess`), so `--conf/--iou` keep
  working and the two cannot drift. NMS stays out of the graph because the tracer freezes
  the data-dependent top-k count of `decode` into a constant.
- "torchvision-instance" (Mask R-CNN): the whole torchvision model, NMS and mask pasting
  included (torchvision writes these ops so they trace). Input "images" 1 x C x H x W float
  0..1 (one image per call, any size); outputs "boxes" K x 4, "labels" K (0-based), "scores"
  K, "masks" K x 1 x H x W probabilities. Score and NMS thresholds are fixed at export.
"""
from __future__ import annotations

from torch import nn

from cnnkit.errors import CnnkitError


class HeadGraph(nn.Module):
    """tinydet's raw outputs (cls_logits, boxes, iou_logits) as a module the exporter can trace."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images):
        cls, boxes, iou, _ = self.detector._head(images)
        return cls, boxes, iou


class InstanceGraph(nn.Module):
    """A torchvision Mask R-CNN (cnnkit's wrapper: 0-based labels) on one image, outputs as a tuple."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images):
        det = self.detector(list(images))[0]
        return det["boxes"], det["labels"], det["scores"], det["masks"]


def graph_of(model: nn.Module, output: str, name: str) -> tuple[nn.Module, str, list[str]]:
    """(module to export, graph kind, output names) for a model whose task answers with `output`
    (`Task.output`); `name` is the model's registered name, for the error. Raises `CnnkitError`
    for a detector whose post-processing cnnkit cannot keep outside the graph."""
    if output == "logits":
        return model, "logits", ["logits"]
    if output == "pixel_logits":
        return model, "pixel_logits", ["logits"]
    if output == "boxes" and hasattr(model, "_head") and hasattr(model, "decode"):
        return HeadGraph(model), "tinydet-head", ["cls_logits", "boxes", "iou_logits"]
    if output == "boxes" and hasattr(getattr(getattr(model, "net", None), "roi_heads", None), "mask_predictor"):
        return InstanceGraph(model), "torchvision-instance", ["boxes", "labels", "scores", "masks"]
    if output == "boxes":
        raise CnnkitError(f'cnnkit export does not support "{name}" (boxes output) yet: of the detectors only '
                          "tinydet and maskrcnn export; train one with `cnnkit train --model tinydet` to export it.")
    raise CnnkitError(f'cnnkit export does not support "{name}" ({output} output) yet: classification, '
                      "segmentation, tinydet and maskrcnn checkpoints export; its weights are in the checkpoint "
                      "(`cnnkit.load` runs it in Python).")
