"""Detectors (task "detect"): torchvision's heads over cnnkit backbones, and `tinydet`, our compact one.

All of them keep torchvision's contract (DESIGN rule 2): `forward(images, targets)` in
train mode takes a list of float C x H x W images in 0..1 and a list of
{boxes (xyxy), labels (0-based)} and returns a dict of losses; in eval mode
`forward(images)` returns a list of {boxes, labels, scores} in the input images'
coordinates. Each resizes its input so the longer side is `image_size` (torchvision's
`GeneralizedRCNNTransform`, with min/max size set to it, so small canvases are not
blown up to 800 pixels) and pads the batch itself. Weights start random (weights=None).

- `fcos`, `retinanet`, `fasterrcnn`, `ssdlite`: torchvision heads. `backbone=` names a
  registered cnnkit backbone; the stride 8/16/32 maps go through torchvision's
  `FeaturePyramidNetwork` (SSDlite reads them directly). Anchor sizes follow the strides
  (FCOS: = stride; RetinaNet/Faster R-CNN: 2 x stride), which suits small objects.
  Faster R-CNN and SSD reserve label 0 for background, so a wrapper shifts labels by one.
- `tinydet`: single-stage, anchor-free (FCOS-style assignment: centre region of each box)
  on one stride-4 map: cnnkit's "tiny" backbone + a 32-channel FPN; sigmoid focal loss for
  classes, GIoU loss for boxes, an IoU-prediction branch that re-ranks scores, batched NMS —
  all torchvision.ops. Sized for 96 px canvases on a CPU (~45 MMACs per image).
Every detector has `set_thresholds(score=, iou=)` for `cnnkit predict --conf --iou`.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import (
    AnchorGenerator,
    DefaultBoxGenerator,
)
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.ssdlite import SSDLiteHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import (
    Conv2dNormActivation,
    FeaturePyramidNetwork,
    MultiScaleRoIAlign,
    batched_nms,
    box_iou,
    clip_boxes_to_image,
    generalized_box_iou_loss,
    sigmoid_focal_loss,
)
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from cnnkit.errors import CnnkitError
from cnnkit.models import BACKBONES, MODELS


def _size(image_size) -> int:
    return int(image_size if isinstance(image_size, int) else max(image_size))


def _stats(in_channels: int) -> tuple[list[float], list[float]]:
    # Identity normalisation: the first BatchNorm learns the scale, and the batch padding
    # (zeros) stays black like the canvases' background.
    return [0.0] * in_channels, [1.0] * in_channels


def _backbone(name: str, in_channels: int, image_size: int, attention: str | None, **kw) -> nn.Module:
    """A cnnkit backbone, told the image size when it adapts its stem to it (ResNets)."""
    from cnnkit.models import (
        build_backbone,  # defined after models/__init__ imports the model modules
    )

    if "image_size" in inspect.signature(BACKBONES.get(name)).parameters:
        kw["image_size"] = image_size
    return build_backbone(name, in_channels, attention, **kw)


# ---- torchvision heads over cnnkit backbones ---------------------------------------------
class Levels(nn.Module):
    """A cnnkit backbone reduced to its stride 8/16/32 maps (keys "0", "1", "2"), optionally + FPN."""

    def __init__(self, backbone: str, in_channels: int, image_size: int, attention: str | None,
                 fpn_channels: int | None, extra_block: nn.Module | None = None):
        super().__init__()
        self.body = _backbone(backbone, in_channels, image_size, attention)
        picked = [i for i, s in enumerate(self.body.strides) if s >= 8][:3]
        if not picked:
            raise CnnkitError(f'Backbone "{backbone}" never reaches stride 8; pick a deeper one for detection.')
        self.keys = picked
        self.strides = [self.body.strides[i] for i in picked]
        channels = [self.body.channels[i] for i in picked]
        self.fpn = None
        if fpn_channels:
            self.fpn = FeaturePyramidNetwork(channels, fpn_channels, extra_blocks=extra_block)
            self.out_channels = fpn_channels
        else:
            self.channels = channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = list(self.body(x).values())
        out = OrderedDict((str(j), feats[i]) for j, i in enumerate(self.keys))
        return self.fpn(out) if self.fpn is not None else out


class TorchvisionDetector(nn.Module):
    """A torchvision detector with 0-based labels (shifted for heads that reserve 0 for background)."""

    def __init__(self, net: nn.Module, label_offset: int = 0):
        super().__init__()
        self.net, self.label_offset = net, label_offset

    def forward(self, images, targets=None):
        if self.training:
            if targets is None:
                raise CnnkitError("A detector in training mode needs targets (boxes and labels per image).")
            if self.label_offset:
                targets = [{**t, "labels": t["labels"] + self.label_offset} for t in targets]
            return self.net(images, targets)
        out = self.net(images)
        for o in out:
            o["labels"] = o["labels"] - self.label_offset
        return out

    def set_thresholds(self, score: float | None = None, iou: float | None = None) -> None:
        for part in (self.net, getattr(self.net, "roi_heads", None)):
            if part is not None and hasattr(part, "nms_thresh"):
                if score is not None:
                    part.score_thresh = score
                if iou is not None:
                    part.nms_thresh = iou


_HEAD_DOC = "over a cnnkit backbone (backbone=, default resnet18) with FPN; torchvision head, random init"


@MODELS.register("fcos", tasks=("detect",), doc=f"FCOS (anchor-free) {_HEAD_DOC}")
def fcos(num_classes: int, in_channels: int = 3, image_size: int = 96, backbone: str = "resnet18",
         attention: str | None = None, fpn_channels: int = 128, score_thresh: float = 0.05,
         nms_thresh: float = 0.6, detections_per_img: int = 100) -> nn.Module:
    body = Levels(backbone, in_channels, _size(image_size), attention, fpn_channels)
    anchors = AnchorGenerator(tuple((s,) for s in body.strides), ((1.0,),) * len(body.strides))
    mean, std = _stats(in_channels)
    net = FCOS(body, num_classes, min_size=_size(image_size), max_size=_size(image_size), image_mean=mean,
               image_std=std, anchor_generator=anchors, score_thresh=score_thresh, nms_thresh=nms_thresh,
               detections_per_img=detections_per_img)
    return TorchvisionDetector(net)


@MODELS.register("retinanet", tasks=("detect",), doc=f"RetinaNet (focal loss, anchors; v2 head) {_HEAD_DOC}")
def retinanet(num_classes: int, in_channels: int = 3, image_size: int = 96, backbone: str = "resnet18",
              attention: str | None = None, fpn_channels: int = 128, score_thresh: float = 0.05,
              nms_thresh: float = 0.5, detections_per_img: int = 100) -> nn.Module:
    body = Levels(backbone, in_channels, _size(image_size), attention, fpn_channels)
    sizes = tuple(tuple(round(2 * s * 2 ** (k / 3)) for k in range(3)) for s in body.strides)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    # torchvision's "v2" head: GroupNorm in the towers (without it the four std-0.01 convs shrink
    # the signal ~100x and a randomly initialised RetinaNet barely learns) and a GIoU box loss.
    head = RetinaNetHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes,
                         norm_layer=partial(nn.GroupNorm, 32))
    head.regression_head._loss_type = "giou"
    mean, std = _stats(in_channels)
    net = RetinaNet(body, num_classes, min_size=_size(image_size), max_size=_size(image_size), image_mean=mean,
                    image_std=std, anchor_generator=anchors, head=head, score_thresh=score_thresh,
                    nms_thresh=nms_thresh, detections_per_img=detections_per_img)
    return TorchvisionDetector(net)


@MODELS.register("fasterrcnn", tasks=("detect",), doc=f"Faster R-CNN (two-stage) {_HEAD_DOC}")
def fasterrcnn(num_classes: int, in_channels: int = 3, image_size: int = 96, backbone: str = "resnet18",
               attention: str | None = None, fpn_channels: int = 128, representation: int = 256,
               score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100) -> nn.Module:
    body = Levels(backbone, in_channels, _size(image_size), attention, fpn_channels, LastLevelMaxPool())
    sizes = tuple((2 * s,) for s in body.strides) + ((4 * body.strides[-1],),)  # + the max-pool level
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    names = [str(i) for i in range(len(body.strides))]
    box_head = TwoMLPHead(fpn_channels * 7 * 7, representation)
    mean, std = _stats(in_channels)
    net = FasterRCNN(body, min_size=_size(image_size), max_size=_size(image_size), image_mean=mean, image_std=std,
                     rpn_anchor_generator=anchors, box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
                     box_head=box_head, box_predictor=FastRCNNPredictor(representation, num_classes + 1),
                     rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300, rpn_pre_nms_top_n_test=500,
                     rpn_post_nms_top_n_test=300, box_batch_size_per_image=128, box_score_thresh=score_thresh,
                     box_nms_thresh=nms_thresh, box_detections_per_img=detections_per_img)
    return TorchvisionDetector(net, label_offset=1)


@MODELS.register("ssdlite", tasks=("detect",), doc="SSDlite over a cnnkit backbone's stride 8-32 maps "
                                                   "(backbone=, default resnet18); torchvision head, random init")
def ssdlite(num_classes: int, in_channels: int = 3, image_size: int = 96, backbone: str = "resnet18",
            attention: str | None = None, min_ratio: float = 0.1, max_ratio: float = 0.9,
            score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100) -> nn.Module:
    size = _size(image_size)
    body = Levels(backbone, in_channels, size, attention, fpn_channels=None)
    anchors = DefaultBoxGenerator([[2, 3]] * len(body.channels), min_ratio=min_ratio, max_ratio=max_ratio)
    head = SSDLiteHead(body.channels, anchors.num_anchors_per_location(), num_classes + 1,
                       partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
    mean, std = _stats(in_channels)
    net = SSD(body, anchors, (size, size), num_classes + 1, image_mean=mean, image_std=std, head=head,
              score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
              topk_candidates=300)
    return TorchvisionDetector(net, label_offset=1)


# ---- tinydet -----------------------------------------------------------------------------
class TinyDet(nn.Module):
    """Compact anchor-free detector on one stride-4 map (see module docstring).

    Trunk: a registered cnnkit backbone (default "tiny": stride-2 conv + conv stages, 16-128
    channels); its maps of stride >= 4 are merged top-down by a 32-channel FPN into the finest
    one, so a 16-pixel digit spans about 4 x 4 cells while each cell still sees the whole digit.
    Head: one conv-BN-ReLU (`tower`), then class logits, box distances (left, top, right,
    bottom; softplus x stride) and a predicted IoU. Score = sqrt(class probability x IoU).
    About 45 MMACs per 96 x 96 image. Measured at equal CPU time on digits-detect: a
    48-channel head reached a lower mAP (more cost, no faster learning); heads on stride 8
    (`min_stride=8`) lost a third of the mAP; `tower=0` (outputs straight on the FPN sum)
    diverged within 10 steps, hence tower >= 1. Positives are the cells inside a box whose
    centre lies within `center_radius` cells of the box centre (FCOS's centre sampling, Tian et
    al. 2019): 1 cell (about 2 x 2 cells per digit) beat 1.5 by 0.012 val mAP over 4 seeds on
    digits-detect; 2.5 lost 0.04.
    """

    # torchvision's FPN smooths every level, but only the finest is read: those convs get no gradient, which
    # DistributedDataParallel must be told (engine/trainer.py). Kept so existing checkpoints still load.
    has_unused_parameters = True

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 96, backbone: str = "tiny",
                 attention: str | None = None, widths: tuple[int, ...] | None = None, head_width: int = 32,
                 tower: int = 1, min_stride: int = 4, center_radius: float = 1.0, box_weight: float = 2.0,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 topk_candidates: int = 1000):
        super().__init__()
        size = _size(image_size)
        mean, std = _stats(in_channels)
        self.transform = GeneralizedRCNNTransform(size, size, mean, std, size_divisible=16)
        self.body = _backbone(backbone, in_channels, size, attention, **({"widths": widths} if widths else {}))
        if tower < 1:  # outputs straight on the FPN sum (no norm) let the class logits explode
            raise CnnkitError(f"tinydet needs tower >= 1 (got {tower}): its normalised conv keeps training stable.")
        self.levels = [i for i, s in enumerate(self.body.strides) if s >= min_stride]
        if not self.levels:
            raise CnnkitError(f'Backbone "{backbone}" never reaches stride {min_stride}; pick a deeper one.')
        self.fpn = FeaturePyramidNetwork([self.body.channels[i] for i in self.levels], head_width)
        cna = Conv2dNormActivation
        self.tower = nn.Sequential(*[cna(head_width, head_width, 3) for _ in range(tower)])
        self.cls = nn.Conv2d(head_width, num_classes, 3, padding=1)
        self.reg = nn.Conv2d(head_width, 5, 3, padding=1)  # l, t, r, b, iou
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.constant_(self.cls.bias, -4.6)  # prior 1 % foreground: focal loss starts stable
        nn.init.normal_(self.reg.weight, std=0.01)
        nn.init.zeros_(self.reg.bias)
        self.stride, self.num_classes = self.body.strides[self.levels[0]], num_classes
        self.center_radius, self.box_weight = center_radius, box_weight
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        # NHWC: oneDNN's convolutions for these narrow layers run ~17 % faster on CPU (measured, train step).
        self.to(memory_format=torch.channels_last)

    def set_thresholds(self, score: float | None = None, iou: float | None = None) -> None:
        if score is not None:
            self.score_thresh = score
        if iou is not None:
            self.nms_thresh = iou

    def _head(self, x: torch.Tensor):
        maps = list(self.body(x.contiguous(memory_format=torch.channels_last)).values())
        feats = OrderedDict((str(j), maps[i]) for j, i in enumerate(self.levels))
        t = self.tower(self.fpn(feats)["0"])
        h, w = t.shape[-2:]
        cls = self.cls(t).flatten(2).transpose(1, 2)  # B x P x K
        reg = self.reg(t).flatten(2).transpose(1, 2)  # B x P x 5
        s = self.stride
        ys, xs = torch.meshgrid(torch.arange(h, device=t.device), torch.arange(w, device=t.device), indexing="ij")
        points = torch.stack([xs.flatten(), ys.flatten()], 1).to(t.dtype) * s + s / 2  # P x 2 cell centres
        dist = F.softplus(reg[..., :4]) * s
        boxes = torch.cat([points - dist[..., :2], points + dist[..., 2:]], -1)  # B x P x 4
        return cls, boxes, reg[..., 4], points

    def forward(self, images, targets=None):
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        if self.training and targets is None:
            raise CnnkitError("A detector in training mode needs targets (boxes and labels per image).")
        image_list, targets = self.transform(images, targets)
        cls, boxes, iou, points = self._head(image_list.tensors)
        if self.training:
            return self.compute_loss(cls, boxes, iou, points, targets)
        dets = self.decode(cls, boxes, iou, image_list.image_sizes)
        return self.transform.postprocess(dets, image_list.image_sizes, original_sizes)

    def compute_loss(self, cls, boxes, iou, points, targets) -> dict[str, torch.Tensor]:
        b, p, _ = cls.shape
        m = max(1, max(len(t["boxes"]) for t in targets))
        gt = cls.new_zeros((b, m, 4))
        gl = torch.zeros((b, m), dtype=torch.int64, device=cls.device)
        valid = torch.zeros((b, m), dtype=torch.bool, device=cls.device)
        for i, t in enumerate(targets):
            n = len(t["boxes"])
            gt[i, :n], gl[i, :n], valid[i, :n] = t["boxes"], t["labels"], True
        px, py = points[:, 0][None, :, None], points[:, 1][None, :, None]  # 1 x P x 1
        x1, y1, x2, y2 = (gt[..., j][:, None, :] for j in range(4))  # B x 1 x M
        inside = torch.stack([px - x1, py - y1, x2 - px, y2 - py], -1).amin(-1) > 0
        r = self.center_radius * self.stride
        near = ((px - (x1 + x2) / 2).abs() < r) & ((py - (y1 + y2) / 2).abs() < r)
        cand = inside & near & valid[:, None, :]  # B x P x M
        area = ((x2 - x1) * (y2 - y1)).expand(b, p, m)
        area = torch.where(cand, area, torch.full_like(area, float("inf")))
        min_area, match = area.min(-1)  # a point inside several boxes learns the smallest
        pos = torch.isfinite(min_area)
        num_pos = max(1.0, float(pos.sum()))
        cls_t = torch.zeros_like(cls)
        bi, pi = pos.nonzero(as_tuple=True)
        cls_t[bi, pi, gl[bi, match[bi, pi]]] = 1.0
        loss_cls = sigmoid_focal_loss(cls, cls_t, reduction="sum") / num_pos
        if len(bi):
            pred, tgt = boxes[bi, pi], gt[bi, match[bi, pi]]
            loss_box = generalized_box_iou_loss(pred, tgt, reduction="sum") / num_pos
            with torch.no_grad():
                iou_t = box_iou(pred, tgt).diagonal()
            loss_iou = F.binary_cross_entropy_with_logits(iou[bi, pi], iou_t, reduction="sum") / num_pos
        else:
            loss_box = loss_iou = boxes.sum() * 0.0
        return {"cls": loss_cls, "box": self.box_weight * loss_box, "iou": loss_iou}

    def decode(self, cls, boxes, iou, image_sizes) -> list[dict[str, torch.Tensor]]:
        # No torch.no_grad here: callers that only want boxes already run without gradients, and
        # keeping the graph lets gradient explanations (saliency, Grad-CAM, IG) explain a box's score.
        scores = (cls.sigmoid() * iou.sigmoid()[..., None]).sqrt()
        out = []
        for s, bx, hw in zip(scores, boxes, image_sizes):
            flat = s.flatten()
            idx = (flat > self.score_thresh).nonzero().flatten()
            idx = idx[flat[idx].topk(min(self.topk_candidates, len(idx))).indices]
            point, label = idx // self.num_classes, idx % self.num_classes
            b = clip_boxes_to_image(bx[point], hw)
            keep = batched_nms(b, flat[idx], label, self.nms_thresh)[: self.detections_per_img]
            out.append({"boxes": b[keep], "labels": label[keep], "scores": flat[idx][keep]})
        return out


@MODELS.register("tinydet", tasks=("detect",), doc="compact anchor-free single-stage detector (stride 4, "
                                                   "FCOS-style assignment, focal + GIoU + IoU branch) for CPUs")
def tinydet(num_classes: int, in_channels: int = 3, image_size: int = 96, backbone: str = "tiny",
            attention: str | None = None, widths: tuple | None = None, head_width: int = 32, tower: int = 1,
            min_stride: int = 4, center_radius: float = 1.0, box_weight: float = 2.0, score_thresh: float = 0.05,
            nms_thresh: float = 0.5, detections_per_img: int = 100) -> nn.Module:
    return TinyDet(num_classes, in_channels, image_size, backbone, attention, tuple(widths) if widths else None,
                   head_width, tower, min_stride, center_radius, box_weight, score_thresh, nms_thresh,
                   detections_per_img)
