"""Segmentation models over registered cnnkit backbones: U-Net, FCN, DeepLabV3 and Mask R-CNN.

Semantic models return logits N x num_classes x H x W at the input size (DESIGN rule 2),
so the segment task's loss, argmax and export never resize anything themselves.

- `unet`: the backbone's stages are the encoder; each decoder step upsamples, concatenates
  the skip of the same stride and applies two conv-bn-relu. When the backbone's first map
  is already downsampled, a two-conv full-resolution branch on the input becomes the last
  skip: thin strokes and object edges need stride-1 evidence, and the branch is cheap.
  `fuse="add"` (LinkNet, Chaurasia & Culurciello 2017) instead projects the deeper map to
  the skip's width with a 1x1 conv-bn-relu, upsamples, adds the skip and applies
  `decoder_convs` conv-bn-relu: on digits-seg (96 px, one thread) add + 1 conv took 0.66x the
  step time of concat + 2 convs (measured, same loader), the concatenated 3x3 convs being
  most of a U-Net's cost at this size.
- `fcn`, `deeplabv3`: torchvision's `FCNHead` / `DeepLabHead` on the deepest map,
  upsampled bilinearly (torchvision's own `_SimpleSegmentationModel` recipe, without its
  dict output). cnnkit backbones are not dilated, so the ASPP rates scale with the size of
  that map instead of torchvision's fixed (12, 24, 36), which would read only padding on a
  3 x 3 map.
- `maskrcnn`: torchvision's `MaskRCNN` (random init) over the backbone + an FPN, for the
  `instance` task, assembled like `cnnkit.models.detection.fasterrcnn` (0-based labels).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from cnnkit.errors import CnnkitError
from cnnkit.models import MODELS, build_backbone
from cnnkit.models.layers import ConvBNAct, image_hw, init_weights

DEFAULT_BACKBONE = "tiny"  # 4 stride-2 stages, 16-128 channels: the fast CPU choice at 96x96


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="bilinear",
                                                                      align_corners=False)


class UNet(nn.Module):
    def __init__(self, encoder: nn.Module, num_classes: int, in_channels: int, full_res: int | None = None,
                 dropout: float = 0.0, decoder_convs: int = 2, fuse: str = "concat"):
        super().__init__()
        self.encoder = encoder
        chans, strides = list(encoder.channels), list(encoder.strides)
        if full_res is None:
            # Stride 2 logits upsampled bilinearly still trace 2-3 px strokes (measured on digits-seg);
            # from stride 4 on (ResNet stems) the stride-1 branch pays for its ~2x cost.
            full_res = 16 if strides[0] >= 4 else 0
        self.input_skip = None
        skip_chans = chans[:-1][::-1]  # deep -> shallow
        if strides[0] > 1 and full_res > 0:
            self.input_skip = nn.Sequential(ConvBNAct(in_channels, full_res), ConvBNAct(full_res, full_res))
            skip_chans.append(full_res)
        if fuse not in ("concat", "add"):
            raise CnnkitError(f'unet fuse must be "concat" or "add" (model.kwargs.fuse), got "{fuse}".')
        blocks, lateral, c = [], [], chans[-1]
        for s in skip_chans:
            if fuse == "add":  # LinkNet-style: project the deeper map to the skip's width, add, then convolve
                lateral.append(ConvBNAct(c, s, 1))
                blocks.append(nn.Sequential(*(ConvBNAct(s, s) for _ in range(decoder_convs))))
            else:
                blocks.append(nn.Sequential(ConvBNAct(c + s, s), *(ConvBNAct(s, s) for _ in range(decoder_convs - 1))))
            c = s
        self.decoder = nn.ModuleList(blocks)
        self.lateral = nn.ModuleList(lateral) if lateral else None
        self.head = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(c, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = list(self.encoder(x).values())
        skips = feats[:-1][::-1] + ([self.input_skip(x)] if self.input_skip is not None else [])
        y = feats[-1]
        for i, (block, skip) in enumerate(zip(self.decoder, skips)):
            if self.lateral is not None:
                y = block(_upsample(self.lateral[i](y), skip.shape[-2:]) + skip)
            else:
                y = block(torch.cat([_upsample(y, skip.shape[-2:]), skip], 1))
        return _upsample(self.head(y), x.shape[-2:])


class HeadOverBackbone(nn.Module):
    """A torchvision segmentation head on the backbone's deepest map, upsampled to the input."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        return _upsample(self.head(next(reversed(feats.values()))), x.shape[-2:])


def _backbone(name: str, in_channels: int, attention: str | None, image_size, extra: dict | None) -> nn.Module:
    return build_backbone(name, in_channels, attention=attention, image_size=image_size, **(extra or {}))


@MODELS.register("unet", tasks=("segment",), backbone=False, attention=True,
                 doc="U-Net: a backbone (default tiny) as encoder, skips at every stride, conv decoder")
def unet(num_classes: int, in_channels: int = 3, image_size: int | Sequence[int] = 96,
         backbone: str = DEFAULT_BACKBONE, dropout: float = 0.0, attention: str | None = None,
         full_res: int | None = None, backbone_kwargs: dict | None = None, decoder_convs: int = 2,
         fuse: str = "concat") -> nn.Module:
    """U-Net with a cnnkit backbone as encoder; `full_res` = channels of the stride-1 input branch
    (0 = none; None = only when the backbone's first map is stride 4 or coarser); `fuse` = "concat"
    (the classic U-Net step) or "add" (LinkNet); `decoder_convs` = 3x3 conv-bn-relu per decoder step.
    Raises CnnkitError for another `fuse`."""
    body = _backbone(backbone, in_channels, attention, image_size, backbone_kwargs)
    model = UNet(body, num_classes, in_channels, full_res, dropout, decoder_convs, fuse)
    for part in (model.decoder, model.lateral, model.head, model.input_skip):
        if part is not None:
            init_weights(part)
    return model


@MODELS.register("fcn", tasks=("segment",), backbone=False, attention=True,
                 doc="FCN: torchvision FCNHead over a cnnkit backbone (default tiny), upsampled")
def fcn(num_classes: int, in_channels: int = 3, image_size: int | Sequence[int] = 96,
        backbone: str = DEFAULT_BACKBONE, dropout: float = 0.1, attention: str | None = None,
        backbone_kwargs: dict | None = None) -> nn.Module:
    """FCN: torchvision's FCNHead (3x3 conv, dropout, 1x1 classifier) over a cnnkit backbone."""
    body = _backbone(backbone, in_channels, attention, image_size, backbone_kwargs)
    head = FCNHead(body.channels[-1], num_classes)
    head[3].p = dropout
    init_weights(head)
    return HeadOverBackbone(body, head)


@MODELS.register("deeplabv3", tasks=("segment",), backbone=False, attention=True,
                 doc="DeepLabV3: torchvision DeepLabHead (ASPP) over a cnnkit backbone (default tiny)")
def deeplabv3(num_classes: int, in_channels: int = 3, image_size: int | Sequence[int] = 96,
              backbone: str = DEFAULT_BACKBONE, dropout: float = 0.5, attention: str | None = None,
              atrous_rates: Sequence[int] | None = None, backbone_kwargs: dict | None = None) -> nn.Module:
    """DeepLabV3: torchvision's DeepLabHead (ASPP) over a cnnkit backbone."""
    body = _backbone(backbone, in_channels, attention, image_size, backbone_kwargs)
    if atrous_rates is None:
        side = max(1, min(image_hw(image_size)) // body.strides[-1])
        base = max(1, side // 6)  # the widest rate (3 * base) still lands inside the map
        atrous_rates = (base, 2 * base, 3 * base)
    head = DeepLabHead(body.channels[-1], num_classes, atrous_rates=tuple(int(r) for r in atrous_rates))
    head[0].project[3].p = dropout  # ASPP's projection dropout
    init_weights(head)
    return HeadOverBackbone(body, head)


@MODELS.register("maskrcnn", tasks=("instance",), backbone=False, attention=True,
                 doc="Mask R-CNN (torchvision, random init) over a cnnkit backbone (default tiny) + FPN")
def maskrcnn(num_classes: int, in_channels: int = 3, image_size: int | Sequence[int] = 96,
             backbone: str = DEFAULT_BACKBONE, attention: str | None = None, fpn_channels: int = 64,
             representation: int = 128, mask_channels: int = 64, score_thresh: float = 0.05,
             nms_thresh: float = 0.5, detections_per_img: int = 100) -> nn.Module:
    """torchvision Mask R-CNN (weights=None) over a cnnkit backbone's stride 8-32 maps + FPN.

    Built like cnnkit's `fasterrcnn` (same `Levels`, anchors of twice each stride, 0-based
    labels through `TorchvisionDetector`), with narrower heads so it trains on a CPU.
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    from cnnkit.models.detection import Levels, TorchvisionDetector

    side = max(image_hw(image_size))
    body = Levels(backbone, in_channels, side, attention, fpn_channels, LastLevelMaxPool())
    sizes = tuple((2 * s,) for s in body.strides) + ((4 * body.strides[-1],),)  # + the max-pool level
    names = [str(i) for i in range(len(body.strides))]
    net = MaskRCNN(
        body, min_size=side, max_size=side, image_mean=[0.0] * in_channels, image_std=[1.0] * in_channels,
        rpn_anchor_generator=AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes)),
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2), box_head=TwoMLPHead(fpn_channels * 7 * 7, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes + 1),
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
        mask_head=MaskRCNNHeads(fpn_channels, (mask_channels,) * 2, 1),
        mask_predictor=MaskRCNNPredictor(mask_channels, mask_channels, num_classes + 1),
        rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500, rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=300, box_batch_size_per_image=256, box_score_thresh=score_thresh,
        box_nms_thresh=nms_thresh, box_detections_per_img=detections_per_img)
    return TorchvisionDetector(net, label_offset=1)
