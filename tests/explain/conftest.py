"""Tiny models for the explain tests: a CNN classifier, a segmenter returning N x K x H x W
logits, and a torchvision Faster R-CNN with a two-conv backbone (eval: list of
{boxes, labels, scores}); plus a PNG check shared by the picture tests."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn


def tiny_classifier(num_classes: int = 3, channels: int = 1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(channels, 8, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("relu2", nn.ReLU()), ("gap", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()), ("fc", nn.Linear(16, num_classes)),
    ])).eval()


def tiny_segmenter(num_classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 8, 3, padding=1)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(8, 8, 3, padding=1)), ("relu2", nn.ReLU()),
        ("head", nn.Conv2d(8, num_classes, 1)),
    ])).eval()


class _Body(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())

    def forward(self, x):
        return self.layer2(self.layer1(x))


class _Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.out_channels = _Body(), 16

    def forward(self, x):
        return OrderedDict([("0", self.body(x))])


def tiny_detector(seed: int = 0) -> nn.Module:
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(seed)
    return FasterRCNN(_Backbone(), num_classes=3, min_size=64, max_size=64,
                      rpn_anchor_generator=AnchorGenerator(((16, 32),), ((0.5, 1.0, 2.0),)),
                      box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), box_score_thresh=0.0,
                      rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_detections_per_img=5,
                      representation_size=32).eval()


def random_image(channels: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (channels, h, w), generator=g, dtype=torch.uint8)


def assert_png(path: str | Path) -> None:
    """The file is a readable PNG whose pixels are not all the same."""
    from PIL import Image

    path = Path(path)
    assert path.exists() and path.stat().st_size > 1000, path
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert arr.std() > 1.0, f"{path} is (nearly) constant"


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; these models are tiny
    yield
    torch.set_num_threads(old)
